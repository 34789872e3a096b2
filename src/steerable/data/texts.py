"""Texts read in chunks from a file of any size: one text a line (.txt), or a column of a CSV, JSON Lines or
Parquet file; row i of what is read is line or row i of the file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .files import csv_errors, utf8_errors
from .hierarchy import DataError


def _batched(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def iter_text_chunks(path: str | Path, chunk_size: int, text_col: str | None = None) -> Iterator[list[str]]:
    """Chunks of texts from a .txt file (one text a line), or a column of .csv/.jsonl/.parquet.

    One text per line or row, in order, so that row i of the output is line or row i of the input:
    a blank line of a .txt file or an empty (or null) cell is the empty text ``""``. Blank lines of
    a CSV or JSON Lines file are not rows there, and are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".txt"):
        with utf8_errors(path), open(path, encoding="utf-8") as f:
            yield from _batched((line.rstrip("\n") for line in f), chunk_size)
        return
    col = text_col or "text"
    if name.endswith(".parquet"):
        pf = pq.ParquetFile(path)
        if col not in pf.schema_arrow.names:
            raise DataError(f"{path}: no column {col!r} (columns: {', '.join(pf.schema_arrow.names)})")
        kind = pf.schema_arrow.field(col).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataError(
                f"{path}: column {col!r} holds {kind} values, not text; name the column that holds the texts"
            )
        for batch in pf.iter_batches(batch_size=chunk_size, columns=[col]):
            yield [t if t is not None else "" for t in batch.column(0).to_pylist()]
        return
    if name.endswith((".csv", ".tsv")):
        sep = "\t" if name.endswith(".tsv") else ","
        with csv_errors(path):
            for df in pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=chunk_size):
                if col not in df.columns:
                    raise DataError(f"{path}: no column {col!r} (columns: {', '.join(map(str, df.columns))})")
                yield df[col].tolist()
        return
    if name.endswith((".jsonl", ".jsonl.gz")):

        def texts(f: Iterable[str]) -> Iterator[str]:
            for i, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}: line {i}: not valid JSON ({e.msg})") from None
                    if not isinstance(row, dict) or col not in row:
                        raise DataError(f"{path}: line {i}: no key {col!r}")
                    if row[col] is not None and not isinstance(row[col], str):
                        raise DataError(f"{path}: line {i}: key {col!r} holds a {type(row[col]).__name__}, not text")
                    yield "" if row[col] is None else row[col]

        opener = gzip.open if name.endswith(".gz") else open
        with utf8_errors(path), opener(path, "rt", encoding="utf-8") as f:
            yield from _batched(texts(f), chunk_size)
        return
    raise DataError(f"{path}: unknown file type; use .txt, .csv, .tsv, .jsonl(.gz) or .parquet")
