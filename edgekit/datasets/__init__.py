"""Offline datasets: scikit-learn digits, generated shapes, image folders, COCO JSON."""

from edgekit.datasets.base import DATASETS, Split, load_split, split_indices

__all__ = ["DATASETS", "Split", "load_split", "split_indices"]
