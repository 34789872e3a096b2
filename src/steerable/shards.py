"""A folder of embedding shards: Parquet files written by any number of workers, and the manifest that
says which are done.

``steer encode --out DIR`` (one machine or a Ray cluster, :mod:`steerable.encoding`) cuts its input
into shards of a fixed number of rows, planned here from the files alone: byte ranges of text, JSON
Lines and CSV files (found in one vectorised pass), row ranges of Parquet files. Whoever encodes a
shard reads its texts from the input (:func:`read_shard_texts`), so the inputs and the output folder
must be reachable by every worker. A shard file holds ``row`` (the row's number across all the
inputs, in order), ``id`` (the input's id column, as text, when one was named) and one
``embedding`` column per dim; it is written whole under its final name, and the manifest lists it
only once it is there, so a rerun encodes exactly the shards the manifest lacks.

Reading a finished folder (:func:`iter_shards`) gives the shards in row order with their vectors as
float32, checked against the manifest's checksums.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_write, atomic_write_json, read_json
from .data import DataError

MANIFEST = "manifest.json"
FORMAT = "steerable-shards/1"
SHARD_ROWS = 4096  # rows a shard: `steer encode`'s chunk size, so a shard is encoded as the same chunk would be
DTYPES = ("float32", "float16")
SUFFIXES = (".txt", ".jsonl", ".jsonl.gz", ".csv", ".tsv", ".parquet")
_BLOCK = 16 << 20  # bytes read at a time when planning


def input_files(path: str | Path) -> list[Path]:
    """The input files of ``path``: the file itself, or the files of a folder with a known suffix, in
    name order (hidden files aside)."""
    path = Path(path)
    if path.is_file():
        if not path.name.lower().endswith(SUFFIXES):
            raise DataError(f"{path}: unknown file type; use {', '.join(SUFFIXES)}")
        return [path.resolve()]
    if path.is_dir():
        files = sorted(
            p.resolve()
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(SUFFIXES)
        )
        if not files:
            raise DataError(f"{path}: a folder with no {', '.join(SUFFIXES)} files")
        return files
    raise DataError(f"{path}: no such file or folder")


def _kind(path: Path) -> str:
    name = path.name.lower()
    return next(s.lstrip(".") for s in SUFFIXES if name.endswith(s) and not (s == ".jsonl" and name.endswith(".gz")))


# -- planning ----------------------------------------------------------------------------------------


def _line_ends(path: Path, universal: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per block of the file: the byte offsets just past each line end, and for each line whether it
    holds anything but whitespace. ``universal``: a lone carriage return ends a line too (as Python's
    text mode reads it)."""
    pos = 0
    carry_content = False  # the unfinished line so far has a non-space byte
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            if universal and block.endswith(b"\r"):
                block += f.read(1)  # a CR LF split across blocks stays one line end
            a = np.frombuffer(block, np.uint8)
            lf = a == 10
            ends = lf.copy()
            if universal:
                cr = a == 13
                lone = cr.copy()
                lone[:-1] &= ~lf[1:]
                ends |= lone
            idx = np.flatnonzero(ends)
            # whether each line has content: non-space bytes between consecutive line ends
            space = np.isin(a, (9, 10, 11, 12, 13, 32))
            nonspace = np.concatenate(([0], np.cumsum(~space)))
            starts = np.concatenate(([0], idx[:-1] + 1)) if len(idx) else np.zeros(0, np.int64)
            content = nonspace[idx] - nonspace[starts] > 0
            if len(idx):
                content[0] |= carry_content
                carry_content = bool(nonspace[-1] - nonspace[idx[-1] + 1] > 0)
            else:
                carry_content |= bool(nonspace[-1] > 0)
            yield idx + 1 + pos, content
            pos += len(block)
    if pos and not _ends_with_line_break(path, universal):  # the last line has no line break of its own
        yield np.array([pos]), np.array([carry_content])


def _ends_with_line_break(path: Path, universal: bool) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) in ((b"\n", b"\r") if universal else (b"\n",))


def _csv_records(path: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per block: the byte offsets just past each record's end (a line feed outside quotes: RFC 4180's
    doubled quotes keep the count of quote characters even), and whether the record holds anything
    but line breaks (a blank line is no record)."""
    pos, quotes = 0, 0
    carry = False
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            a = np.frombuffer(block, np.uint8)
            q = quotes + np.cumsum(a == 34)
            idx = np.flatnonzero((a == 10) & (q % 2 == 0))
            filled = np.concatenate(([0], np.cumsum((a != 10) & (a != 13))))
            starts = np.concatenate(([0], idx[:-1] + 1)) if len(idx) else np.zeros(0, np.int64)
            content = filled[idx] - filled[starts] > 0
            if len(idx):
                content[0] |= carry
                carry = bool(filled[-1] - filled[idx[-1] + 1] > 0)
            else:
                carry |= bool(filled[-1] > 0)
            quotes = int(q[-1])
            yield idx + 1 + pos, content
            pos += len(block)
    if carry:
        yield np.array([pos]), np.array([True])


def _row_starts(records: Iterator[tuple[np.ndarray, np.ndarray]], every: int, skip: int = 0) -> tuple[list[int], int]:
    """Byte offsets where every ``every``-th row starts (rows: records with content, after the first
    ``skip`` of them), and the number of rows."""
    starts: list[int] = []
    rows = -skip
    prev_end = 0
    for ends, content in records:
        line_starts = np.concatenate(([prev_end], ends[:-1]))
        prev_end = int(ends[-1])
        k = np.flatnonzero(content)
        numbers = rows + np.arange(len(k))  # the row number of each record with content
        pick = (numbers >= 0) & (numbers % every == 0)
        starts += line_starts[k[pick]].tolist()
        rows += len(k)
    return starts, max(rows, 0)


def plan_file(path: Path, shard_rows: int, text_col: str | None, id_col: str | None) -> list[dict]:
    """The shards of one input file, as descriptors :func:`read_shard_texts` reads: the file, its kind,
    the first row (within the file), the row count, and where the rows start (a byte offset, or
    nothing for Parquet and compressed files)."""
    kind = _kind(path)
    col = text_col or "text"
    if kind == "txt" and id_col:
        raise DataError(f"{path}: a text file has no columns; --id-col needs a CSV, JSON Lines or Parquet file")
    extra: dict = {}
    if kind == "parquet":
        pf = pq.ParquetFile(path)
        for c in (col, id_col):
            if c and c not in pf.schema_arrow.names:
                raise DataError(f"{path}: no column {c!r} (columns: {', '.join(pf.schema_arrow.names)})")
        rows = pf.metadata.num_rows
        offsets: list[int | None] = [None] * -(-rows // shard_rows)
    elif kind == "jsonl.gz":
        with gzip.open(path, "rb") as f:
            rows = sum(1 for line in f if line.strip())
        offsets = [None] * -(-rows // shard_rows)
    elif kind in ("csv", "tsv"):
        sep = "\t" if kind == "tsv" else ","
        try:
            header = pd.read_csv(path, sep=sep, dtype=str, nrows=0).columns.tolist()
        except (pd.errors.EmptyDataError, UnicodeDecodeError):
            raise DataError(f"{path}: no header row") from None
        for c in (col, id_col):
            if c and c not in header:
                raise DataError(f"{path}: no column {c!r} (columns: {', '.join(header)})")
        starts, rows = _row_starts(_csv_records(path), shard_rows, skip=1)
        offsets, extra = list(starts), {"header": header}
    else:  # txt: every line is a row, blank or not; jsonl: every non-blank line
        ends = _line_ends(path, universal=kind == "txt")
        if kind == "txt":
            ends = ((e, np.ones(len(e), bool)) for e, _ in ends)
        starts, rows = _row_starts(ends, shard_rows)
        offsets = list(starts)
    stat = path.stat()
    return [
        {
            "path": str(path),
            "size": stat.st_size,
            "mtime": stat.st_mtime,
            "kind": kind,
            "start": i * shard_rows,
            "rows": min(shard_rows, rows - i * shard_rows),
            "offset": offset,
            "end": offsets[i + 1] if i + 1 < len(offsets) else None,
            "text_col": col,
            "id_col": id_col,
            **extra,
        }
        for i, offset in enumerate(offsets)
    ]


def fingerprint_inputs(files: list[Path]) -> list[dict]:
    """What identifies the inputs: path, size and modification time of each."""
    return [{"path": str(p), "size": p.stat().st_size, "mtime": p.stat().st_mtime} for p in files]


# -- reading a shard's texts -------------------------------------------------------------------------


def _byte_range(d: dict) -> bytes:
    with open(d["path"], "rb") as f:
        f.seek(d["offset"])
        return f.read() if d["end"] is None else f.read(d["end"] - d["offset"])


def read_shard_texts(d: dict) -> tuple[list[str], list[str] | None]:
    """The texts (and ids, as text, when the descriptor names an id column) of one planned shard,
    exactly its planned rows; a file that changed since it was planned is an error naming it."""
    path, kind, col, id_col = d["path"], d["kind"], d["text_col"], d["id_col"]
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file here; the inputs must be reachable by every worker") from None
    if (stat.st_size, stat.st_mtime) != (d["size"], d["mtime"]):
        raise DataError(f"{path}: changed since the job was planned; run it again")
    ids: list | None = None
    if kind == "txt":
        text = _byte_range(d).decode("utf-8", errors="strict")
        texts = [line.rstrip("\n") for line in io.StringIO(text, newline=None)]
    elif kind in ("jsonl", "jsonl.gz"):
        if kind == "jsonl":
            lines: Iterator[bytes] = iter(_byte_range(d).split(b"\n"))
        else:
            lines = _skip_rows(gzip.open(path, "rb"), d["start"], d["rows"])
        rows = [_json_row(path, line, col, id_col) for line in lines if line.strip()]
        texts = [r[0] for r in rows]
        ids = [r[1] for r in rows] if id_col else None
    elif kind in ("csv", "tsv"):
        df = pd.read_csv(
            io.BytesIO(_byte_range(d)),
            sep="\t" if kind == "tsv" else ",",
            names=d["header"],
            header=None,
            dtype=str,
            keep_default_na=False,
        )
        texts = df[col].tolist()
        ids = df[id_col].tolist() if id_col else None
    else:
        table = _parquet_rows(path, d["start"], d["rows"], [c for c in (col, id_col) if c])
        texts = ["" if t is None else t for t in table.column(col).to_pylist()]
        ids = [None if v is None else str(v) for v in table.column(id_col).to_pylist()] if id_col else None
    if len(texts) != d["rows"]:
        raise DataError(
            f"{path}: expected {d['rows']} rows from row {d['start']} but read {len(texts)}; "
            "its line breaks are unusual (save it with LF or CR LF line breaks)"
        )
    return texts, ids


def _skip_rows(f: io.BufferedIOBase, start: int, rows: int) -> Iterator[bytes]:
    with f:
        seen = 0
        for line in f:
            if line.strip():
                if seen >= start + rows:
                    return
                if seen >= start:
                    yield line
                seen += 1


def _json_row(path: str, line: bytes, col: str, id_col: str | None) -> tuple[str, str | None]:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: a line is not valid JSON ({e})") from None
    if not isinstance(row, dict) or col not in row:
        raise DataError(f"{path}: a line has no key {col!r}")
    text = row[col]
    if text is not None and not isinstance(text, str):
        raise DataError(f"{path}: key {col!r} holds a {type(text).__name__}, not text")
    if id_col and id_col not in row:
        raise DataError(f"{path}: a line has no key {id_col!r}")
    return ("" if text is None else text), (None if not id_col or row[id_col] is None else str(row[id_col]))


def _parquet_rows(path: str, start: int, rows: int, columns: list[str]) -> pa.Table:
    """Rows ``start`` .. ``start + rows`` of a Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    groups, first, at = [], None, 0
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if at + n > start and at < start + rows:
            groups.append(g)
            first = at if first is None else first
        at += n
    table = pf.read_row_groups(groups, columns=columns)
    return table.slice(start - (first or 0), rows)


# -- shard files -------------------------------------------------------------------------------------


def shard_name(k: int) -> str:
    return f"shard-{k:06d}.parquet"


def embedding_columns(dims: list[int]) -> dict[int, str]:
    """Column of each dim: ``embedding`` for one, ``embedding_<dim>`` for several."""
    return {dims[0]: "embedding"} if len(dims) == 1 else {d: f"embedding_{d}" for d in dims}


def write_shard(path: Path, rows: np.ndarray, ids: list[str] | None, vectors: dict[int, np.ndarray], dtype: str) -> str:
    """Write one shard file atomically; returns the SHA-256 of its bytes."""
    columns: dict[str, pa.Array] = {"row": pa.array(np.asarray(rows, np.int64))}
    if ids is not None:
        columns["id"] = pa.array(ids, pa.string())
    kind = pa.float16() if dtype == "float16" else pa.float32()
    for d, name in embedding_columns(sorted(vectors)).items():
        v = np.ascontiguousarray(vectors[d], dtype=np.dtype(dtype))
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(v.ravel(), kind), d)
    table = pa.table(columns)
    atomic_write(path, lambda p: pq.write_table(table, p, compression="zstd"))
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass
class Shard:
    """One shard of a finished folder: its rows, ids (or None) and vectors (dim -> float32 (n, dim))."""

    name: str
    rows: np.ndarray
    ids: list[str] | None
    vectors: dict[int, np.ndarray]


def new_manifest(settings: dict, planned: int, rows: int) -> dict:
    """The manifest of a job that has encoded nothing yet: ``settings`` (what determines the vectors:
    model, dims, dtype, inputs, shard size, ...), how many shards and rows it plans."""
    return {"format": FORMAT, "settings": settings, "planned": planned, "rows": rows, "shards": {}, "complete": False}


def write_shard_folder(
    folder: str | Path,
    vectors: dict[int, np.ndarray],
    *,
    ids: list[str] | None = None,
    shard_rows: int = SHARD_ROWS,
    dtype: str = "float32",
    settings: dict | None = None,
) -> dict:
    """Write vectors computed elsewhere (``dim -> (n, dim)`` arrays, row i of each is row i) as a
    finished shard folder, as ``steer encode --out DIR`` would leave it; returns its manifest. For
    loading generated or already computed vectors into an engine (:func:`steerable.search.bulk_load`)."""
    folder = Path(folder)
    if (folder / MANIFEST).exists() or (folder.is_dir() and any(folder.iterdir())):
        raise FileExistsError(f"{folder}: not empty; choose a new folder")
    n = len(next(iter(vectors.values())))
    if any(len(v) != n for v in vectors.values()) or (ids is not None and len(ids) != n):
        raise ValueError("every dim's vectors (and the ids) must have the same number of rows")
    dims = sorted(vectors)
    manifest = new_manifest(
        {"dims": dims, "dtype": dtype, "shard_rows": shard_rows, "id_col": "id" if ids is not None else None}
        | (settings or {}),
        planned=-(-n // shard_rows),
        rows=n,
    )
    folder.mkdir(parents=True, exist_ok=True)
    for k, start in enumerate(range(0, n, shard_rows)):
        stop = min(n, start + shard_rows)
        name = shard_name(k)
        sha = write_shard(
            folder / name,
            np.arange(start, stop),
            ids[start:stop] if ids is not None else None,
            {d: vectors[d][start:stop] for d in dims},
            dtype,
        )
        manifest["shards"][name] = {"first_row": start, "rows": stop - start, "sha256": sha}
    manifest["complete"] = True
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise DataError(f"{folder}: no {MANIFEST}; not a folder written by `steer encode --out DIR`")
    manifest = read_json(path)
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def finished_manifest(folder: str | Path) -> dict:
    """The manifest of a folder whose encoding job has finished (else an error saying how far it got)."""
    manifest = read_manifest(folder)
    if not manifest.get("complete"):
        done, total = len(manifest["shards"]), manifest["planned"]
        raise DataError(f"{folder}: the encoding job has not finished ({done} of {total} shards); run it again")
    return manifest


def iter_shards(
    folder: str | Path, *, dims: list[int] | None = None, skip: Iterable[str] = (), verify: bool = True
) -> Iterator[Shard]:
    """The shards of a finished folder in row order (``dims``: only these columns; ``skip``: shards not
    to read, by name). A folder whose job has not finished, a missing shard or one whose checksum
    differs is an error naming it."""
    folder = Path(folder)
    manifest = finished_manifest(folder)
    columns = embedding_columns(manifest["settings"]["dims"])
    wanted = dims or list(columns)
    for d in wanted:
        if d not in columns:
            raise DataError(f"{folder}: no {d}-dim vectors (encoded at {', '.join(map(str, columns))})")
    skipped = set(skip)
    for name in sorted(set(manifest["shards"]) - skipped):
        path = folder / name
        if not path.exists():
            raise DataError(f"{path}: listed in the manifest but missing")
        if verify and file_sha256(path) != manifest["shards"][name]["sha256"]:
            raise DataError(f"{path}: its checksum differs from the manifest's (changed or damaged)")
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[c for c in names if c in ("row", "id")] + [columns[d] for d in wanted])
        yield Shard(
            name=name,
            rows=table.column("row").to_numpy(),
            ids=table.column("id").to_pylist() if "id" in table.column_names else None,
            vectors={d: _vectors(table.column(columns[d]), d) for d in wanted},
        )


def _vectors(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    flat = pa.concat_arrays([c.flatten() for c in column.chunks]) if column.num_chunks else pa.array([], pa.float32())
    return flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
