"""Streaming encoding of large text files: bounded memory, resumable after an interruption.

Texts are read in chunks; each chunk's embeddings are written atomically as a part file in
``<out>.parts/`` named by its chunk number. A rerun skips the parts that exist, and the final file
(``.npy`` or ``.parquet``) is assembled from the parts by streaming, then the parts are removed.
The backbone's vector cache is bypassed: it would hold every vector of the file in memory.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .data import DataError, csv_errors, utf8_errors
from .io import atomic_write, atomic_write_json, read_json


def _batched(items: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def iter_text_chunks(path: str | Path, chunk_size: int, text_col: str | None = None
                     ) -> Iterator[list[str]]:
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
            raise DataError(f"{path}: column {col!r} holds {kind} values, not text; name the column that holds "
                            "the texts")
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
        def texts(f):
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


def encode_file(path: str | Path, out: str | Path, encode: Callable[[list[str]], np.ndarray], *,
                chunk_size: int = 4096, text_col: str | None = None, settings: dict | None = None,
                progress: bool = True) -> dict:
    """Encode every text of ``path`` with ``encode`` into ``out`` (.npy or .parquet), resumably.

    ``settings`` (model, dim, ...) is stored with the parts; resuming with other settings is refused.
    Returns a summary: rows, chunks encoded now, chunks reused.
    """
    path, out = Path(path), Path(out)
    if out.suffix not in (".npy", ".parquet"):
        raise DataError(f"{out}: output must end in .npy or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    parts = out.with_name(out.name + ".parts")
    if parts.is_dir() and any(parts.iterdir()) and not (parts / "manifest.json").exists():
        raise DataError(f"{parts}: a folder that `steer encode` did not leave (no manifest.json); "
                        "move it away or choose another output name")
    stat = path.stat()
    manifest = {"input": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime,
                "chunk_size": chunk_size, "text_col": text_col, **(settings or {})}
    if (parts / "manifest.json").exists() and read_json(parts / "manifest.json") != manifest:
        if _part_files(parts):
            raise DataError(f"{parts}: left by an earlier run with other settings, input or model; remove it "
                            "to start again")
        shutil.rmtree(parts)  # a manifest and nothing encoded: nothing to lose
    fresh = not parts.exists()
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_json(parts / "manifest.json", manifest)
    encoded = reused = rows = 0
    total = _count_rows(path, text_col)
    bar = tqdm(desc=f"encoding {path.name}", unit="text", total=total, disable=not progress)
    try:
        for i, texts in enumerate(iter_text_chunks(path, chunk_size, text_col)):
            part = parts / f"part-{i:06d}.npy"
            rows += len(texts)
            if part.exists():
                reused += 1
            else:
                vectors = np.ascontiguousarray(encode(texts), dtype=np.float32)
                atomic_write(part, lambda p: _save_npy(p, vectors))
                encoded += 1
            bar.update(len(texts))
    except BaseException:
        if fresh and not _part_files(parts):  # failed before anything was kept: leave nothing behind
            shutil.rmtree(parts, ignore_errors=True)
        raise
    finally:
        bar.close()
    _assemble(parts, out)
    shutil.rmtree(parts)
    return {"rows": rows, "chunks_encoded": encoded, "chunks_reused": reused, "out": str(out)}


def _count_rows(path: Path, text_col: str | None) -> int | None:
    """How many texts ``path`` holds, for the progress bar's total and time left: Parquet's metadata, or a
    pass over the file counting lines (.txt), non-blank lines (JSON Lines) or records (CSV); None when
    the file cannot be read so (its error comes from the encoding pass)."""
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pq.ParquetFile(path).metadata.num_rows
        if name.endswith(".txt"):
            with open(path, "rb") as f:
                return sum(1 for _ in f)
        if name.endswith((".jsonl", ".jsonl.gz")):
            with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
                return sum(1 for line in f if line.strip())
        if name.endswith((".csv", ".tsv")):
            with open(path, encoding="utf-8", newline="") as f:
                return max(sum(1 for record in csv.reader(f, delimiter="\t" if name.endswith(".tsv") else ",")
                               if record) - 1, 0)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save keeps the name as given
        np.save(f, array, allow_pickle=False)


def _part_files(parts: Path) -> list[Path]:
    return sorted(parts.glob("part-*.npy"))


def _assemble(parts: Path, out: Path) -> None:
    files = _part_files(parts)
    shapes = [np.load(f, mmap_mode="r").shape for f in files]
    rows, dim = sum(s[0] for s in shapes), (shapes[0][1] if shapes else 0)
    if out.suffix == ".npy":
        def write(tmp: Path) -> None:  # header, then each part's bytes: one part in memory at a time
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                      "fortran_order": False, "shape": (rows, dim)}
            with open(tmp, "wb") as f:
                np.lib.format.write_array_header_1_0(f, header)
                for part in files:
                    f.write(np.ascontiguousarray(np.load(part), dtype=np.float32).tobytes())
    else:
        def write(tmp: Path) -> None:
            schema = pa.schema([("embedding", pa.list_(pa.float32(), dim))])
            with pq.ParquetWriter(tmp, schema) as w:
                for f in files:
                    a = np.load(f)
                    col = pa.FixedSizeListArray.from_arrays(pa.array(a.ravel(), pa.float32()), dim)
                    w.write_table(pa.table({"embedding": col}, schema=schema))
    atomic_write(out, write)
