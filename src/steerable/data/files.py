"""A user's own labelled files (CSV, TSV, JSON Lines, Parquet) read into a data set, and text files read
in chunks; bad input stops with a one-line :class:`~steerable.data.hierarchy.DataError` naming the file,
the line (row, in Parquet), the column or the label.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from .hierarchy import DataError, DataWarning, HierarchicalDataset, Hierarchy, LabelledTexts, stratified_split

# Label cells spelled like this are missing values in every format (pandas' default spellings).
MISSING_LABELS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


# ---------------------------------------------------------------------------------------- reading


def _decode_line(path: Path, line_number: int, raw: bytes) -> str:
    """A line of a text file as UTF-8, or a :class:`DataError` naming the file and line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: line {line_number}: not UTF-8 text (byte 0x{raw[e.start]:02x} at "
            f"position {e.start + 1}); save the file as UTF-8"
        ) from None


def check_utf8(path: str | Path) -> None:
    """Raise a :class:`DataError` naming the first line of ``path`` that is not UTF-8."""
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            _decode_line(path, i, raw)


@contextmanager
def utf8_errors(path: Path) -> Iterator[None]:
    """Turn a UnicodeDecodeError while reading ``path`` into a :class:`DataError` naming its line."""
    try:
        yield
    except UnicodeDecodeError:
        check_utf8(path)  # names the line
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from None


@contextmanager
def csv_errors(path: Path) -> Iterator[None]:
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
            df = pd.read_csv(
                path, sep="\t" if name.endswith(".tsv") else ",", dtype=str, keep_default_na=False, na_values=[""]
            )
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


def _column_values(
    path: str | Path,
    rows: list[dict],
    columns: list[str],
    numbers: list[int],
    text_col: str,
    level_cols: Sequence[str],
) -> tuple[list[str], list[list[str]]]:
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
            raise DataError(
                f"{path}: {at(path, i)}: column {text_col!r} holds {type(t).__name__} values "
                f"({str(t)[:40]!r}), not text; name the column that holds the texts"
            )
        ls = []
        for col in level_cols:
            v = row.get(col)
            if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
                raise DataError(f"{path}: {at(path, i)}: missing label in column {col!r}")
            if str(v).strip() in MISSING_LABELS:
                raise DataError(
                    f"{path}: {at(path, i)}: missing label in column {col!r} "
                    f"({str(v).strip()!r} is read as a missing value)"
                )
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


def _read_split(path: str | Path, text_col: str, level_cols: Sequence[str]) -> _RawSplit:
    rows, columns, numbers = read_table(path)
    texts, labels = _column_values(path, rows, columns, numbers, text_col, level_cols)
    return _RawSplit(Path(path), texts, labels, numbers)


def _build_hierarchy(train: _RawSplit, others: Sequence[_RawSplit], level_cols: Sequence[str]) -> Hierarchy:
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
        np.array([index[k - 1][parent_of[k][c][0]] for c in classes[k]], dtype=np.int64) for k in range(1, n_levels)
    )
    return Hierarchy(tuple(level_cols), tuple(classes), parents)


def _reversed_hint(train: _RawSplit, level_cols: Sequence[str]) -> str:
    """A hint where the levels look given finest first: more classes at the first level than at the last."""
    sizes = [len({ls[k] for ls in train.labels}) for k in range(len(level_cols))]
    if sizes[0] > sizes[-1]:
        return (
            f" (the levels look reversed: {', '.join(f'{c!r} has {n} classes' for c, n in zip(level_cols, sizes))}; "
            f"give them coarsest first: {','.join(reversed(level_cols))})"
        )
    return ""


def _encode_labels(split: _RawSplit, h: Hierarchy) -> LabelledTexts:
    index = [{c: j for j, c in enumerate(cs)} for cs in h.classes]
    labels = np.array([[index[k][name] for k, name in enumerate(ls)] for ls in split.labels], dtype=np.int64)
    return LabelledTexts(split.texts, labels.reshape(len(split.texts), h.num_levels))


def _too_small(train: _RawSplit, fine_col: str, part: str, held_parts: int) -> None:
    """Raise the error for a split that cannot be held out of ``train``: no class is large enough."""
    largest = max(Counter(ls[-1] for ls in train.labels).values())
    held = "a test and a validation split" if held_parts == 2 else f"a {part} split"
    raise DataError(
        f"{train.path}: too few rows to hold out {held}: the largest class in column "
        f"{fine_col!r} has {largest} row{'s' if largest > 1 else ''}, and a class needs at "
        f"least {held_parts + 1} to keep one for training; give a {part} file or more rows"
    )


def load_files(
    train: str | Path,
    test: str | Path | None = None,
    validation: str | Path | None = None,
    *,
    text_col: str = "text",
    level_cols: Sequence[str] = ("l0", "l1"),
    name: str | None = None,
) -> HierarchicalDataset:
    """Load a user's own CSV / JSON Lines / Parquet files with named text and level columns.

    Without a test file, 15 % of the training file (stratified, seed 42) becomes the test split;
    without a validation file, 15 % of what remains becomes the validation split. A split that
    would be empty (no class has enough rows to give one away) is an error, raised before any work.
    """
    level_cols = tuple(level_cols)
    repeated = sorted({c for c in level_cols if level_cols.count(c) > 1})
    if repeated:
        raise DataError(
            f"level columns must be distinct, got {list(level_cols)} ({', '.join(map(repr, repeated))} repeated)"
        )
    if text_col in level_cols:
        raise DataError(
            f"the text column {text_col!r} is also a level column: the labels would be read as "
            "the texts; name the column that holds the texts"
        )
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
    return HierarchicalDataset(name or Path(train).name.split(".")[0], h, full_train, val_split, test_split, notes)


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
        out.append(
            f"{split.path}: {len(conflicts)} text(s) occur with conflicting {level_cols[-1]!r} labels, e.g. "
            f"{text[:60]!r} as {a!r} ({at(split.path, i)}) and {b!r} ({at(split.path, j)})"
        )
    counts = Counter(ls[-1] for ls in split.labels)
    single = sorted(c for c, n in counts.items() if n == 1)
    if single:
        out.append(
            f"{split.path}: {len(single)} class(es) in column {level_cols[-1]!r} have a single example: "
            f"{', '.join(map(repr, single[:5]))}{', ...' if len(single) > 5 else ''}"
        )
    return out
