"""Tests for steerable.data: loaders, validation errors, splits and hierarchy statistics.

Every bad input is one case in ``BAD_INPUT``: the files written, the call, and the exact one-line
``DataError`` it must raise. Everything runs on tiny files under pytest's ``tmp_path``; the tests
against the real data sets are skipped unless ``$STEER_DATA_DIR`` names an existing folder.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import pytest

from steerable.data import (
    DataError,
    HierarchicalDataset,
    Hierarchy,
    combine_datasets,
    data_dir,
    dataset_path,
    hierarchy_stats,
    list_datasets,
    load_dataset,
    load_files,
    stratified_split,
)

# ----------------------------------------------------------------------------------------- helpers


def write(path: Path, content: str | bytes | list[dict] | None) -> Path:
    """Write a test file by its extension: text (or bytes) as is, or rows (dicts) as Parquet, CSV or
    JSON Lines; a ``.gz`` name is gzipped. ``None`` writes nothing (a file that does not exist)."""
    if content is None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(gzip.compress(content) if path.suffix == ".gz" else content)
    elif path.suffix == ".parquet":
        pd.DataFrame(content).to_parquet(path)
    elif path.suffix == ".csv" and not isinstance(content, str):
        pd.DataFrame(content).to_csv(path, index=False)
    else:
        text = content if isinstance(content, str) else "".join(json.dumps(r) + "\n" for r in content)
        path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())
    return path


# Tiny two-level example: parents A (children a1, a2) and B (child b1).
FINE_TO_COARSE = {"a1": "A", "a2": "A", "b1": "B"}
# 20 rows per fine class, with columns title, category, subcategory: a user's own file.
TINY_ROWS = [
    {"title": f"{fine} text {i}", "category": coarse, "subcategory": fine}
    for fine, coarse in FINE_TO_COARSE.items()
    for i in range(20)
]


def canonical_rows(n_per_fine: int = 4) -> list[dict]:
    """Rows with columns text, l0, l1; ``n_per_fine`` of a1, then of a2, then of b1."""
    return [
        {"text": f"{fine} {i}", "l0": coarse, "l1": fine}
        for fine, coarse in FINE_TO_COARSE.items()
        for i in range(n_per_fine)
    ]


# --------------------------------------------------------------------------------------- bad input


class Bad(NamedTuple):
    id: str
    files: dict  # file name -> content, as ``write`` takes it
    message: str  # the whole DataError message; "{tmp}" stands for the test's folder
    kwargs: dict  # keyword arguments of load_files
    call: Callable[[Path], object] | None  # instead of load_files(*files, **kwargs), given the folder


def bad(id: str, files: dict, message: str, call=None, **kwargs) -> Bad:
    return Bad(id, files, message, kwargs, call)


ROW_A1 = '{"text": "t1", "l0": "A", "l1": "a1"}\n'
ROW_B1 = '{"text": "t3", "l0": "B", "l1": "b1"}\n'
TITLED_CSV = "title,category,subcategory\nt1,A,a1\nt2,B,b1\n"
TITLED_ROWS = [
    {"title": "t1", "category": "A", "subcategory": "a1"},
    {"title": "t2", "category": "B", "subcategory": "b1"},
]
NO_SUBCAT = dict(text_col="title", level_cols=("category", "subcat"))
NO_TEXT = dict(level_cols=("category", "subcategory"))

BAD_INPUT = [
    # --- a label under two parents (the message names where the first parent was seen)
    bad(
        "two-parents-one-file",
        {"train.csv": "text,l0,l1\nt1,A,x\nt2,A,y\nt3,B,x\nt4,B,z\n"},
        "{tmp}/train.csv: line 4: label 'x' in column 'l1' has parent 'B', but parent 'A' at {tmp}/train.csv line 2",
    ),
    bad(
        "two-parents-across-files",  # a2 first occurs in train row 5, under A
        {
            "train.jsonl": canonical_rows(),
            "test.jsonl": '{"text": "ok", "l0": "A", "l1": "a1"}\n{"text": "bad", "l0": "B", "l1": "a2"}\n',
        },
        "{tmp}/test.jsonl: line 2: label 'a2' in column 'l1' has parent 'B', but parent 'A' at "
        "{tmp}/train.jsonl line 5",
    ),
    bad(
        "two-parents-middle-level",
        {
            "three.jsonl": '{"text": "1", "l0": "X", "l1": "m", "l2": "m1"}\n'
            '{"text": "2", "l0": "Y", "l1": "m", "l2": "m2"}\n'
        },
        "{tmp}/three.jsonl: line 2: label 'm' in column 'l1' has parent 'Y', but parent 'X' at "
        "{tmp}/three.jsonl line 1",
        level_cols=("l0", "l1", "l2"),
    ),
    # --- a missing label
    bad(
        "missing-label-csv-empty",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,B,\nt3,B,b1\n"},
        "{tmp}/train.csv: line 3: missing label in column 'l1'",
    ),
    bad(
        "missing-label-csv-blank",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,B,   \nt3,B,b1\n"},
        "{tmp}/train.csv: line 3: missing label in column 'l1'",
    ),
    bad(
        "missing-label-csv-short-row",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,B\nt3,B,b1\n"},
        "{tmp}/train.csv: line 3: missing label in column 'l1'",
    ),
    bad(
        "missing-label-jsonl-null",
        {"train.jsonl": ROW_A1 + '{"text": "t2", "l0": null, "l1": "b1"}\n' + ROW_B1},
        "{tmp}/train.jsonl: line 2: missing label in column 'l0'",
    ),
    bad(
        "missing-label-jsonl-empty",
        {"train.jsonl": ROW_A1 + '{"text": "t2", "l0": "", "l1": "b1"}\n' + ROW_B1},
        "{tmp}/train.jsonl: line 2: missing label in column 'l0'",
    ),
    bad(
        "missing-label-jsonl-absent",
        {"train.jsonl": ROW_A1 + '{"text": "t2", "l1": "b1"}\n' + ROW_B1},
        "{tmp}/train.jsonl: line 2: missing label in column 'l0'",
    ),
    bad(
        "missing-label-parquet",
        {
            "train.parquet": [
                {"text": "t1", "l0": "A", "l1": "a1"},
                {"text": "t2", "l0": "B", "l1": None},
                {"text": "t3", "l0": "B", "l1": "b1"},
            ]
        },
        "{tmp}/train.parquet: row 2: missing label in column 'l1'",
    ),
    bad(
        "jsonl-row-is-line-number",  # a blank line still counts, as in 'not valid JSON' below
        {"train.jsonl": ROW_A1 + '\n{"text": "t3", "l0": "B"}\n'},
        "{tmp}/train.jsonl: line 3: missing label in column 'l1'",
    ),
    # --- a missing value spelled out: the same spellings are missing in every format
    bad(
        "missing-label-csv-nan",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,B,NaN\nt3,B,b1\n"},
        "{tmp}/train.csv: line 3: missing label in column 'l1' ('NaN' is read as a missing value)",
    ),
    bad(
        "missing-label-csv-na",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,NA,b1\nt3,B,b1\n"},
        "{tmp}/train.csv: line 3: missing label in column 'l0' ('NA' is read as a missing value)",
    ),
    bad(
        "missing-label-csv-null",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,B, null\nt3,B,b1\n"},
        "{tmp}/train.csv: line 3: missing label in column 'l1' ('null' is read as a missing value)",
    ),
    bad(
        "missing-label-tsv-none",
        {"train.tsv": "text\tl0\tl1\nt1\tA\ta1\nt2\tB\tNone\n"},
        "{tmp}/train.tsv: line 3: missing label in column 'l1' ('None' is read as a missing value)",
    ),
    bad(
        "missing-label-jsonl-nan-string",
        {"train.jsonl": ROW_A1 + '{"text": "t2", "l0": "B", "l1": "NaN"}\n'},
        "{tmp}/train.jsonl: line 2: missing label in column 'l1' ('NaN' is read as a missing value)",
    ),
    bad(
        "missing-label-jsonl-nan-number",
        {"train.jsonl": ROW_A1 + '{"text": "t2", "l0": "B", "l1": NaN}\n'},
        "{tmp}/train.jsonl: line 2: missing label in column 'l1'",
    ),
    bad(
        "missing-label-parquet-na-string",
        {"train.parquet": [{"text": "t1", "l0": "A", "l1": "a1"}, {"text": "t2", "l0": "B", "l1": "N/A"}]},
        "{tmp}/train.parquet: row 2: missing label in column 'l1' ('N/A' is read as a missing value)",
    ),
    # --- missing text
    bad(
        "missing-text-csv-empty",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,A,a2\n,B,b1\n"},
        "{tmp}/train.csv: line 4: missing text in column 'text'",
    ),
    bad(
        "missing-text-csv-blank",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,A,a2\n  ,B,b1\n"},
        "{tmp}/train.csv: line 4: missing text in column 'text'",
    ),
    bad(
        "missing-text-jsonl-gz-null",
        {"train.jsonl.gz": ROW_A1 + '{"text": null, "l0": "B", "l1": "b1"}\n'},
        "{tmp}/train.jsonl.gz: line 2: missing text in column 'text'",
    ),
    bad(
        "missing-text-jsonl-gz-empty",
        {"train.jsonl.gz": ROW_A1 + '{"text": "", "l0": "B", "l1": "b1"}\n'},
        "{tmp}/train.jsonl.gz: line 2: missing text in column 'text'",
    ),
    bad(
        "missing-text-jsonl-gz-blank",
        {"train.jsonl.gz": ROW_A1 + '{"text": " \\t", "l0": "B", "l1": "b1"}\n'},
        "{tmp}/train.jsonl.gz: line 2: missing text in column 'text'",
    ),
    bad(
        "missing-text-jsonl-gz-absent",
        {"train.jsonl.gz": ROW_A1 + '{"l0": "B", "l1": "b1"}\n'},
        "{tmp}/train.jsonl.gz: line 2: missing text in column 'text'",
    ),
    bad(
        "missing-text-custom-column",
        {"train.jsonl": '{"title": "t", "c": "A", "s": "a"}\n{"title": null, "c": "B", "s": "b"}\n'},
        "{tmp}/train.jsonl: line 2: missing text in column 'title'",
        text_col="title",
        level_cols=["c", "s"],
    ),
    # --- empty files
    bad("empty-csv-no-bytes", {"train.csv": ""}, "{tmp}/train.csv: file is empty"),
    bad("empty-csv-header-only", {"train.csv": "text,l0,l1\n"}, "{tmp}/train.csv: file is empty (no rows)"),
    bad("empty-jsonl-no-bytes", {"train.jsonl": ""}, "{tmp}/train.jsonl: file is empty (no rows)"),
    bad("empty-jsonl-blank-lines", {"train.jsonl": "\n\n  \n"}, "{tmp}/train.jsonl: file is empty (no rows)"),
    bad(
        "empty-test-file",
        {"train.jsonl": canonical_rows(), "test.csv": "text,l0,l1\n"},
        "{tmp}/test.csv: file is empty (no rows)",
    ),
    # --- too few levels or classes
    bad(
        "single-class-coarse",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,A,a2\n"},
        "{tmp}/train.csv: column 'l0' has a single class 'A'; every level needs at least two",
    ),
    # With a valid hierarchy a single class at level k forces one at level k - 1, so reverse the
    # level order: 'l1' (one class, z) becomes the coarse level above 'l0' (A, B).
    bad(
        "single-class-fine",
        {"train.csv": "text,l0,l1\nt1,A,z\nt2,B,z\n"},
        "{tmp}/train.csv: column 'l1' has a single class 'z'; every level needs at least two",
        level_cols=("l1", "l0"),
    ),
    bad(
        "single-level",
        {"train.jsonl": canonical_rows()},
        "{tmp}/train.jsonl: a hierarchy needs at least two levels, got ['l0']",
        level_cols=("l0",),
    ),
    # --- a label of the test or validation file never seen in training
    bad(
        "unseen-test-label-fine",
        {
            "train.jsonl": canonical_rows(),
            "test.jsonl": '{"text": "ok", "l0": "B", "l1": "b1"}\n{"text": "new", "l0": "A", "l1": "a9"}\n',
        },
        "{tmp}/test.jsonl: line 2: label 'a9' in column 'l1' never appears in the training data ({tmp}/train.jsonl)",
    ),
    bad(
        "unseen-test-label-coarse",
        {
            "train.jsonl": canonical_rows(),
            "test.jsonl": '{"text": "ok", "l0": "B", "l1": "b1"}\n{"text": "new", "l0": "C", "l1": "c1"}\n',
        },
        "{tmp}/test.jsonl: line 2: label 'C' in column 'l0' never appears in the training data ({tmp}/train.jsonl)",
    ),
    bad(
        "unseen-validation-label",
        {"train.jsonl": canonical_rows(), "test.jsonl": canonical_rows(1), "val.csv": "text,l0,l1\nv1,A,a1\nv2,B,b7\n"},
        "{tmp}/val.csv: line 3: label 'b7' in column 'l1' never appears in the training data ({tmp}/train.jsonl)",
    ),
    # --- a column that is not there (the message lists those that are)
    bad(
        "no-level-column-csv",
        {"user.csv": TITLED_CSV},
        "{tmp}/user.csv: no column 'subcat' (columns: title, category, subcategory)",
        **NO_SUBCAT,
    ),
    bad(
        "no-level-column-jsonl",
        {"user.jsonl": TITLED_ROWS},
        "{tmp}/user.jsonl: no column 'subcat' (columns: title, category, subcategory)",
        **NO_SUBCAT,
    ),
    bad(
        "no-level-column-parquet",
        {"user.parquet": TITLED_ROWS},
        "{tmp}/user.parquet: no column 'subcat' (columns: title, category, subcategory)",
        **NO_SUBCAT,
    ),
    bad(
        "no-text-column-csv",
        {"user.csv": TITLED_CSV},
        "{tmp}/user.csv: no column 'text' (columns: title, category, subcategory)",
        **NO_TEXT,
    ),
    bad(
        "no-text-column-jsonl",
        {"user.jsonl": TITLED_ROWS},
        "{tmp}/user.jsonl: no column 'text' (columns: title, category, subcategory)",
        **NO_TEXT,
    ),
    bad(
        "no-text-column-parquet",
        {"user.parquet": TITLED_ROWS},
        "{tmp}/user.parquet: no column 'text' (columns: title, category, subcategory)",
        **NO_TEXT,
    ),
    # --- broken JSON Lines
    bad(
        "invalid-json-line",
        {"train.jsonl": ROW_A1 + ROW_B1 + '{"text": "t3", "l0": \n'},
        "{tmp}/train.jsonl: line 3: not valid JSON (Expecting value)",
    ),
    bad(
        "invalid-json-line-gz",
        {"train.jsonl.gz": ROW_A1 + ROW_B1 + '{"text": "t3", "l0": \n'},
        "{tmp}/train.jsonl.gz: line 3: not valid JSON (Expecting value)",
    ),
    bad(
        "json-line-not-an-object",
        {"train.jsonl": ROW_A1 + '["t2", "B", "b1"]\n'},
        "{tmp}/train.jsonl: line 2: expected a JSON object",
    ),
    # --- text that is not UTF-8, a quote never closed: the file and line or row are named
    bad(
        "not-utf8-csv",
        {"train.csv": b"text,l0,l1\nt1,A,a1\nt\xe92,B,b1\n"},
        "{tmp}/train.csv: line 3: not UTF-8 text (byte 0xe9 at position 2); save the file as UTF-8",
    ),
    bad(
        "not-utf8-csv-gz",
        {"train.csv.gz": b"text,l0,l1\nt1,A,a1\nt\xe92,B,b1\n"},
        "{tmp}/train.csv.gz: line 3: not UTF-8 text (byte 0xe9 at position 2); save the file as UTF-8",
    ),
    bad(
        "not-utf8-jsonl",
        {"train.jsonl": ROW_A1.encode() + b'{"text": "\xff", "l0": "B", "l1": "b1"}\n'},
        "{tmp}/train.jsonl: line 2: not UTF-8 text (byte 0xff at position 11); save the file as UTF-8",
    ),
    bad(
        "not-utf8-jsonl-gz",
        {"train.jsonl.gz": ROW_A1.encode() + b'{"text": "\xff", "l0": "B", "l1": "b1"}\n'},
        "{tmp}/train.jsonl.gz: line 2: not UTF-8 text (byte 0xff at position 11); save the file as UTF-8",
    ),
    bad(
        "unterminated-quote-csv",
        {"train.csv": 'text,l0,l1\nt1,A,a1\n"t2,B,b1\nt3,B,b1\n'},
        "{tmp}/train.csv: line 3: a quoted field is never closed (unterminated quote)",
    ),
    bad(
        "too-many-fields-csv",
        {"train.csv": "text,l0,l1\nt1,A,a1\nt2,B,b1,x\n"},
        "{tmp}/train.csv: not valid CSV (Error tokenizing data. C error: Expected 3 fields in line 3, saw 4)",
    ),
    # --- level columns named twice
    bad(
        "repeated-levels",
        {"train.jsonl": canonical_rows()},
        "level columns must be distinct, got ['l0', 'l0'] ('l0' repeated)",
        level_cols=("l0", "l0"),
    ),
    # --- too few rows to hold out the splits that are not given: stopped before any encoding
    bad(
        "too-small-for-test-and-validation",  # 2 rows per fine class: 1 to test, 1 left for training
        {"train.jsonl": canonical_rows(2)},
        "{tmp}/train.jsonl: too few rows to hold out a test and a validation split: the largest class in "
        "column 'l1' has 2 rows, and a class needs at least 3 to keep one for training; give a validation "
        "file or more rows",
    ),
    bad(
        "too-small-for-test",
        {"train.jsonl": canonical_rows(1)},
        "{tmp}/train.jsonl: too few rows to hold out a test split: the largest class in column 'l1' has "
        "1 row, and a class needs at least 2 to keep one for training; give a test file or more rows",
    ),
    bad(
        "too-small-for-validation",
        {"train.jsonl": canonical_rows(1), "test.jsonl": canonical_rows(1)},
        "{tmp}/train.jsonl: too few rows to hold out a validation split: the largest class in column 'l1' "
        "has 1 row, and a class needs at least 2 to keep one for training; give a validation file or "
        "more rows",
    ),
    # --- files of unknown type, or not there
    bad(
        "unknown-type-txt",
        {"train.txt": "text,l0,l1\nt,A,a\n"},
        "{tmp}/train.txt: unknown file type; use .csv, .tsv, .jsonl(.gz) or .parquet",
    ),
    bad(
        "unknown-type-xlsx",
        {"train.xlsx": "text,l0,l1\nt,A,a\n"},
        "{tmp}/train.xlsx: unknown file type; use .csv, .tsv, .jsonl(.gz) or .parquet",
    ),
    bad(
        "unknown-type-no-extension",
        {"train": "text,l0,l1\nt,A,a\n"},
        "{tmp}/train: unknown file type; use .csv, .tsv, .jsonl(.gz) or .parquet",
    ),
    bad("no-such-file", {"nope.csv": None}, "{tmp}/nope.csv: no such file"),
    bad(
        "no-such-test-file",
        {"train.jsonl": canonical_rows(), "missing_test.jsonl": None},
        "{tmp}/missing_test.jsonl: no such file",
    ),
    bad(
        "no-such-data-set",
        {"data/toy/train.jsonl.gz": canonical_rows(20)},
        "no data set 'nosuch' in {tmp}/data (set STEER_DATA_DIR; found: toy)",
        call=lambda folder: load_dataset("nosuch", root=folder / "data"),
    ),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=lambda case: case.id)
def test_bad_input_is_one_clear_line(tmp_path, case):
    for name, content in case.files.items():
        write(tmp_path / name, content)
    with pytest.raises(DataError) as ei:
        if case.call:
            case.call(tmp_path)
        else:
            load_files(*(tmp_path / name for name in case.files), **case.kwargs)
    msg = str(ei.value)
    assert "\n" not in msg, f"message spans several lines: {msg!r}"
    assert msg == case.message.replace("{tmp}", str(tmp_path))
    assert isinstance(ei.value, ValueError)  # DataError is a ValueError


# -------------------------------------------------------------------------------------- user files


def _by_text(ds: HierarchicalDataset) -> dict[str, tuple[str, ...]]:
    """text -> label names, over all splits."""
    out = {}
    h = ds.hierarchy
    for s in ("train", "validation", "test"):
        part = ds.split(s)
        for t, row in zip(part.texts, part.labels):
            out[t] = tuple(h.classes[k][j] for k, j in enumerate(row))
    return out


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "jsonl.gz", "parquet"])
def test_user_file_custom_columns(tmp_path, fmt):
    ds = load_files(
        write(tmp_path / f"user.{fmt}", TINY_ROWS), text_col="title", level_cols="category,subcategory".split(",")
    )
    h = ds.hierarchy
    assert h.level_names == ("category", "subcategory")
    assert h.classes == (("A", "B"), ("a1", "a2", "b1"))
    assert [p.tolist() for p in h.parents] == [[0, 0, 1]]
    assert ds.name == "user"
    # every row keeps its own labels
    assert _by_text(ds) == {r["title"]: (r["category"], r["subcategory"]) for r in TINY_ROWS}


def test_user_formats_give_the_same_dataset(tmp_path):
    loaded = [
        load_files(
            write(tmp_path / fmt.replace(".", "_") / f"user.{fmt}", TINY_ROWS),
            text_col="title",
            level_cols=("category", "subcategory"),
        )
        for fmt in ("csv", "jsonl", "jsonl.gz", "parquet")
    ]
    ref = loaded[0]
    for ds in loaded[1:]:
        assert ds.hierarchy.to_dict() == ref.hierarchy.to_dict()
        for s in ("train", "validation", "test"):
            assert ds.split(s).texts == ref.split(s).texts
            np.testing.assert_array_equal(ds.split(s).labels, ref.split(s).labels)


def test_tsv_file(tmp_path):
    path = write(
        tmp_path / "train.tsv",
        "text\tl0\tl1\n" + "".join(f"{r['text']}\t{r['l0']}\t{r['l1']}\n" for r in canonical_rows()),
    )
    ds = load_files(path)
    assert ds.hierarchy.classes == (("A", "B"), ("a1", "a2", "b1"))


def test_texts_that_spell_a_missing_value_are_kept(tmp_path):
    # only labels are read as missing when spelled NA, null, ...: a text "None" is a text
    path = write(
        tmp_path / "train.csv",
        "text,l0,l1\n" + "".join(f"None,A,a{i % 2}\n" for i in range(8)) + "".join(f"u{i},B,b1\n" for i in range(4)),
    )
    ds = load_files(path)
    assert ds.hierarchy.classes == (("A", "B"), ("a0", "a1", "b1"))
    assert "None" in ds.train.texts


def test_parents_map_by_hand(tmp_path):
    # three parents; fine labels chosen so that sorted order interleaves parents
    rows = [
        ("t1", "fruit", "apple"),
        ("t2", "veg", "carrot"),
        ("t3", "fruit", "pear"),
        ("t4", "grain", "barley"),
        ("t5", "veg", "leek"),
        ("t6", "fruit", "apple"),
        ("t7", "grain", "rice"),
    ]
    train = write(tmp_path / "train.csv", "text,l0,l1\n" + "".join(",".join(r) + "\n" for r in rows))
    test = write(tmp_path / "test.csv", "text,l0,l1\nx,veg,leek\n")
    val = write(tmp_path / "val.csv", "text,l0,l1\ny,fruit,pear\n")
    ds = load_files(train, test, val)
    h = ds.hierarchy
    assert h.classes[0] == ("fruit", "grain", "veg")
    assert h.classes[1] == ("apple", "barley", "carrot", "leek", "pear", "rice")
    # apple->fruit(0), barley->grain(1), carrot->veg(2), leek->veg(2), pear->fruit(0), rice->grain(1)
    assert h.parents[0].tolist() == [0, 1, 2, 2, 0, 1]
    assert h.parents[0].dtype == np.int64
    assert h.num_levels == 2 and h.num_classes(0) == 3 and h.num_classes(1) == 6
    # labels encode as indices, row order kept; given test and validation files are used as is
    assert ds.train.texts == [r[0] for r in rows]
    assert ds.train.labels.tolist() == [[0, 0], [2, 2], [0, 4], [1, 1], [2, 3], [0, 0], [1, 5]]
    assert ds.test.texts == ["x"] and ds.test.labels.tolist() == [[2, 3]]
    assert ds.validation.texts == ["y"] and ds.validation.labels.tolist() == [[0, 4]]
    assert [n for n in ds.notes if not n.startswith("warning: ")] == []  # given splits: nothing carved
    assert ds.notes[-1].endswith(
        "5 class(es) in column 'l1' have a single example: 'barley', 'carrot', 'leek', 'pear', 'rice'"
    )
    # every label's parent agrees with the coarse label of the same row
    for split in (ds.train, ds.validation, ds.test):
        assert (h.parents[0][split.labels[:, 1]] == split.labels[:, 0]).all()
    assert Hierarchy.from_dict(json.loads(json.dumps(h.to_dict()))).to_dict() == h.to_dict()


def test_three_level_file(tmp_path):
    tree = {("X", "x1", "x1a"), ("X", "x1", "x1b"), ("X", "x2", "x2a"), ("Y", "y1", "y1a"), ("Y", "y1", "y1b")}
    rows = [{"text": f"{c} #{i}", "top": a, "mid": b, "leaf": c} for a, b, c in sorted(tree) for i in range(10)]
    path = write(tmp_path / "three.jsonl.gz", rows)
    ds = load_files(path, level_cols=("top", "mid", "leaf"))
    h = ds.hierarchy
    assert h.num_levels == 3
    assert h.classes == (("X", "Y"), ("x1", "x2", "y1"), ("x1a", "x1b", "x2a", "y1a", "y1b"))
    assert h.parents[0].tolist() == [0, 0, 1]
    assert h.parents[1].tolist() == [0, 0, 1, 2, 2]
    for s in ("train", "validation", "test"):
        lab = ds.split(s).labels
        assert lab.shape == (len(ds.split(s)), 3)
        assert (h.parents[1][lab[:, 2]] == lab[:, 1]).all()
        assert (h.parents[0][lab[:, 1]] == lab[:, 0]).all()
    stats = ds.stats()
    assert stats["levels"] == 3 and (stats["K0"], stats["K1"], stats["K2"]) == (2, 3, 5)
    assert stats["branching2"] == pytest.approx(5 / 3)


# ----------------------------------------------------------------------- splits made by load_files


def test_split_made_when_no_test_file(tmp_path):
    path = write(tmp_path / "user.jsonl", TINY_ROWS)
    ds = load_files(path, text_col="title", level_cols=("category", "subcategory"))
    # 20 per fine class: round(0.15 * 20) = 3 to test, then round(0.15 * 17) = 3 to validation
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (42, 9, 9)
    for part, n in ((ds.train, 14), (ds.validation, 3), (ds.test, 3)):
        assert Counter(part.labels[:, 1].tolist()) == {0: n, 1: n, 2: n}
    tr, va, te = (set(ds.split(s).texts) for s in ("train", "validation", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == {r["title"] for r in TINY_ROWS}
    assert len(ds.notes) == 2
    assert any(n.startswith("test:") and "15 %" in n and "seed 42" in n for n in ds.notes)
    assert any(n.startswith("validation:") and "15 %" in n and "seed 42" in n for n in ds.notes)
    # same call, same split
    again = load_files(path, text_col="title", level_cols=("category", "subcategory"))
    for s in ("train", "validation", "test"):
        assert again.split(s).texts == ds.split(s).texts
        np.testing.assert_array_equal(again.split(s).labels, ds.split(s).labels)


def test_split_of_uneven_classes_no_test_file(tmp_path):
    rng = np.random.default_rng(0)
    sizes = {"a1": 40, "a2": 13, "b1": 27, "b2": 60, "c1": 7, "c2": 1}
    parent = {f: f[0].upper() for f in sizes}
    rows = [{"text": f"{f}-{i}", "l0": parent[f], "l1": f} for f, n in sizes.items() for i in range(n)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    path = write(tmp_path / "uneven.jsonl", rows)
    ds = load_files(path)
    total = sum(sizes.values())
    assert len(ds.train) + len(ds.validation) + len(ds.test) == total
    assert abs(len(ds.test) - 0.15 * total) <= len(sizes)
    assert abs(len(ds.validation) - 0.15 * (total - len(ds.test))) <= len(sizes)
    texts = [t for s in ("train", "validation", "test") for t in ds.split(s).texts]
    assert sorted(texts) == sorted(r["text"] for r in rows)
    # the singleton class stays in train; every class keeps training examples
    assert set(ds.train.labels[:, 1].tolist()) == set(range(len(sizes)))
    assert "c2-0" in ds.train.texts


def test_validation_made_from_train_when_only_test_given(tmp_path):
    train = write(tmp_path / "train.jsonl", canonical_rows(20))
    test = write(tmp_path / "test.jsonl", canonical_rows(2))
    ds = load_files(train, test)
    assert len(ds.test) == 6 and ds.test.texts == [r["text"] for r in canonical_rows(2)]
    assert (len(ds.train), len(ds.validation)) == (51, 9)  # round(0.15 * 20) = 3 per class
    assert not set(ds.train.texts) & set(ds.validation.texts)
    assert ds.notes == ["validation: 15 % of the training split, stratified, seed 42"]
    assert ds.name == "train"


def test_given_validation_file_is_used(tmp_path):
    train = write(tmp_path / "train.jsonl", canonical_rows(20))
    test = write(tmp_path / "test.jsonl", canonical_rows(2))
    val = write(tmp_path / "val.jsonl", canonical_rows(1))
    ds = load_files(train, test, val, name="mine")
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (60, 3, 6)
    assert ds.notes == [] and ds.name == "mine"


def test_dataset_split_accessor_and_cap(tmp_path):
    ds = load_files(write(tmp_path / "train.jsonl", canonical_rows(20)))
    assert ds.split("train") is ds.train
    with pytest.raises(ValueError, match="unknown split"):
        ds.split("dev")
    capped = ds.train.cap(10, seed=1)
    assert len(capped) == 10
    pos = [ds.train.texts.index(t) for t in capped.texts]
    assert pos == sorted(pos)  # order preserved
    assert capped.texts == ds.train.cap(10, seed=1).texts
    assert ds.train.cap(None, seed=1) is ds.train and ds.train.cap(10_000, seed=1) is ds.train


# -------------------------------------------------------------------------------- stratified_split


def _labels_from_sizes(sizes: list[int], seed: int = 0) -> np.ndarray:
    fine = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    fine = np.random.default_rng(seed).permutation(fine)
    return np.stack([fine // 2, fine], axis=1).astype(np.int64)


def test_stratified_split_partition_and_fraction():
    sizes = [100, 40, 20, 13, 7, 5, 4, 1]
    y = _labels_from_sizes(sizes)
    keep, held = stratified_split(y)
    assert keep.dtype.kind == "i" and held.dtype.kind == "i"
    assert np.intersect1d(keep, held).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([keep, held])), np.arange(len(y)))
    assert (np.diff(keep) > 0).all() and (np.diff(held) > 0).all()
    for c, n in enumerate(sizes):
        n_held = int((y[held, 1] == c).sum())
        assert n_held == round(0.15 * n)  # per-class share
        assert (y[keep, 1] == c).sum() >= 1
    assert abs(len(held) / len(y) - 0.15) < 0.02


def test_stratified_split_classes_with_enough_examples_in_both_parts():
    sizes = [4, 5, 10, 33, 100]
    y = _labels_from_sizes(sizes, seed=3)
    keep, held = stratified_split(y)
    for c in range(len(sizes)):
        assert (y[keep, 1] == c).sum() >= 1
        assert (y[held, 1] == c).sum() >= 1


def test_stratified_split_every_class_with_two_or_more_in_both_parts():
    sizes = [2, 3, 4, 10]
    y = _labels_from_sizes(sizes, seed=1)
    keep, held = stratified_split(y)
    for c, n in enumerate(sizes):
        assert (y[keep, 1] == c).sum() >= 1
        assert (y[held, 1] == c).sum() >= 1, f"class with {n} examples has none held out"


def test_stratified_split_singletons_stay_in_keep():
    y = _labels_from_sizes([1, 1, 1, 20])
    keep, held = stratified_split(y)
    for c in range(3):
        assert (y[keep, 1] == c).sum() == 1
    assert len(held) == 3


def test_stratified_split_uses_finest_level():
    # coarse level has 2 classes of 50; the fine level splits them 45/5 and 25/25
    fine = np.array([0] * 45 + [1] * 5 + [2] * 25 + [3] * 25)
    y = np.stack([fine // 2, fine], axis=1)
    _, held = stratified_split(y)
    assert Counter(y[held, 1].tolist()) == {0: round(0.15 * 45), 1: round(0.15 * 5), 2: 4, 3: 4}


def test_stratified_split_deterministic_and_seed_dependent():
    y = _labels_from_sizes([50, 30, 20, 10])
    a = stratified_split(y)
    b = stratified_split(y, fraction=0.15, seed=42)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = stratified_split(y, seed=7)
    assert len(c[1]) == len(a[1])
    assert not np.array_equal(c[1], a[1])


def test_stratified_split_other_fraction():
    y = _labels_from_sizes([100, 100])
    keep, held = stratified_split(y, fraction=0.3)
    assert len(held) == 60 and len(keep) == 140


def test_stratified_split_nothing_to_hold_out():
    y = _labels_from_sizes([1, 1, 1])
    keep, held = stratified_split(y)
    assert held.size == 0 and held.dtype == np.int64
    np.testing.assert_array_equal(keep, np.arange(3))


# --------------------------------------------------------------------------------- hierarchy_stats


def _h(counts: list[int]) -> float:
    total = sum(counts)
    return -sum(c / total * math.log2(c / total) for c in counts if c)


def test_hierarchy_stats_by_hand():
    # parents A (children a1, a2) and B (child b1); counts a1=3, a2=1, b1=4
    h = Hierarchy(("coarse", "fine"), (("A", "B"), ("a1", "a2", "b1")), (np.array([0, 0, 1]),))
    fine = [0] * 3 + [1] * 1 + [2] * 4
    labels = np.array([[h.parents[0][f], f] for f in fine], dtype=np.int64)
    s = hierarchy_stats(h, labels)
    assert s["levels"] == 2 and s["K0"] == 2 and s["K1"] == 3
    assert s["branching1"] == pytest.approx(1.5)
    n = 8
    h0 = -(4 / n) * math.log2(4 / n) - (4 / n) * math.log2(4 / n)
    # H(L1|L0) = sum_parent P(parent) * H(children | parent)
    h1_0 = (4 / n) * -((3 / 4) * math.log2(3 / 4) + (1 / 4) * math.log2(1 / 4)) + (4 / n) * 0.0
    assert s["H0"] == pytest.approx(h0) == pytest.approx(1.0)
    assert s["H1|0"] == pytest.approx(h1_0)
    assert s["H1|0"] == pytest.approx(0.5 * (2 - 0.75 * math.log2(3)))  # closed form, ~0.4056


def test_hierarchy_stats_three_levels_by_hand():
    # X -> {x1 -> {p, q}, x2 -> {r}}, Y -> {y1 -> {s}}; leaf counts p=2, q=2, r=4, s=8
    h = Hierarchy(
        ("l0", "l1", "l2"),
        (("X", "Y"), ("x1", "x2", "y1"), ("p", "q", "r", "s")),
        (np.array([0, 0, 1]), np.array([0, 0, 1, 2])),
    )
    leaf_counts = {0: 2, 1: 2, 2: 4, 3: 8}
    rows = []
    for leaf, c in leaf_counts.items():
        mid = h.parents[1][leaf]
        rows += [[h.parents[0][mid], mid, leaf]] * c
    labels = np.array(rows, dtype=np.int64)
    s = hierarchy_stats(h, labels)
    assert (s["K0"], s["K1"], s["K2"]) == (2, 3, 4)
    assert s["branching1"] == pytest.approx(3 / 2) and s["branching2"] == pytest.approx(4 / 3)
    assert s["H0"] == pytest.approx(_h([8, 8]))  # = 1
    # H(L1|L0): X splits 4/4 -> 1 bit, weight 1/2; Y has one child -> 0
    assert s["H1|0"] == pytest.approx(0.5 * _h([4, 4]) + 0.5 * 0.0) == pytest.approx(0.5)
    # H(L2|L1): x1 splits 2/2 (weight 4/16), x2 and y1 single children
    assert s["H2|1"] == pytest.approx(4 / 16 * _h([2, 2])) == pytest.approx(0.25)


def test_dataset_stats_adds_split_sizes(tmp_path):
    ds = load_files(write(tmp_path / "user.csv", TINY_ROWS), text_col="title", level_cols=("category", "subcategory"))
    s = ds.stats()
    assert (s["train"], s["validation"], s["test"]) == (42, 9, 9)
    # train has 14 per fine class: A has 28 (a1, a2 balanced), B has 14
    assert s["H0"] == pytest.approx(_h([28, 14]))
    assert s["H1|0"] == pytest.approx(28 / 42 * 1.0)


# -------------------------------------------------------- canonical folders and the data directory


def _make_canonical(root: Path, name: str, splits=("train", "validation", "test"), rows=None) -> Path:
    d = root / name
    for s in splits:
        write(d / f"{s}.jsonl.gz", rows if rows is not None else canonical_rows(20 if s == "train" else 2))
    return d


def test_list_and_load_canonical_folder(tmp_path):
    _make_canonical(tmp_path, "full")
    _make_canonical(tmp_path, "no_val", splits=("train", "test"))
    write(tmp_path / "not_a_dataset" / "test.jsonl.gz", "")
    (tmp_path / "README.md").write_text("x")
    assert list_datasets(tmp_path) == ["full", "no_val"]
    assert list_datasets(tmp_path / "missing") == []
    assert dataset_path("full", root=tmp_path) == tmp_path / "full"

    full = load_dataset("full", root=tmp_path)
    assert full.name == "full" and full.notes == []
    assert (len(full.train), len(full.validation), len(full.test)) == (60, 6, 6)
    assert full.hierarchy.level_names == ("l0", "l1")

    nv = load_dataset("no_val", root=tmp_path)
    assert len(nv.test) == 6 and len(nv.validation) == 9 and len(nv.train) == 51
    assert any("validation" in n for n in nv.notes)


def test_canonical_three_levels_and_level_choice(tmp_path, monkeypatch):
    rows = [
        {"text": f"{c}{i}", "l0": a, "l1": b, "l2": c}
        for a, b, c in [("X", "x1", "p"), ("X", "x2", "q"), ("Y", "y1", "r"), ("Y", "y1", "s")]
        for i in range(10)
    ]
    _make_canonical(tmp_path, "deep", rows=rows)
    monkeypatch.setenv("STEER_DATA_DIR", str(tmp_path))
    assert list_datasets() == ["deep"]
    ds = load_dataset("deep")
    assert ds.hierarchy.level_names == ("l0", "l1", "l2")
    assert ds.hierarchy.parents[1].tolist() == [0, 1, 2, 2]
    two = load_dataset("deep", levels=("l0", "l1"))
    assert two.hierarchy.num_levels == 2


def test_load_dataset_unknown_name_uses_env_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STEER_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    with pytest.raises(DataError) as ei:
        load_dataset("nosuch")
    assert str(ei.value) == f"no data set 'nosuch' in {tmp_path} (set STEER_DATA_DIR; found: none)"


def test_data_dir_default(monkeypatch):
    monkeypatch.delenv("STEER_DATA_DIR", raising=False)
    assert data_dir() == Path("data")


# --------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_root() -> Path:
    value = os.environ.get("STEER_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("STEER_DATA_DIR unset or missing; real data sets not available")
    return Path(value)


def test_real_list_datasets(real_root):
    names = list_datasets(real_root)
    for n in ("clinc150", "trec", "20newsgroups", "goemotions", "dbpedia_classes_partial"):
        assert n in names


def test_real_clinc150(real_root):
    ds = load_dataset("clinc150", root=real_root)
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (15000, 3000, 4500)
    assert ds.hierarchy.num_classes(0) == 10 and ds.hierarchy.num_classes(1) == 150
    s = ds.stats()
    assert s["K0"] == 10 and s["K1"] == 150 and s["branching1"] == pytest.approx(15.0)
    assert s["H0"] == pytest.approx(math.log2(10), abs=1e-6)  # balanced: 100 per intent, 15 per domain
    assert s["H1|0"] == pytest.approx(math.log2(15), abs=1e-6)
    assert ds.notes == []
    assert "oos" not in ds.hierarchy.classes[0]


def test_real_trec_validation_from_train(real_root, monkeypatch):
    monkeypatch.setenv("STEER_DATA_DIR", str(real_root))
    ds = load_dataset("trec")
    assert len(ds.test) == 500
    assert len(ds.train) + len(ds.validation) == 5452
    assert 0.12 < len(ds.validation) / 5452 < 0.18
    assert any(n.startswith("validation") and "training" in n for n in ds.notes)
    assert ds.hierarchy.num_classes(0) == 6 and ds.hierarchy.num_classes(1) == 50


def test_real_dbpedia_partial_three_levels(real_root):
    ds = load_dataset("dbpedia_classes_partial", root=real_root)
    h = ds.hierarchy
    assert h.level_names == ("l0", "l1", "l2")
    assert (h.num_classes(0), h.num_classes(1), h.num_classes(2)) == (9, 70, 219)
    assert len(ds.test) == 922 and len(ds.train) + len(ds.validation) == 5000
    lab = ds.train.labels
    assert (h.parents[1][lab[:, 2]] == lab[:, 1]).all() and (h.parents[0][lab[:, 1]] == lab[:, 0]).all()


# ----------------------------------------------------------------------------- combining data sets


def test_combine_datasets_one_taxonomy(tmp_path):
    """Two data sets (one with three levels) become one two-level taxonomy; no label changes meaning."""
    two = load_files(write(tmp_path / "two.jsonl", canonical_rows(8)), name="two")
    rows3 = [
        {"text": f"{leaf} {i}", "l0": "X" if leaf < "c" else "Y", "l1": leaf[0], "l2": leaf}
        for leaf in ("a1", "a2", "b1", "c1", "c2")
        for i in range(8)
    ]
    three = load_files(write(tmp_path / "three.jsonl", rows3), level_cols=("l0", "l1", "l2"), name="three")
    both = combine_datasets([two, three], name="both")
    h = both.hierarchy
    assert h.num_levels == 2
    assert h.classes[0] == ("two/A", "two/B", "three/X", "three/Y")
    assert h.classes[1] == ("two/a1", "two/a2", "two/b1", "three/a1", "three/a2", "three/b1", "three/c1", "three/c2")
    parent = {h.classes[1][f]: h.classes[0][c] for f, c in enumerate(h.fine_to_level(0))}
    assert parent["two/a2"] == "two/A" and parent["three/b1"] == "three/X" and parent["three/c1"] == "three/Y"
    for split in ("train", "validation", "test"):
        a, b, ab = two.split(split), three.split(split), both.split(split)
        assert ab.texts == a.texts + b.texts
        names = [(h.classes[0][c], h.classes[1][f]) for c, f in ab.labels]
        expect = [(f"two/{two.hierarchy.classes[0][c]}", f"two/{two.hierarchy.classes[1][f]}") for c, f in a.labels] + [
            (f"three/{three.hierarchy.classes[0][c]}", f"three/{three.hierarchy.classes[2][f]}") for c, _, f in b.labels
        ]
        assert names == expect
    with pytest.raises(ValueError, match="distinct"):
        combine_datasets([two, two])


def test_messages_count_lines_as_an_editor_does(tmp_path):
    """A CSV's line numbers count its header, blank lines and line breaks inside quoted fields; a
    Parquet file's rows are rows."""
    path = tmp_path / "train.csv"
    path.write_text('text,l0,l1\n"two\nlines",A,a1\n\nok,A,a2\nbad,,b1\n')
    with pytest.raises(DataError) as e:
        load_files(path)
    assert str(e.value) == f"{path}: line 6: missing label in column 'l0'"
    pq_path = tmp_path / "train.parquet"
    pd.DataFrame({"text": ["x", "y"], "l0": ["A", None], "l1": ["a1", "b1"]}).to_parquet(pq_path)
    with pytest.raises(DataError, match="train.parquet: row 2: missing label in column 'l0'"):
        load_files(pq_path)
