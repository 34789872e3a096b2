"""Public data sets turned into the canonical layout (``<name>/{train,validation,test}.jsonl.gz`` with
``text``, ``l0``, ``l1``), for users who have their files.

:func:`import_yahoo_answers` reads the Yahoo Answers topics CSVs (Zhang et al., 2015: ``train.csv`` and
``test.csv``, no header; class index 1-10, question title, question content, best answer) and groups the
ten topics into the four coarse groups the original code used.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from .files import at, utf8_errors
from .hierarchy import DataError, stratified_split

YAHOO_TOPICS = (
    "Society & Culture",
    "Science & Mathematics",
    "Health",
    "Education & Reference",
    "Computers & Internet",
    "Sports",
    "Business & Finance",
    "Entertainment & Music",
    "Family & Relationships",
    "Politics & Government",
)  # class index 1..10, in this order
YAHOO_GROUPS = {  # the original code's four coarse groups
    "Knowledge": ("Science & Mathematics", "Education & Reference", "Computers & Internet"),
    "Lifestyle": ("Health", "Family & Relationships", "Society & Culture"),
    "Entertainment": ("Sports", "Entertainment & Music"),
    "Professional": ("Business & Finance", "Politics & Government"),
}
IMPORTERS = ("yahoo-answers",)


def _yahoo_rows(path: Path) -> list[dict]:
    group = {topic: g for g, topics in YAHOO_GROUPS.items() for topic in topics}
    rows = []
    with utf8_errors(path), open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        for record in reader:
            if not record:
                continue
            line = reader.line_num
            if len(record) < 3:
                raise DataError(
                    f"{path}: {at(path, line)}: expected class index, title, content (and answer), "
                    f"got {len(record)} field(s)"
                )
            try:
                topic = YAHOO_TOPICS[int(record[0]) - 1] if 1 <= int(record[0]) <= 10 else None
            except ValueError:
                topic = None
            if topic is None:
                raise DataError(f"{path}: {at(path, line)}: class index {record[0]!r} is not 1-10")
            text = " ".join(part.replace("\\n", " ").strip() for part in record[1:3]).strip()
            if not text:
                raise DataError(f"{path}: {at(path, line)}: empty title and content")
            rows.append({"text": text, "l0": group[topic], "l1": topic})
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _write_split(path: Path, rows: list[dict]) -> None:
    """Gzip JSON Lines with no time stamp: the same rows give the same bytes."""
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    atomic_write(path, lambda tmp: tmp.write_bytes(gzip.compress(data, mtime=0)))


def import_yahoo_answers(source: str | Path, out: str | Path, *, seed: int = 42) -> dict[str, int]:
    """Write the Yahoo Answers topics data set into ``out`` in the canonical layout; returns the rows per
    split. ``source``: a folder with ``train.csv`` and ``test.csv``, or the ``train.csv`` file itself
    (its folder's ``test.csv`` is then used). The text is the title and the content joined by a space,
    as the original code joined them; the validation split is a seeded 15 % of train, stratified by topic."""
    source, out = Path(source), Path(out)
    folder = source if source.is_dir() else source.parent
    train_file, test_file = (
        (folder / "train.csv", folder / "test.csv") if source.is_dir() else (source, folder / "test.csv")
    )
    for f in (train_file, test_file):
        if not f.is_file():
            raise DataError(f"{f}: no such file (the Yahoo Answers topics data set has train.csv and test.csv)")
    train, test = _yahoo_rows(train_file), _yahoo_rows(test_file)
    labels = np.array([[0, YAHOO_TOPICS.index(r["l1"])] for r in train])
    keep, held = stratified_split(labels, seed=seed)
    splits = {"train": [train[i] for i in keep], "validation": [train[i] for i in held], "test": test}
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        _write_split(out / f"{name}.jsonl.gz", rows)
    counts = {name: len(rows) for name, rows in splits.items()}
    atomic_write_text(
        out / "SOURCE.md",
        "\n".join(
            [
                "# Yahoo Answers topics (Zhang et al., 2015), ten topics in four groups",
                "",
                f"Imported by `steer datasets import yahoo-answers` from {train_file} and {test_file}.",
                "",
                "- text: the question's title and content, joined by a space (as the original code joined them);",
                "- l1: the topic (class index 1-10 in the order " + ", ".join(YAHOO_TOPICS) + ");",
                "- l0: the original code's group: "
                + "; ".join(f"{g} = {', '.join(t)}" for g, t in YAHOO_GROUPS.items())
                + ";",
                f"- validation: a 15 % of train, stratified by topic, seed {seed}.",
                "",
                "| split | rows |",
                "|---|---|",
                *[f"| {k} | {v:,} |" for k, v in counts.items()],
                "",
            ]
        ),
    )
    return counts
