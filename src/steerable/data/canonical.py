"""Data sets in the canonical layout: ``<STEER_DATA_DIR>/<name>/{train,validation,test}.jsonl.gz`` with
``text`` and ``l0``, ``l1`` (, ``l2``); found, listed and loaded by name, and combined into one taxonomy.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .files import load_files
from .hierarchy import SPLITS, DataError, HierarchicalDataset, Hierarchy, LabelledTexts


def data_dir() -> Path:
    """The directory holding canonical data sets: ``$STEER_DATA_DIR``, else ``./data``."""
    return Path(os.environ.get("STEER_DATA_DIR", "data"))


def dataset_path(name: str, root: str | Path | None = None) -> Path:
    root = Path(root) if root is not None else data_dir()
    path = root / name
    if not (path / "train.jsonl.gz").exists():
        available = ", ".join(list_datasets(root)) or "none"
        raise DataError(f"no data set {name!r} in {root} (set STEER_DATA_DIR; found: {available})")
    return path


def list_datasets(root: str | Path | None = None) -> list[str]:
    """Names of canonical data sets (folders with ``train.jsonl.gz``) under the data directory."""
    root = Path(root) if root is not None else data_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "train.jsonl.gz").exists())


def canonical_levels(path: Path) -> tuple[str, ...]:
    """Level columns l0, l1, ... present in the first row of a canonical training file."""
    with gzip.open(path / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        first = json.loads(f.readline() or "{}")
    levels: list[str] = []
    while f"l{len(levels)}" in first:
        levels.append(f"l{len(levels)}")
    return tuple(levels)


def load_dataset(name: str, root: str | Path | None = None, levels: Sequence[str] | None = None) -> HierarchicalDataset:
    """Load ``<root>/<name>/{train,validation,test}.jsonl.gz`` (validation made when absent)."""
    path = dataset_path(name, root)
    levels = tuple(levels) if levels else canonical_levels(path)
    test = path / "test.jsonl.gz"
    val = path / "validation.jsonl.gz"
    return load_files(
        path / "train.jsonl.gz",
        test if test.exists() else None,
        val if val.exists() else None,
        text_col="text",
        level_cols=levels,
        name=name,
    )


def combine_datasets(datasets: Sequence[HierarchicalDataset], name: str = "combined") -> HierarchicalDataset:
    """One two-level taxonomy over several data sets: ``<data set>/<coarsest>`` over ``<data set>/<finest>``.

    For a collection that holds the texts of several data sets, so that one head covers all of them.
    A data set with more than two levels keeps its coarsest and finest (the finest class's ancestor is
    its parent). Class names are prefixed with the data set's name, so equal names in two data sets
    stay two classes.
    """
    if len(datasets) < 1:
        raise ValueError("combine_datasets needs at least one data set")
    names = [ds.name for ds in datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"data set names must be distinct, got {names}")
    coarse: list[str] = []
    fine: list[str] = []
    parents = []
    splits: dict[str, tuple[list[str], list[np.ndarray]]] = {s: ([], []) for s in SPLITS}
    for ds in datasets:
        h = ds.hierarchy
        top, bottom = 0, h.num_levels - 1
        offset = np.array([len(coarse), len(fine)])
        coarse += [f"{ds.name}/{c}" for c in h.classes[top]]
        fine += [f"{ds.name}/{c}" for c in h.classes[bottom]]
        parents.append(h.fine_to_level(top) + offset[0])
        for s in SPLITS:
            part = ds.split(s)
            splits[s][0].extend(part.texts)
            splits[s][1].append(part.labels[:, [top, bottom]] + offset)
    hierarchy = Hierarchy(("coarse", "fine"), (tuple(coarse), tuple(fine)), (np.concatenate(parents),))
    parts = {s: LabelledTexts(t, np.concatenate(y).astype(np.int64)) for s, (t, y) in splits.items()}
    return HierarchicalDataset(
        name, hierarchy, parts["train"], parts["validation"], parts["test"], [f"combined from {', '.join(names)}"]
    )
