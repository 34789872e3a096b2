"""Hierarchical labelled text: the types every stage passes on, and the errors bad data raises.

A data set is a list of texts with one label per hierarchy level, coarsest first
(:class:`LabelledTexts`), in train, validation and test splits over one :class:`Hierarchy` (every label
of level k > 0 has exactly one parent at level k - 1); :class:`SplitVectors` holds the same splits as
the backbone's vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "validation", "test")


VALIDATION_FRACTION = 0.15


VALIDATION_SEED = 42


class DataError(ValueError):
    """Bad input data; the message names the file, row, column or label."""


@dataclass
class Hierarchy:
    """Class names per level (coarsest first) and each class's parent index one level up."""

    level_names: tuple[str, ...]
    classes: tuple[tuple[str, ...], ...]
    parents: tuple[np.ndarray, ...]  # parents[k - 1][c] = parent (level k - 1) of class c at level k

    @property
    def num_levels(self) -> int:
        return len(self.level_names)

    def num_classes(self, level: int) -> int:
        return len(self.classes[level])

    def fine_to_level(self, level: int) -> np.ndarray:
        """For each finest-level class, its ancestor at ``level`` (the identity for the finest)."""
        out = np.arange(self.num_classes(self.num_levels - 1))
        for k in range(self.num_levels - 1, level, -1):
            out = self.parents[k - 1][out]
        return out

    def to_dict(self) -> dict:
        return {
            "level_names": list(self.level_names),
            "classes": [list(c) for c in self.classes],
            "parents": [p.tolist() for p in self.parents],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Hierarchy":
        return cls(
            tuple(d["level_names"]),
            tuple(tuple(c) for c in d["classes"]),
            tuple(np.asarray(p, dtype=np.int64) for p in d["parents"]),
        )


@dataclass
class LabelledTexts:
    """One split: texts and an (n, levels) array of class indices into a :class:`Hierarchy`."""

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: np.ndarray) -> "LabelledTexts":
        return LabelledTexts([self.texts[i] for i in idx], self.labels[idx])

    def cap(self, n: int | None, seed: int) -> "LabelledTexts":
        """At most ``n`` examples, drawn by a seeded shuffle (order preserved); all if ``n`` is None."""
        if n is None or n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return self.subset(idx)


@dataclass
class HierarchicalDataset:
    """Train, validation and test splits over one validated hierarchy."""

    name: str
    hierarchy: Hierarchy
    train: LabelledTexts
    validation: LabelledTexts
    test: LabelledTexts
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> LabelledTexts:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def stats(self) -> dict:
        """Classes per level, branching, and label entropies (bits) on the training split."""
        return hierarchy_stats(self.hierarchy, self.train.labels) | {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def hierarchy_stats(h: Hierarchy, labels: np.ndarray) -> dict:
    """K per level, mean children per parent, H(L0) and H(L_k | L_{k-1}) in bits."""
    out: dict = {"levels": h.num_levels}
    for k in range(h.num_levels):
        out[f"K{k}"] = h.num_classes(k)
    for k in range(1, h.num_levels):
        out[f"branching{k}"] = h.num_classes(k) / h.num_classes(k - 1)
    out["H0"] = _entropy(labels[:, 0])
    for k in range(1, h.num_levels):
        # H(Lk | Lk-1) = H(Lk) - H(Lk-1), since Lk-1 is a function of Lk.
        out[f"H{k}|{k - 1}"] = _entropy(labels[:, k]) - _entropy(labels[:, k - 1])
    return out


def _entropy(y: np.ndarray) -> float:
    p = np.bincount(y) / len(y)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def stratified_split(
    labels: np.ndarray, fraction: float = VALIDATION_FRACTION, seed: int = VALIDATION_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of each finest-level class held out, seeded.

    Every class with at least two examples keeps at least one in each part; a class with a single
    example stays in ``keep``.
    """
    rng = np.random.default_rng(seed)
    y = labels[:, -1]
    held = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) >= 2:
            n = min(max(int(round(fraction * len(idx))), 1), len(idx) - 1)
            held.append(rng.permutation(idx)[:n])
    held_out = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(y)), held_out)
    return keep, held_out


class DataWarning(UserWarning):
    """Data that loads but may not mean what it says: the same text with two labels, a class with one
    example."""


@dataclass
class SplitVectors:
    """Backbone vectors and labels of each split of a data set, after the caps."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    y_train: np.ndarray
    y_validation: np.ndarray
    y_test: np.ndarray
