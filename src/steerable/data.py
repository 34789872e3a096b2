"""Hierarchical labelled text: the dataset type, its loaders and its validation.

A data set is a list of texts with one label per hierarchy level, coarsest first. Every label of
level k > 0 has exactly one parent at level k - 1; the loaders check that and reject bad input with a
one-line :class:`DataError` naming the file, row, column or label.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import re
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")
VALIDATION_FRACTION = 0.15
VALIDATION_SEED = 42
# Label cells spelled like this are missing values in every format (pandas' default spellings).
MISSING_LABELS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                            "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


class DataError(ValueError):
    """Bad input data; the message names the file, row, column or label."""


def data_dir() -> Path:
    """The directory holding canonical data sets: ``$STEER_DATA_DIR``, else ``./data``."""
    return Path(os.environ.get("STEER_DATA_DIR", "data"))


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
        out[f"H{k}|{k-1}"] = _entropy(labels[:, k]) - _entropy(labels[:, k - 1])
    return out


def _entropy(y: np.ndarray) -> float:
    p = np.bincount(y) / len(y)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


# ---------------------------------------------------------------------------------------- reading

def _decode_line(path: Path, line_number: int, raw: bytes) -> str:
    """A line of a text file as UTF-8, or a :class:`DataError` naming the file and line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: line {line_number}: not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                        f"position {e.start + 1}); save the file as UTF-8") from None


def check_utf8(path: str | Path) -> None:
    """Raise a :class:`DataError` naming the first line of ``path`` that is not UTF-8."""
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            _decode_line(path, i, raw)


@contextmanager
def utf8_errors(path: Path):
    """Turn a UnicodeDecodeError while reading ``path`` into a :class:`DataError` naming its line."""
    try:
        yield
    except UnicodeDecodeError:
        check_utf8(path)  # names the line
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None


@contextmanager
def csv_errors(path: Path):
    """Turn pandas' errors reading a CSV / TSV file into one-line :class:`DataError` naming it."""
    try:
        with utf8_errors(path):
            yield
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except pd.errors.ParserError as e:
        quote = re.search(r"EOF inside string starting at row (\d+)", str(e))
        if quote:  # pandas counts the header as row 0, so this is the 1-based data record
            record = int(quote.group(1))
            lines = _csv_lines(path, "\t" if path.name.lower().endswith(".tsv") else ",")
            line = lines[record - 1] if record <= len(lines) else record + 1
            raise DataError(f"{path}: line {line}: a quoted field is never closed (unterminated quote)") from None
        raise DataError(f"{path}: not valid CSV ({str(e).strip()})") from None


def at(path: str | Path, number: int) -> str:
    """Where an example of ``path`` is, as an editor counts: "line N" in a text file (CSV counts its header
    line; JSON Lines its blank lines), "row N" in a Parquet file (1-based)."""
    return f"row {number}" if str(path).lower().endswith(".parquet") else f"line {number}"


def _csv_lines(path: Path, sep: str) -> list[int]:
    """The line on which each data record of a CSV / TSV file starts (after the header; blank lines are
    no records, and a quoted field may span lines), as pandas reads the records."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    starts, end = [], 0
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=sep)
        for record in reader:
            if record:
                starts.append(end + 1)
            end = reader.line_num
    return starts[1:]


def _read_jsonl_gz(path: Path) -> tuple[list[dict], list[int]]:
    """Rows of a JSON Lines file and their line numbers (blank lines are skipped)."""
    rows, numbers = [], []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            line = _decode_line(path, i, raw)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: line {i}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {i}: expected a JSON object")
            rows.append(row)
            numbers.append(i)
    return rows, numbers


def read_table(path: str | Path) -> tuple[list[dict], list[str], list[int]]:
    """Rows (as dicts), column names and where each row is: its line in a CSV or JSON Lines file (as an
    editor counts), its 1-based row in a Parquet file (:func:`at` says which)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        rows, numbers = _read_jsonl_gz(path)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        return rows, columns, numbers
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        with csv_errors(path):
            df = pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",", dtype=str,
                             keep_default_na=False, na_values=[""])
    elif name.endswith(".parquet"):
        df = pd.read_parquet(path)
    else:
        raise DataError(f"{path}: unknown file type; use .csv, .tsv, .jsonl(.gz) or .parquet")
    df = df.astype(object).where(df.notna(), None)
    numbers = list(range(1, len(df) + 1))
    if not name.endswith(".parquet"):
        lines = _csv_lines(path, "\t" if name.endswith(".tsv") else ",")
        numbers = lines if len(lines) == len(df) else [n + 1 for n in numbers]  # + 1: the header line
    return df.to_dict("records"), [str(c) for c in df.columns], numbers


def _column_values(path, rows, columns, numbers, text_col, level_cols):
    if not rows:
        raise DataError(f"{path}: file is empty (no rows)")
    for col in (text_col, *level_cols):
        if col not in columns:
            raise DataError(f"{path}: no column {col!r} (columns: {', '.join(columns)})")
    texts, labels = [], []
    for i, row in zip(numbers, rows):
        t = row.get(text_col)
        if t is None or (isinstance(t, float) and math.isnan(t)) or not str(t).strip():
            raise DataError(f"{path}: {at(path, i)}: missing text in column {text_col!r}")
        if not isinstance(t, str):
            raise DataError(f"{path}: {at(path, i)}: column {text_col!r} holds {type(t).__name__} values "
                            f"({str(t)[:40]!r}), not text; name the column that holds the texts")
        ls = []
        for col in level_cols:
            v = row.get(col)
            if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
                raise DataError(f"{path}: {at(path, i)}: missing label in column {col!r}")
            if str(v).strip() in MISSING_LABELS:
                raise DataError(f"{path}: {at(path, i)}: missing label in column {col!r} "
                                f"({str(v).strip()!r} is read as a missing value)")
            ls.append(str(v))
        texts.append(str(t))
        labels.append(ls)
    return texts, labels


@dataclass
class _RawSplit:
    path: Path
    texts: list[str]
    labels: list[list[str]]
    rows: list[int]  # row number of each example in its file


def _read_split(path, text_col, level_cols) -> _RawSplit:
    rows, columns, numbers = read_table(path)
    texts, labels = _column_values(path, rows, columns, numbers, text_col, level_cols)
    return _RawSplit(Path(path), texts, labels, numbers)


def _build_hierarchy(train: _RawSplit, others: Sequence[_RawSplit], level_cols) -> Hierarchy:
    """Class vocabularies from the training split; parent map checked over every split."""
    n_levels = len(level_cols)
    if n_levels < 2:
        raise DataError(f"{train.path}: a hierarchy needs at least two levels, got {list(level_cols)}")
    parent_of: list[dict[str, tuple[str, Path, int]]] = [dict() for _ in range(n_levels)]
    for split in (train, *others):
        for i, ls in zip(split.rows, split.labels):
            for k in range(1, n_levels):
                seen = parent_of[k].get(ls[k])
                if seen is None:
                    parent_of[k][ls[k]] = (ls[k - 1], split.path, i)
                elif seen[0] != ls[k - 1]:
                    raise DataError(
                        f"{split.path}: {at(split.path, i)}: label {ls[k]!r} in column {level_cols[k]!r} has parent "
                        f"{ls[k - 1]!r}, but parent {seen[0]!r} at {seen[1]} {at(seen[1], seen[2])}"
                        + _reversed_hint(train, level_cols)
                    )
    classes = []
    for k in range(n_levels):
        names = sorted({ls[k] for ls in train.labels})
        if len(names) < 2:
            raise DataError(
                f"{train.path}: column {level_cols[k]!r} has a single class {names[0]!r}; "
                "every level needs at least two"
            )
        classes.append(tuple(names))
    known = [set(c) for c in classes]
    for split in others:
        for i, ls in zip(split.rows, split.labels):
            for k in range(n_levels):
                if ls[k] not in known[k]:
                    raise DataError(
                        f"{split.path}: {at(split.path, i)}: label {ls[k]!r} in column {level_cols[k]!r} "
                        f"never appears in the training data ({train.path})"
                    )
    index = [{c: j for j, c in enumerate(cs)} for cs in classes]
    parents = tuple(
        np.array([index[k - 1][parent_of[k][c][0]] for c in classes[k]], dtype=np.int64)
        for k in range(1, n_levels)
    )
    return Hierarchy(tuple(level_cols), tuple(classes), parents)


def _reversed_hint(train: _RawSplit, level_cols: Sequence[str]) -> str:
    """A hint where the levels look given finest first: more classes at the first level than at the last."""
    sizes = [len({ls[k] for ls in train.labels}) for k in range(len(level_cols))]
    if sizes[0] > sizes[-1]:
        return (f" (the levels look reversed: {', '.join(f'{c!r} has {n} classes' for c, n in zip(level_cols, sizes))}; "
                f"give them coarsest first: {','.join(reversed(level_cols))})")
    return ""


def _encode_labels(split: _RawSplit, h: Hierarchy) -> LabelledTexts:
    index = [{c: j for j, c in enumerate(cs)} for cs in h.classes]
    labels = np.array([[index[k][l] for k, l in enumerate(ls)] for ls in split.labels], dtype=np.int64)
    return LabelledTexts(split.texts, labels.reshape(len(split.texts), h.num_levels))


def stratified_split(labels: np.ndarray, fraction: float = VALIDATION_FRACTION,
                     seed: int = VALIDATION_SEED) -> tuple[np.ndarray, np.ndarray]:
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


def _too_small(train: _RawSplit, fine_col: str, part: str, held_parts: int) -> None:
    """Raise the error for a split that cannot be held out of ``train``: no class is large enough."""
    largest = max(Counter(ls[-1] for ls in train.labels).values())
    held = "a test and a validation split" if held_parts == 2 else f"a {part} split"
    raise DataError(f"{train.path}: too few rows to hold out {held}: the largest class in column "
                    f"{fine_col!r} has {largest} row{'s' if largest > 1 else ''}, and a class needs at "
                    f"least {held_parts + 1} to keep one for training; give a {part} file or more rows")


def load_files(train: str | Path, test: str | Path | None = None, validation: str | Path | None = None,
               *, text_col: str = "text", level_cols: Sequence[str] = ("l0", "l1"),
               name: str | None = None) -> HierarchicalDataset:
    """Load a user's own CSV / JSON Lines / Parquet files with named text and level columns.

    Without a test file, 15 % of the training file (stratified, seed 42) becomes the test split;
    without a validation file, 15 % of what remains becomes the validation split. A split that
    would be empty (no class has enough rows to give one away) is an error, raised before any work.
    """
    level_cols = tuple(level_cols)
    repeated = sorted({c for c in level_cols if level_cols.count(c) > 1})
    if repeated:
        raise DataError(f"level columns must be distinct, got {list(level_cols)} "
                        f"({', '.join(map(repr, repeated))} repeated)")
    if text_col in level_cols:
        raise DataError(f"the text column {text_col!r} is also a level column: the labels would be read as "
                        "the texts; name the column that holds the texts")
    raw_train = _read_split(train, text_col, level_cols)
    raw_test = _read_split(test, text_col, level_cols) if test else None
    raw_val = _read_split(validation, text_col, level_cols) if validation else None
    h = _build_hierarchy(raw_train, [s for s in (raw_val, raw_test) if s], level_cols)
    full_train = _encode_labels(raw_train, h)
    notes = []
    if raw_test is None:
        keep, held = stratified_split(full_train.labels)
        test_split, full_train = full_train.subset(held), full_train.subset(keep)
        notes.append("test: 15 % of the training file, stratified, seed 42")
    else:
        test_split = _encode_labels(raw_test, h)
    if raw_val is None:
        keep, held = stratified_split(full_train.labels)
        val_split, full_train = full_train.subset(held), full_train.subset(keep)
        notes.append("validation: 15 % of the training split, stratified, seed 42")
    else:
        val_split = _encode_labels(raw_val, h)
    for part, split in (("test", test_split), ("validation", val_split)):
        if len(split) == 0:
            _too_small(raw_train, level_cols[-1], part, held_parts=1 + (part == "validation" and raw_test is None))
    for warning in _doubtful(raw_train, level_cols):
        warnings.warn(warning, DataWarning, stacklevel=2)
        notes.append(f"warning: {warning}")
    return HierarchicalDataset(name or Path(train).name.split(".")[0], h, full_train, val_split,
                               test_split, notes)


class DataWarning(UserWarning):
    """Data that loads but may not mean what it says: the same text with two labels, a class with one
    example."""


def _doubtful(split: _RawSplit, level_cols: Sequence[str]) -> list[str]:
    """One-line warnings about the training file: texts that occur with conflicting finest labels, and
    finest classes with a single example (neither k-NN nor a held-out split can use them)."""
    out = []
    first: dict[str, tuple[str, int]] = {}
    conflicts = []
    for i, text, ls in zip(split.rows, split.texts, split.labels):
        seen = first.setdefault(text, (ls[-1], i))
        if seen[0] != ls[-1]:
            conflicts.append((text, seen, (ls[-1], i)))
    if conflicts:
        text, (a, i), (b, j) = conflicts[0]
        out.append(f"{split.path}: {len(conflicts)} text(s) occur with conflicting {level_cols[-1]!r} labels, e.g. "
                   f"{text[:60]!r} as {a!r} ({at(split.path, i)}) and {b!r} ({at(split.path, j)})")
    counts = Counter(ls[-1] for ls in split.labels)
    single = sorted(c for c, n in counts.items() if n == 1)
    if single:
        out.append(f"{split.path}: {len(single)} class(es) in column {level_cols[-1]!r} have a single example: "
                   f"{', '.join(map(repr, single[:5]))}{', ...' if len(single) > 5 else ''}")
    return out


def dataset_path(name: str, root: str | Path | None = None) -> Path:
    root = Path(root) if root is not None else data_dir()
    path = root / name
    if not (path / "train.jsonl.gz").exists():
        available = ", ".join(list_datasets(root)) or "none"
        raise DataError(
            f"no data set {name!r} in {root} (set STEER_DATA_DIR; found: {available})"
        )
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
    levels = []
    while f"l{len(levels)}" in first:
        levels.append(f"l{len(levels)}")
    return tuple(levels)


def load_dataset(name: str, root: str | Path | None = None, levels: Sequence[str] | None = None
                 ) -> HierarchicalDataset:
    """Load ``<root>/<name>/{train,validation,test}.jsonl.gz`` (validation made when absent)."""
    path = dataset_path(name, root)
    levels = tuple(levels) if levels else canonical_levels(path)
    test = path / "test.jsonl.gz"
    val = path / "validation.jsonl.gz"
    return load_files(path / "train.jsonl.gz", test if test.exists() else None,
                      val if val.exists() else None, text_col="text", level_cols=levels, name=name)


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
    coarse, fine, parents = [], [], []
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
    return HierarchicalDataset(name, hierarchy, parts["train"], parts["validation"], parts["test"],
                               [f"combined from {', '.join(names)}"])

