"""Steerable embeddings: hierarchy-aligned prefix supervision on a frozen sentence encoder."""

__version__ = "0.1.0"

from .backbone import Backbone, VectorCache  # noqa: E402
from .data import DataError, DataWarning, HierarchicalDataset, Hierarchy, combine_datasets, load_dataset, load_files
from .encoder import SteerableEncoder  # noqa: E402
from .heads import FractalHead, IdentityHead, LinearHead, MLPHead  # noqa: E402
from .methods import METHODS, preset  # noqa: E402
from .model import SteerableModel  # noqa: E402
from .schedule import Schedule, Term  # noqa: E402
from .training import TrainConfig  # noqa: E402

__all__ = [
    "Backbone",
    "VectorCache",
    "DataError",
    "DataWarning",
    "HierarchicalDataset",
    "Hierarchy",
    "load_dataset",
    "load_files",
    "combine_datasets",
    "SteerableEncoder",
    "FractalHead",
    "IdentityHead",
    "LinearHead",
    "MLPHead",
    "SteerableModel",
    "Schedule",
    "Term",
    "METHODS",
    "preset",
    "TrainConfig",
]
