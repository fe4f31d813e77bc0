"""Export settings and results (plain values, no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.meta import ModelMeta
from edgekit.parity import ParityReport, check_tolerance

MIN_OPSET, MAX_OPSET = 9, 20
MAX_INPUT_SIDE = 4096  # a larger side allocates tens of GB before anything can fail


@dataclass(frozen=True)
class ExportConfig:
    """How to export: opset, batch (fixed or dynamic), input size, validation tolerance."""

    opset: int = 17
    batch: int = 1
    dynamic_batch: bool = False
    input_size: tuple[int, int] | None = None
    atol: float = 1e-4
    rtol: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise BadInputError(f"opset must be between {MIN_OPSET} and {MAX_OPSET}, got {self.opset}")
        if self.batch < 1:
            raise BadInputError(f"batch must be at least 1, got {self.batch}")
        check_tolerance(self.atol, self.rtol)
        if self.input_size is not None and not all(1 <= side <= MAX_INPUT_SIDE for side in self.input_size):
            raise BadInputError(f"input size must be 1 to {MAX_INPUT_SIDE} pixels a side, got {self.input_size}")


@dataclass(frozen=True)
class ExportResult:
    """The written file, the metadata it carries and how it compared to torch."""

    path: Path
    meta: ModelMeta
    parity: ParityReport


def parse_input_size(text: str) -> tuple[int, int]:
    """Parse '224', '224x224' or '224,224' into (height, width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(part) for part in parts if part.strip()]
    except ValueError:
        sizes = []
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise BadInputError(f"input size must look like 224 or 224x224, got '{text}'")
    if max(sizes) > MAX_INPUT_SIDE:
        raise BadInputError(f"input size must be at most {MAX_INPUT_SIDE} pixels a side, got '{text}'")
    return sizes[0], sizes[1]
