"""The benchmark matrix: cells (model × runtime × precision × batch × threads × scenario) → records."""

from edgekit.matrix.cells import Cell, CellRecord, Evaluation, MatrixSpec, Timing

__all__ = ["Cell", "CellRecord", "Evaluation", "MatrixSpec", "Timing"]
