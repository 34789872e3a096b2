"""Texts and their labels: the hierarchy types (:mod:`.hierarchy`), a user's own files (:mod:`.files`), the
canonical data sets (:mod:`.canonical`) and public data sets imported into that layout (:mod:`.importers`)."""

from __future__ import annotations

from .canonical import canonical_levels, combine_datasets, data_dir, dataset_path, list_datasets, load_dataset
from .files import MISSING_LABELS, at, check_utf8, csv_errors, load_files, read_table, utf8_errors
from .hierarchy import (
    SPLITS,
    VALIDATION_FRACTION,
    VALIDATION_SEED,
    DataError,
    DataWarning,
    HierarchicalDataset,
    Hierarchy,
    LabelledTexts,
    SplitVectors,
    hierarchy_stats,
    stratified_split,
)
from .texts import iter_text_chunks

__all__ = [
    "DataError",
    "DataWarning",
    "Hierarchy",
    "LabelledTexts",
    "HierarchicalDataset",
    "SplitVectors",
    "hierarchy_stats",
    "stratified_split",
    "SPLITS",
    "VALIDATION_FRACTION",
    "VALIDATION_SEED",
    "MISSING_LABELS",
    "at",
    "check_utf8",
    "csv_errors",
    "utf8_errors",
    "iter_text_chunks",
    "load_files",
    "read_table",
    "canonical_levels",
    "combine_datasets",
    "data_dir",
    "dataset_path",
    "list_datasets",
    "load_dataset",
]
