"""Offline datasets: scikit-learn digits, generated shapes, image folders, COCO JSON."""

from edgekit.datasets.base import Split, split_indices
from edgekit.datasets.loader import DATASETS, check_labels, load_split

__all__ = ["DATASETS", "Split", "check_labels", "load_split", "split_indices"]
