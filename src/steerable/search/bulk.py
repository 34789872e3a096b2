"""Bulk loads: a folder of embedding shards (:mod:`steerable.shards`, written by ``steer encode --out
DIR`` or :func:`~steerable.shards.write_shard_folder`) into an index folder, one shard at a time.

The index folder is built beside its final place, in ``.<name>.loading``, and renamed into place only
once complete, so a load that stops half-way leaves nothing under the final name; run again with
the same arguments, it loads only the shards that are not in yet. What records them:

- ``embedded`` / ``faiss``: the vectors are written straight into their files, laid out in advance
  (a float index's ``vectors.safetensors``; a binary index's ``full.npy`` and a file of float
  prefixes), so memory holds one shard at a time until the prefix's graph or sign bits are built at
  the end. The loaded shards are recorded, after the files are synced, at most every
  ``CHECKPOINT_S`` seconds, at the end and when the load stops on an error.
- ``qdrant-edge``: upserts (point id = row number) into the collection inside the staging folder,
  each shard recorded once its points are flushed (a shard upserted again is the same points); the
  prefix's graph is built at the end.
- ``pgvector``: each shard is one binary ``COPY`` into the staging table ``<table>_loading``,
  committed with a row naming it in ``<table>_loading_log``. Once every shard is in, the index on
  the prefix is built by :class:`~steerable.search.pgvector.PgvectorIndex`, and one transaction drops
  the old table (``overwrite``), renames the staging table and its indexes into place and drops the
  log.

``texts.jsonl`` holds the texts of the inputs where the manifest names them (``steer encode``) and
they are unchanged; otherwise each row's id (or row number), so that every row has a label to print.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..atomic import atomic_write, atomic_write_json, read_json
from ..data import DataError, iter_text_chunks
from ..shards import Shard, finished_manifest, iter_shards
from .index import HNSW, EmbeddedIndex, check_index_target, edge_path, folder_meta
from .pgvector import PgvectorIndex, copy_binary
from .qdrant import DEFAULT_COLLECTION, QdrantEdgeIndex

LOADABLE = ("embedded", "numpy", "faiss", "qdrant-edge", "pgvector")
CHECKPOINT_S = 30.0  # an embedded load records its shards at most this often (and at the end)
RECORD = ".bulk-load.json"  # in the staging folder: the load's settings and the shards recorded as in
_PREFIX_FILE = ".prefix.npy"  # a binary index's float prefixes while loading (its bits are built at the end)
_EDGE_BATCH = 4096  # points an upsert
_MAX_NAME = 63  # PostgreSQL's identifier length


@dataclass
class _Source:
    """A finished shard folder: its manifest, the prefix and full dims loaded from it, and what
    identifies its contents (the shards' checksums)."""

    folder: Path
    manifest: dict
    prefix_dim: int
    full_dim: int
    digest: str

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    @property
    def shards(self) -> dict[str, dict]:
        return self.manifest["shards"]

    def identity(self) -> dict:
        """What a staged load must match to be resumed: these shards, these dims."""
        return {"folder": str(self.folder), "digest": self.digest, "dims": [self.prefix_dim, self.full_dim]}


def _read_source(folder: str | Path, prefix_dim: int | None) -> _Source:
    folder = Path(folder).resolve()
    manifest = finished_manifest(folder)
    dims = sorted(manifest["settings"]["dims"])
    if len(dims) < 2:
        raise ValueError(
            f"{folder}: vectors of one dim ({dims[0]}); an index needs a prefix and a full vector: "
            "encode with --dim PREFIX,FULL"
        )
    full = dims[-1]
    prefix = prefix_dim or dims[0]
    if prefix not in dims[:-1]:
        raise ValueError(
            f"{folder}: no {prefix}-dim prefix below the {full}-dim vectors (encoded at {', '.join(map(str, dims))})"
        )
    at = 0
    for name in sorted(manifest["shards"]):
        entry = manifest["shards"][name]
        if entry["first_row"] != at:
            raise DataError(f"{folder / name}: starts at row {entry['first_row']}, expected {at}")
        at += entry["rows"]
    if at != manifest["rows"]:
        raise DataError(f"{folder}: its shards hold {at} rows, its manifest says {manifest['rows']}")
    content = {"rows": at, "dims": dims, "shards": {n: s["sha256"] for n, s in sorted(manifest["shards"].items())}}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return _Source(folder, manifest, prefix, full, digest)


def bulk_load(
    shards_folder: str | Path,
    index_folder: str | Path,
    backend: str = "embedded",
    *,
    prefix_dim: int | None = None,
    url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    overwrite: bool = False,
    quantize: str | None = None,
    rescore: str | None = None,
    oversample: int = 4,
    progress: bool = True,
) -> dict:
    """Build the index folder ``index_folder`` from the finished shard folder ``shards_folder``, as
    :func:`~steerable.search.write_index_folder` would from the same vectors (document i = row i),
    one shard at a time and resumably (see the module's docstring).

    Args:
        backend: ``embedded`` (or ``numpy``), ``faiss``, ``qdrant-edge`` or ``pgvector`` (needs ``url``;
            the table is ``collection``).
        prefix_dim: the prefix (one of the folder's dims; default its smallest); the full vector is its
            largest dim.
        overwrite, quantize, rescore, oversample: as for :func:`~steerable.search.write_index_folder`;
            an existing index folder, collection or table is refused unless ``overwrite``.
        progress: a progress bar on stderr.

    Returns:
        A summary: ``rows``, ``shards``, ``loaded`` (shards loaded by this call), ``already_loaded``
        (by a load that stopped before), ``load_seconds``, ``build_seconds`` (the graph or index
        built at the end), ``seconds`` (all of it), ``texts`` (``inputs``, ``ids`` or ``rows``: what
        ``texts.jsonl`` holds) and, where the inputs could not be read, ``note`` saying why.
    """
    started = time.perf_counter()
    if backend not in LOADABLE:
        raise ValueError(f"a bulk load goes to {', '.join(LOADABLE)}, not {backend!r}")
    source = _read_source(shards_folder, prefix_dim)
    check_index_target(
        index_folder,
        backend=backend,
        url=url,
        collection=collection,
        overwrite=overwrite,
        quantize=quantize,
        rescore=rescore,
    )
    if quantize and source.prefix_dim % 8:
        raise ValueError(f"a binary index needs a prefix of a multiple of 8 dims, got {source.prefix_dim}")
    target = Path(index_folder).resolve()
    staging = target.with_name(f".{target.name}.loading")
    settings = {
        "source": source.digest,
        "backend": backend,
        "prefix_dim": source.prefix_dim,
        "full_dim": source.full_dim,
        "quantize": quantize,
        "collection": collection if backend in ("qdrant-edge", "pgvector") else None,
    }
    record = _open_staging(staging, source, settings)
    loader: _Loader = _LOADERS[backend](staging, source, record, url=url, collection=collection, quantize=quantize)
    try:
        done = loader.loaded()
        loaded = _load_shards(loader, source, done, backend, progress)
        load_s = time.perf_counter() - started
        loader.finish(rescore, oversample)
        loader.tidy()
        build_s = time.perf_counter() - started - load_s
        texts, note = _write_texts(staging / "texts.jsonl", source)
        encoded = source.manifest["settings"]  # the model, dial and backbone the queries are encoded with
        meta = folder_meta(
            backend,
            encoded.get("model"),
            encoded.get("dial"),
            encoded.get("backbone"),
            url,
            collection,
            source.rows,
            (source.prefix_dim, source.full_dim),
            quantize,
            rescore,
        )
        atomic_write_json(staging / "meta.json", meta | {"shards": str(source.folder)})
        check_index_target(target, overwrite=overwrite)  # the folder only: nothing came there meanwhile
        loader.swap(overwrite)
    finally:
        loader.close()
    _put_in_place(staging, target)
    (target / RECORD).unlink()
    return {
        "backend": backend,
        "rows": source.rows,
        "shards": len(source.shards),
        "loaded": loaded,
        "already_loaded": len(done),
        "prefix_dim": source.prefix_dim,
        "full_dim": source.full_dim,
        "load_seconds": load_s,
        "build_seconds": build_s,
        "seconds": time.perf_counter() - started,
        "texts": texts,
    } | ({"note": note} if note else {})


def _open_staging(staging: Path, source: _Source, settings: dict) -> dict:
    """The record of the staging folder: the one a stopped load of the same shards with the same
    settings left there, or a new one. A stopped load of other shards or settings is refused where it
    recorded shards in the folder, and replaced where it recorded none there (it staged nothing to
    keep; pgvector's staging table is checked on its own)."""
    path = staging / RECORD
    if path.exists():
        record = read_json(path)
        old = record["settings"]
        if old == settings:
            return record
        if record["loaded"] or record["finished"]:
            if old["source"] != settings["source"]:
                what = f"another shard folder ({record['folder']})"
            else:
                what = ", ".join(f"{k} {old[k]}" for k in settings if old[k] != settings[k])
            raise ValueError(
                f"{staging}: holds a stopped load of {what}; run that load again to finish it, or delete "
                "this folder to load anew"
            )
        shutil.rmtree(staging)  # this load's own folder, with nothing in it to resume
    if staging.exists() and (not staging.is_dir() or any(staging.iterdir())):
        raise ValueError(f"{staging}: in the way of the load's staging folder and not one; move it away")
    staging.mkdir(parents=True, exist_ok=True)
    record = {"folder": str(source.folder), "settings": settings, "loaded": [], "finished": False}
    atomic_write_json(path, record)
    return record


def _load_shards(loader: _Loader, source: _Source, done: set[str], backend: str, progress: bool) -> int:
    """Load every shard not in ``done``, in row order; the number loaded."""
    if len(done) == len(source.shards):
        return 0
    bar = tqdm(
        total=source.rows,
        initial=sum(source.shards[n]["rows"] for n in done),
        unit="rows",
        desc=f"bulk load ({backend})",
        disable=not progress,
    )
    loaded = 0
    try:
        for shard in iter_shards(source.folder, dims=[source.prefix_dim, source.full_dim], skip=done):
            first, n = source.shards[shard.name]["first_row"], len(shard.rows)
            if not np.array_equal(shard.rows, np.arange(first, first + n)):
                raise DataError(f"{source.folder / shard.name}: its rows are not {first} .. {first + n - 1}")
            loader.load(shard)
            loaded += 1
            bar.update(n)
        loader.checkpoint()
    except BaseException:
        loader.checkpoint()  # what is in stays in: a rerun goes on from there
        raise
    finally:
        bar.close()
    return loaded


def _put_in_place(staging: Path, target: Path) -> None:
    """Rename the finished staging folder to ``target``: in one step where ``target`` is missing or an
    empty folder; an index folder there (its replacement was allowed) is moved aside first and
    deleted once the new one is in place."""
    if not (target.is_dir() and any(target.iterdir())):
        os.replace(staging, target)
        return
    old = target.with_name(f".{target.name}.replaced")
    if old.exists():  # moved aside by a load that stopped right after
        shutil.rmtree(old)
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old)


# -- texts.jsonl -------------------------------------------------------------------------------------


def _write_texts(path: Path, source: _Source) -> tuple[str, str | None]:
    """Write ``texts.jsonl`` (line i: ``{"id": i, "text": ...}``, as
    :func:`~steerable.search.write_index_folder` writes it); returns what the texts are and, where the
    inputs named in the manifest could not be used, why."""
    settings = source.manifest["settings"]
    note = None
    inputs = settings.get("inputs") or []
    unusable = [i["path"] for i in inputs if not _unchanged(i)]
    if inputs and not unusable:
        kind = "inputs"
        texts = _input_texts(inputs, settings.get("text_col"))
    else:
        kind = "ids" if settings.get("id_col") else "rows"
        texts = _labels(source, kind == "ids")
        if unusable:
            what = "ids" if kind == "ids" else "numbers"
            note = f"{unusable[0]}: missing or changed since it was encoded; texts.jsonl holds the rows' {what} instead"

    def write(p: Path) -> None:
        n = 0
        with open(p, "w", encoding="utf-8") as f:
            for n, text in enumerate(texts, start=1):
                f.write(json.dumps({"id": n - 1, "text": text}) + "\n")
        if n != source.rows:
            raise DataError(f"{source.folder}: its inputs hold {n} texts but its shards {source.rows} rows")

    atomic_write(path, write)
    return kind, note


def _input_texts(inputs: list[dict], text_col: str | None) -> Iterator[str]:
    """The texts of the inputs in order, read as `steer encode` read them: text i is row i."""
    for entry in inputs:
        for chunk in iter_text_chunks(entry["path"], 65536, text_col):
            yield from chunk


def _unchanged(entry: dict) -> bool:
    """Whether an input file is still as it was encoded (same size and modification time)."""
    try:
        st = os.stat(entry["path"])
    except OSError:
        return False
    return st.st_size == entry["size"] and st.st_mtime == entry["mtime"]


def _labels(source: _Source, ids: bool) -> Iterator[str]:
    """Each row's id (as text; the row number where it has none), or its row number."""
    for name in sorted(source.shards):
        first, n = source.shards[name]["first_row"], source.shards[name]["rows"]
        column = pq.read_table(source.folder / name, columns=["id"]).column("id").to_pylist() if ids else [None] * n
        yield from (str(first + i) if v is None else v for i, v in enumerate(column))


# -- loaders -----------------------------------------------------------------------------------------


class _Loader:
    """What a backend does with the shards: load one, record what is in, build its index at the end,
    and (pgvector) put it under its final name. The record is the staging folder's ``RECORD``."""

    def __init__(
        self, staging: Path, source: _Source, record: dict, *, url: str | None, collection: str, quantize: str | None
    ):
        self.staging, self.source, self.record = staging, source, record
        self.url, self.collection, self.quantize = url, collection, quantize

    def loaded(self) -> set[str]:
        """The shards already in."""
        return set(self.record["loaded"])

    def load(self, shard: Shard) -> None:
        raise NotImplementedError

    def checkpoint(self) -> None:
        """Record every shard loaded so far (each backend records its shards as they are in)."""

    def save_record(self) -> None:
        atomic_write_json(self.staging / RECORD, self.record)

    def finish(self, rescore: str | None, oversample: int) -> None:
        """Build what is built once every shard is in (after a stop, again or not at all)."""

    def tidy(self) -> None:
        """Remove the staging files that are not part of the index."""

    def swap(self, overwrite: bool) -> None:
        """Put what lives outside the folder under its final name (the folder itself is renamed after)."""

    def close(self) -> None:
        """Release files and connections (again: nothing)."""


def _npy_header(shape: tuple[int, int]) -> bytes:
    """The header of a .npy file of float32 ``shape``, as ``np.save`` writes it."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return f.getvalue()


def _safetensors_header(tensors: dict[str, tuple[str, tuple[int, ...], int]]) -> tuple[bytes, dict[str, int]]:
    """The header of a safetensors file holding ``tensors`` (name -> (dtype, shape, item size)) in this
    order, and where each tensor's bytes start in the file."""
    header: dict[str, dict] = {}
    starts: dict[str, int] = {}
    at = 0
    for name, (dtype, shape, itemsize) in tensors.items():
        size = itemsize * int(np.prod(shape))
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + size]}
        starts[name], at = at, at + size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text, {name: 8 + len(text) + start for name, start in starts.items()}


class _EmbeddedLoader(_Loader):
    """``embedded`` / ``faiss``: each shard's vectors written in place into files laid out in advance
    (``vectors.safetensors`` with ``ids``, ``full`` and ``prefix``; a binary index: ``full.npy`` and
    ``.prefix.npy``); the graph, or the sign bits, built from the prefixes at the end."""

    def __init__(self, staging: Path, source: _Source, record: dict, **where: Any):
        super().__init__(staging, source, record, **where)
        n, p, d = source.rows, source.prefix_dim, source.full_dim
        self.row_bytes = {"ids": 8, "prefix": 4 * p, "full": 4 * d}
        files: dict[Path, tuple[bytes, dict[str, int]]]  # path -> (header, where each part starts)
        if self.quantize:
            full, prefix = _npy_header((n, d)), _npy_header((n, p))
            files = {
                staging / EmbeddedIndex.FULL_FILE: (full, {"full": len(full)}),
                staging / _PREFIX_FILE: (prefix, {"prefix": len(prefix)}),
            }
        else:
            tensors = {"ids": ("I64", (n,), 8), "full": ("F32", (n, d), 4), "prefix": ("F32", (n, p), 4)}
            files = {staging / "vectors.safetensors": _safetensors_header(tensors)}
        self.files: list[IO[bytes]] = []
        self.at: dict[str, tuple[IO[bytes], int]] = {}  # part -> (its file, where it starts)
        self.pending: list[str] = []  # loaded, not yet recorded
        self.saved = time.monotonic()
        if record["finished"]:  # the index is built: nothing more to write
            return
        fresh = not record["loaded"]
        for path, (header, parts) in files.items():
            size = len(header) + sum(n * self.row_bytes[part] for part in parts)
            f = self._open(path, header, size, fresh)
            self.files.append(f)
            self.at |= {part: (f, offset) for part, offset in parts.items()}
        if fresh and "ids" in self.at:
            self._write("ids", 0, np.arange(n, dtype="<i8"))

    def _open(self, path: Path, header: bytes, size: int, fresh: bool) -> IO[bytes]:
        """The staged file, made (zeros after its header) or, when resuming, checked to be the one made."""
        if fresh:
            with open(path, "wb") as new:
                new.write(header)
                new.truncate(size)
        elif not path.exists():
            raise ValueError(f"{path}: missing, yet shards were recorded in it; delete {self.staging} to load anew")
        f = open(path, "r+b")
        if f.read(len(header)) != header or os.fstat(f.fileno()).st_size != size:
            f.close()
            raise ValueError(f"{path}: not the file this load laid out; delete {self.staging} to load anew")
        return f

    def _write(self, part: str, first_row: int, values: np.ndarray) -> None:
        f, offset = self.at[part]
        f.seek(offset + first_row * self.row_bytes[part])
        f.write(np.ascontiguousarray(values).data)

    def load(self, shard: Shard) -> None:
        first = int(shard.rows[0])
        self._write("prefix", first, shard.vectors[self.source.prefix_dim].astype("<f4", copy=False))
        self._write("full", first, shard.vectors[self.source.full_dim].astype("<f4", copy=False))
        self.pending.append(shard.name)
        if time.monotonic() - self.saved >= CHECKPOINT_S:
            self.checkpoint()

    def checkpoint(self) -> None:
        if not self.pending:
            return
        for f in self.files:
            f.flush()
            os.fsync(f.fileno())
        self.record["loaded"] += self.pending
        self.pending = []
        self.save_record()
        self.saved = time.monotonic()

    def _prefix(self) -> np.ndarray:
        f, offset = self.at["prefix"]
        n, dim = self.source.rows, self.source.prefix_dim
        return np.fromfile(f.name, dtype="<f4", count=n * dim, offset=offset).reshape(n, dim)

    def finish(self, rescore: str | None, oversample: int) -> None:
        if self.record["finished"]:  # built by a load that stopped after it: the staged prefixes are gone
            return
        self._build(rescore, oversample)
        self.record["finished"] = True
        self.save_record()

    def _build(self, rescore: str | None, oversample: int) -> None:
        for f in self.files:
            f.flush()
        n, (p, d) = self.source.rows, (self.source.prefix_dim, self.source.full_dim)
        hnsw = self.record["settings"]["backend"] == "faiss"
        if self.quantize:
            extra: dict[str, Any] = {"rescore": rescore, "oversample": oversample} if rescore else {}
            index = EmbeddedIndex(p, d, hnsw=hnsw, quantize=self.quantize, **extra)
            prefix = self._prefix()
            assert index.bits is not None  # quantize="binary"
            index.bits.add(prefix)
            if index.middle is not None:
                index.middle.add(prefix)
            del prefix
            # the staged full.npy, memory-mapped: save() keeps the file rather than writing it again
            index.full.vectors = np.load(self.staging / EmbeddedIndex.FULL_FILE, mmap_mode="r")
            index.ids = np.arange(n, dtype=np.int64)
            index.save(self.staging)
            return
        # a float index: vectors.safetensors is complete; what is left is the graph and index.json
        index = EmbeddedIndex(p, d, hnsw=hnsw)
        if hnsw:
            import faiss  # imported where used, as the index module does

            assert isinstance(index.prefix, HNSW)
            graph = index.prefix.graph
            graph.add(self._prefix())
            atomic_write(self.staging / EmbeddedIndex.GRAPH_FILE, lambda path: faiss.write_index(graph, str(path)))
        atomic_write_json(
            self.staging / "index.json",
            {
                "backend": index.backend,
                "prefix_dim": p,
                "full_dim": d,
                "hnsw": index.hnsw,
                "hnsw_m": index.hnsw_m,
                "quantize": None,
                "rescore": None,
                "oversample": index.oversample,
                "count": n,
            },
        )

    def tidy(self) -> None:
        self.close()
        (self.staging / _PREFIX_FILE).unlink(missing_ok=True)

    def close(self) -> None:
        for f in self.files:
            f.close()


class _EdgeLoader(_Loader):
    """``qdrant-edge``: the collection of :class:`~steerable.search.qdrant.QdrantEdgeIndex` (its
    configuration, ``quantize`` too) inside the staging folder; a shard's points upserted, flushed,
    then recorded; the graph built by one ``optimize`` at the end."""

    def __init__(self, staging: Path, source: _Source, record: dict, **where: Any):
        super().__init__(staging, source, record, **where)
        fresh = not record["loaded"]  # a collection made by a load that stopped before any shard was in: anew
        self.index: QdrantEdgeIndex | None = QdrantEdgeIndex(
            source.prefix_dim,
            source.full_dim,
            path=edge_path(staging, self.collection),
            create=fresh,
            overwrite=fresh,
            quantize=self.quantize,
        )

    def load(self, shard: Shard) -> None:
        assert self.index is not None
        qe, prefix, full = self.index.qe, shard.vectors[self.source.prefix_dim], shard.vectors[self.source.full_dim]
        for s in range(0, len(shard.rows), _EDGE_BATCH):
            stop = s + _EDGE_BATCH
            points = [
                qe.Point(i, {"prefix": p, "full": f})
                for i, p, f in zip(shard.rows[s:stop].tolist(), prefix[s:stop].tolist(), full[s:stop].tolist())
            ]
            self.index.shard.update(qe.UpdateOperation.upsert_points(points))
        self.index.shard.flush()
        self.record["loaded"].append(shard.name)
        self.save_record()

    def finish(self, rescore: str | None, oversample: int) -> None:
        assert self.index is not None
        self.index.shard.optimize()
        self.index.shard.flush()

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None


class _PgvectorLoader(_Loader):
    """``pgvector``: the staging table ``<table>_loading`` (made as :class:`PgvectorIndex` makes its
    table) and its log ``<table>_loading_log`` (one row a loaded shard, naming the shard folder's
    contents); a shard is one binary COPY committed with its log row."""

    def __init__(self, staging: Path, source: _Source, record: dict, **where: Any):
        super().__init__(staging, source, record, **where)
        assert self.url is not None  # check_index_target: pgvector needs a URL
        t = self.collection
        self.table, self.staged, self.log = t, f"{t}_loading", f"{t}_loading_log"
        self.source_text = json.dumps(source.identity())
        # the staging table's PgvectorIndex: _prepare makes the table (or keeps the one a stopped load left)
        self.index = PgvectorIndex(
            source.prefix_dim, source.full_dim, url=self.url, table=self.staged, overwrite=True, quantize=self.quantize
        )
        self.sql, self.conn = self.index.sql, self.index.conn
        try:
            if max(len(self.log), len(self.index.index_name)) > _MAX_NAME:
                raise ValueError(
                    f"pgvector table name {self.table!r}: too long for a bulk load, whose staging index "
                    f"{self.index.index_name!r} would be longer than PostgreSQL's {_MAX_NAME} characters"
                )
            self.done = self._prepare()
        except BaseException:
            self.conn.close()
            raise

    def _exists(self, cur: Any, name: str) -> bool:
        return bool(cur.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0])

    def _prepare(self) -> set[str]:
        """Make the staging table and its log, or check those a stopped load left; the shards in."""
        sql, where = self.sql, f"PostgreSQL at {self.index.url}"
        with self.conn.transaction(), self.conn.cursor() as cur:
            staged, log = self._exists(cur, self.staged), self._exists(cur, self.log)
            if staged != log:
                there, missing = (self.staged, self.log) if staged else (self.log, self.staged)
                raise ValueError(
                    f"{where}: table {there!r} exists without {missing!r}, so no bulk load left it; rename or drop it"
                )
            logged: list[tuple[str, str]] = []  # (shard, source) of each shard in
            if staged:
                query = sql.SQL("SELECT shard, source FROM {}").format(sql.Identifier(self.log))
                logged = cur.execute(query).fetchall()
            mine = self.source.identity()
            for other in map(json.loads, {text for _, text in logged}):
                if (other["digest"], other["dims"]) != (mine["digest"], mine["dims"]):
                    raise ValueError(
                        f"{where}: table {self.staged!r} holds a stopped load of another shard folder "
                        f"({other['folder']}, dims {other['dims']}); run that load again to finish it, or drop "
                        f"the tables {self.staged!r} and {self.log!r} to load anew"
                    )
            if staged and not logged:  # a stopped load's tables with no shard in: made anew, maybe of other dims
                cur.execute(sql.SQL("DROP TABLE {}, {}").format(sql.Identifier(self.staged), sql.Identifier(self.log)))
            if not logged:
                self.index.create_table(cur)  # the table as PgvectorIndex makes it, empty, with no index yet
                cur.execute(
                    sql.SQL("CREATE TABLE {} (shard text PRIMARY KEY, source text NOT NULL)").format(
                        sql.Identifier(self.log)
                    )
                )
        self.index.to_create = None  # the staging table is there: add() copies into it and indexes it
        return {shard for shard, _ in logged}

    def loaded(self) -> set[str]:
        return set(self.done)

    def load(self, shard: Shard) -> None:
        sql = self.sql
        rows = copy_binary(shard.rows, shard.vectors[self.source.prefix_dim], shard.vectors[self.source.full_dim])
        with self.conn.transaction(), self.conn.cursor() as cur:
            statement = sql.SQL("COPY {} (id, prefix, embedding) FROM STDIN (FORMAT BINARY)")
            with cur.copy(statement.format(sql.Identifier(self.staged))) as copy:
                copy.write(rows)
            cur.execute(
                sql.SQL("INSERT INTO {} (shard, source) VALUES (%s, %s)").format(sql.Identifier(self.log)),
                [shard.name, self.source_text],
            )

    def finish(self, rescore: str | None, oversample: int) -> None:
        # PgvectorIndex.add of no rows builds the index on the prefix where there is none (HNSW, or on the
        # sign bits with quantize="binary"), then ANALYZE: the index it builds for its own tables
        p, d = self.source.prefix_dim, self.source.full_dim
        self.index.add(np.zeros((0, p), np.float32), np.zeros((0, d), np.float32))

    def swap(self, overwrite: bool) -> None:
        """In one transaction: drop the old table (``overwrite``), rename the staging table and its
        indexes and constraints to the final names, drop the log."""
        sql, ident = self.sql, self.sql.Identifier
        with self.conn.transaction(), self.conn.cursor() as cur:
            if overwrite:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(self.table)))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(self.staged), ident(self.table)))
            indexes = cur.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", [self.table]
            ).fetchall()
            for (name,) in indexes:
                if name.startswith(self.staged):
                    new = self.table + name[len(self.staged) :]
                    cur.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(ident(name), ident(new)))
            # the rest (NOT NULL constraints; renaming the primary key's index renamed its constraint)
            constraints = cur.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s)", [self.table]
            ).fetchall()
            for (name,) in constraints:
                if name.startswith(self.staged):
                    new = self.table + name[len(self.staged) :]
                    cur.execute(
                        sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                            ident(self.table), ident(name), ident(new)
                        )
                    )
            cur.execute(sql.SQL("DROP TABLE {}").format(ident(self.log)))

    def close(self) -> None:
        self.conn.close()


_LOADERS: dict[str, type[_Loader]] = {
    "embedded": _EmbeddedLoader,
    "numpy": _EmbeddedLoader,
    "faiss": _EmbeddedLoader,
    "qdrant-edge": _EdgeLoader,
    "pgvector": _PgvectorLoader,
}
