"""Search indexes over steerable embeddings: one small interface, several backends, index folders.

Every index stores, per document, the short prefix and the full vector (both unit-length) and
answers with the rules of :mod:`steerable.search.funnel`: exact (by the full vector), the funnel
(``shortlist=K``) and adaptive search. Backends: :class:`EmbeddedIndex` (in memory; ``hnsw=True``
puts a FAISS HNSW graph on the prefix so the shortlist does not scan every document;
``quantize="binary"`` keeps only the prefix's sign bits, :mod:`steerable.search.binary`, and reads the
full vectors of a saved index from disk as the rerank needs them), the Qdrant
ones of :mod:`steerable.search.qdrant` (the funnel is one ``prefetch`` query) and PostgreSQL with
pgvector (:mod:`steerable.search.pgvector`; the funnel is one SQL statement).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
from safetensors.numpy import load_file, save_file

from ..atomic import atomic_write, atomic_write_json, read_json
from .binary import RESCORE, BinaryStage, QuantizedPrefix, Rescored
from .funnel import Exact, adaptive, funnel
from .funnel import checked as _check
from .pgvector import PgvectorIndex, safe_url, table_exists
from .qdrant import DEFAULT_COLLECTION, QdrantEdgeIndex, QdrantIndex, check_name, qdrant_collection_exists
from .ranking import rerank


class SearchIndex(Protocol):
    prefix_dim: int
    full_dim: int

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None) -> None: ...

    def search(
        self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]: ...

    def adaptive(
        self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100, margin: float = 0.02
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class HNSW:
    """A FAISS HNSW graph (inner product) over vectors: an approximate first stage."""

    def __init__(self, dim: int, m: int = 32, ef_construction: int = 80, ef_search: int = 128):
        import faiss  # imported where used: training and encoding never load it

        self.graph = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        self.graph.hnsw.efConstruction = ef_construction
        self.ef_search = ef_search
        self.vectors = np.zeros((0, dim), np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, vectors: np.ndarray) -> None:
        self.graph.add(vectors)
        self.vectors = np.concatenate([self.vectors, vectors])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.graph.hnsw.efSearch = max(self.ef_search, k)
        sims, rows = self.graph.search(queries, k)
        return rows, sims

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rerank(queries, self.vectors, candidates, k)

    def nbytes(self) -> int:
        import faiss

        return int(faiss.serialize_index(self.graph).nbytes)


QUANTIZE = ("binary",)  # first stages other than float vectors


class EmbeddedIndex:
    """In-memory index: exact scans, and optionally an HNSW graph on the prefix, or the prefix's sign
    bits alone (``quantize="binary"``, exact Hamming scan or, with ``hnsw=True``, an HNSW graph over
    the bits); a binary index loaded from a folder reads its full vectors from disk (memory-mapped).
    ``rescore="int8"`` or ``"float16"`` (binary only) also keeps the prefix at that precision and
    reranks a sign-bit shortlist ``oversample`` times longer by it, so that the full-vector rerank of a
    shortlist of K reads K rows from the bits' best ``oversample * K``."""

    backend = "embedded"

    def __init__(
        self,
        prefix_dim: int,
        full_dim: int,
        *,
        hnsw: bool = False,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        quantize: str | None = None,
        rescore: str | None = None,
        oversample: int = 4,
    ):
        if quantize is not None and quantize not in QUANTIZE:
            raise ValueError(f"unknown quantization {quantize!r}; choose {', '.join(QUANTIZE)}")
        if rescore is not None and quantize != "binary":
            raise ValueError(f"rescore={rescore!r} reranks a binary shortlist; it needs quantize='binary'")
        self.prefix_dim, self.full_dim = prefix_dim, full_dim
        self.hnsw, self.hnsw_m, self.quantize = hnsw, hnsw_m, quantize
        self.rescore, self.oversample = rescore, oversample
        self.prefix: Exact | HNSW | BinaryStage | Rescored
        self.bits: BinaryStage | None = None  # the sign bits of a binary index
        self.middle: QuantizedPrefix | None = None  # and the prefix it reranks them by, if any
        if quantize == "binary":
            self.prefix = self.bits = BinaryStage(prefix_dim, hnsw_m if hnsw else 0, ef_search)
            if rescore is not None:
                self.middle = QuantizedPrefix(prefix_dim, rescore)
                self.prefix = Rescored(self.bits, self.middle, oversample)
        elif hnsw:
            self.prefix = HNSW(prefix_dim, hnsw_m, ef_construction, ef_search)
        else:
            self.prefix = Exact(np.zeros((0, prefix_dim), np.float32))
        self.full = Exact(np.zeros((0, full_dim), np.float32))
        self.ids = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None) -> None:
        prefix, full = _check("prefix", prefix, self.prefix_dim), _check("full", full, self.full_dim)
        if len(prefix) != len(full):
            raise ValueError(f"prefix and full have {len(prefix)} and {len(full)} rows")
        new_ids = np.arange(len(self), len(self) + len(prefix)) if ids is None else np.asarray(ids)
        if self.bits is not None:
            self.bits.add(prefix)
            if self.middle is not None:
                self.middle.add(prefix)
        elif isinstance(self.prefix, HNSW):
            self.prefix.add(prefix)
        elif isinstance(self.prefix, Exact):
            self.prefix.vectors = np.concatenate([self.prefix.vectors, prefix])
        self.full.vectors = np.concatenate([self.full.vectors, full])
        self.ids = np.concatenate([self.ids, new_ids.astype(np.int64)])

    def _ids(self, rows: np.ndarray) -> np.ndarray:
        """Document ids of row positions; -1 (no result) stays -1."""
        return np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)

    def search(
        self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores), each (nq, k): exact by the full vector, or the funnel with ``shortlist``."""
        q_prefix = _check("query prefix", q_prefix, self.prefix_dim)
        q_full = _check("query full", q_full, self.full_dim)
        if shortlist is None:
            rows, scores = self.full.search(q_full, k)
        else:
            rows, scores = funnel(self.prefix, self.full, q_prefix, q_full, k, shortlist)
        return self._ids(rows), scores

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) ranked by the prefix alone (exact, or the HNSW graph when enabled)."""
        rows, scores = self.prefix.search(_check("query prefix", q_prefix, self.prefix_dim), k)
        return self._ids(rows), scores

    def adaptive(
        self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100, margin: float = 0.02
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, extended): :func:`steerable.search.funnel.adaptive` over this index."""
        rows, scores, extended = adaptive(
            self.prefix,
            self.full,
            _check("query prefix", q_prefix, self.prefix_dim),
            _check("query full", q_full, self.full_dim),
            k,
            shortlist,
            margin,
        )
        return self._ids(rows), scores, extended

    def close(self) -> None:
        """Nothing to release: the index lives in memory."""

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of each part: the prefix (float vectors, or sign bits with any graph and the quantised
        prefix that reranks them), its HNSW graph, the full vectors (of a loaded binary index: on disk,
        read as the rerank needs them)."""
        if self.bits is not None:
            out = {"prefix_bits": self.bits.nbytes()}
            if self.middle is not None:
                out[f"prefix_{self.middle.kind}"] = self.middle.nbytes()
        else:
            assert isinstance(self.prefix, (Exact, HNSW))
            out = {"prefix": self.prefix.vectors.nbytes}
        out["full"] = self.full.vectors.nbytes
        if isinstance(self.prefix, HNSW):
            out["hnsw_prefix"] = self.prefix.nbytes()
        return out

    # -- persistence: safetensors + JSON, the HNSW graph in FAISS's own format, full vectors as .npy --
    GRAPH_FILE = "prefix.faiss"
    FULL_FILE = "full.npy"  # a binary index's full vectors, memory-mapped when loaded

    def save(self, directory: str | Path) -> None:
        """Write ``vectors.safetensors``, ``index.json`` and, with ``hnsw=True``, the graph as
        ``prefix.faiss`` (FAISS's own format); a binary index keeps its sign bits in
        ``vectors.safetensors`` and its full vectors in ``full.npy``. Each file atomically,
        ``index.json`` last."""
        directory = Path(directory)
        tensors: dict[str, np.ndarray] = {"ids": self.ids}
        if self.bits is not None:
            tensors["prefix_bits"] = self.bits.bits
            if self.middle is not None:
                tensors[f"prefix_{self.middle.kind}"] = self.middle.codes
                if self.middle.scale is not None:
                    tensors["prefix_int8_scale"] = self.middle.scale
            self._save_full(directory / self.FULL_FILE)
        else:
            assert isinstance(self.prefix, (Exact, HNSW))
            tensors |= {"prefix": self.prefix.vectors, "full": self.full.vectors}
        atomic_write(directory / "vectors.safetensors", lambda p: save_file(tensors, str(p)))
        if isinstance(self.prefix, HNSW):
            import faiss

            graph = self.prefix.graph
            atomic_write(directory / self.GRAPH_FILE, lambda p: faiss.write_index(graph, str(p)))
        elif self.bits is not None and self.hnsw:
            import faiss

            bits_graph = self.bits.index
            atomic_write(directory / self.GRAPH_FILE, lambda p: faiss.write_index_binary(bits_graph, str(p)))
        atomic_write_json(
            directory / "index.json",
            {
                "backend": self.backend,
                "prefix_dim": self.prefix_dim,
                "full_dim": self.full_dim,
                "hnsw": self.hnsw,
                "hnsw_m": self.hnsw_m,
                "quantize": self.quantize,
                "rescore": self.rescore,
                "oversample": self.oversample,
                "count": len(self),
            },
        )

    def _save_full(self, target: Path) -> None:
        """A binary index's full vectors as ``.npy``: a hard link where they already are a whole ``.npy``
        file mapped into memory (a loaded index, or vectors opened with ``np.load(..., mmap_mode=...)``),
        so a large collection is not copied (the index then shares that file: it never writes to it);
        otherwise written."""
        vectors, source = self.full.vectors, Path(getattr(self.full.vectors, "filename", None) or "")
        whole = (
            isinstance(vectors, np.memmap)
            and source.suffix == ".npy"
            and source.is_file()
            and vectors.dtype == np.float32
            and vectors.flags.c_contiguous
            and vectors.offset + vectors.nbytes == source.stat().st_size
        )
        if whole and target.exists() and target.samefile(source):
            return
        if whole:
            target.parent.mkdir(parents=True, exist_ok=True)
            link = target.with_name(f".{target.name}.{os.getpid()}.link")
            link.unlink(missing_ok=True)
            try:
                os.link(source, link)
                os.replace(link, target)
                return
            except OSError:  # another file system: write it
                link.unlink(missing_ok=True)
        full = np.ascontiguousarray(vectors, dtype=np.float32)

        def write_full(p: Path) -> None:
            with open(p, "wb") as f:
                np.save(f, full)

        atomic_write(target, write_full)

    @classmethod
    def load(cls, directory: str | Path) -> "EmbeddedIndex":
        """The index :meth:`save` wrote. The HNSW graph is read back as saved (not rebuilt), so the
        answers are the saved index's; a folder without ``prefix.faiss`` has its graph rebuilt. A
        binary index's full vectors stay on disk, memory-mapped."""
        directory = Path(directory)
        meta = read_json(directory / "index.json")
        quantize = meta.get("quantize")
        index = cls(
            meta["prefix_dim"],
            meta["full_dim"],
            hnsw=meta["hnsw"],
            hnsw_m=meta["hnsw_m"],
            quantize=quantize,
            rescore=meta.get("rescore"),
            oversample=meta.get("oversample", 4),
        )
        t = load_file(str(directory / "vectors.safetensors"))
        graph_file = directory / cls.GRAPH_FILE
        if quantize == "binary":
            return index._load_binary(directory, t, graph_file)
        if not (meta["hnsw"] and graph_file.exists()):
            index.add(t["prefix"], t["full"], t["ids"].tolist())
            return index
        import faiss

        graph = faiss.read_index(str(graph_file))
        if not isinstance(graph, faiss.IndexHNSWFlat):
            raise ValueError(f"{graph_file}: not an HNSW graph ({type(graph).__name__}); rebuild the index")
        _check_graph(graph_file, graph, len(t["prefix"]), meta["prefix_dim"])
        assert isinstance(index.prefix, HNSW)  # meta["hnsw"]
        index.prefix.graph = graph
        index.prefix.vectors = np.ascontiguousarray(t["prefix"], dtype=np.float32)
        index.full.vectors = np.ascontiguousarray(t["full"], dtype=np.float32)
        index.ids = t["ids"].astype(np.int64)
        return index

    def _load_binary(self, directory: Path, t: dict[str, np.ndarray], graph_file: Path) -> "EmbeddedIndex":
        assert self.bits is not None
        bits, full_file = t["prefix_bits"], directory / self.FULL_FILE
        try:  # read from disk as the rerank needs rows (copy-on-write: never written, but torch may wrap it)
            full = np.load(full_file, mmap_mode="c")
        except (OSError, ValueError, EOFError) as e:
            raise ValueError(f"{full_file}: not a readable .npy file ({e}); rebuild the index") from e
        if full.shape != (len(bits), self.full_dim) or full.dtype != np.float32:
            raise ValueError(
                f"{full_file}: {full.shape} {full.dtype}, but the folder holds {len(bits)} documents of "
                f"{self.full_dim} float32 dims; rebuild the index"
            )
        if self.hnsw and graph_file.exists():
            import faiss

            graph = faiss.read_index_binary(str(graph_file))
            _check_graph(graph_file, graph, len(bits), self.prefix_dim)
            self.bits.index, self.bits.bits = graph, np.ascontiguousarray(bits)
        else:
            self.bits.add_bits(bits)
        if self.middle is not None:
            name = f"prefix_{self.middle.kind}"
            if name not in t or len(t[name]) != len(bits):
                raise ValueError(
                    f"{directory / 'vectors.safetensors'}: no {name} for every document; rebuild the index"
                )
            self.middle.add_codes(t[name], t.get("prefix_int8_scale"))
        self.full.vectors = full
        self.ids = t["ids"].astype(np.int64)
        return self


def _check_graph(path: Path, graph: Any, count: int, dim: int) -> None:
    if graph.ntotal != count or graph.d != dim:
        raise ValueError(
            f"{path}: a graph of {graph.ntotal} {graph.d}-d vectors, but the folder holds {count} "
            f"{dim}-d prefixes; rebuild the index"
        )


BACKENDS = ("embedded", "faiss", "qdrant", "qdrant-edge", "pgvector")


def build_index(backend: str, prefix_dim: int, full_dim: int, **options: Any) -> SearchIndex:
    """A new, empty index: ``embedded`` / ``numpy`` (exact scans), ``faiss`` (HNSW graph on the
    prefix), ``qdrant`` (:class:`QdrantIndex`), ``qdrant-edge`` (:class:`QdrantEdgeIndex`, needs
    ``path=``) or ``pgvector`` (:class:`~steerable.search.pgvector.PgvectorIndex`, needs ``url=``)."""
    if backend in ("embedded", "numpy"):
        return EmbeddedIndex(prefix_dim, full_dim, **options)
    if backend == "faiss":
        return EmbeddedIndex(prefix_dim, full_dim, hnsw=True, **options)
    if backend == "qdrant":
        return QdrantIndex(prefix_dim, full_dim, **options)
    if backend == "qdrant-edge":
        return QdrantEdgeIndex(prefix_dim, full_dim, **options)
    if backend == "pgvector":
        return PgvectorIndex(prefix_dim, full_dim, **options)
    raise ValueError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")


# ------------------------------------------------------------------------- index folders on disk


def edge_path(directory: Path, collection: str) -> Path:
    """Where an index folder keeps the Qdrant Edge shard of ``collection``."""
    return directory / "qdrant-edge" / collection


def _build_edge(
    path: Path, prefix: np.ndarray, full: np.ndarray, overwrite: bool, quantize: str | None
) -> QdrantEdgeIndex:
    """A Qdrant Edge shard built beside ``path`` and renamed into place once complete."""
    if path.exists() and not overwrite:
        raise ValueError(f"{path}: Qdrant Edge collection already exists; pass --overwrite to replace it")
    building = path.with_name(f".{path.name}.building")
    if building.exists():  # left by a build that was killed
        shutil.rmtree(building)
    index = QdrantEdgeIndex(prefix.shape[1], full.shape[1], path=building, quantize=quantize)
    index.add(prefix, full)
    index.close()
    if path.exists():
        shutil.rmtree(path)
    building.rename(path)
    return QdrantEdgeIndex(prefix.shape[1], full.shape[1], path=path, create=False, quantize=quantize)


def check_index_target(
    directory: str | Path,
    *,
    backend: str = "embedded",
    url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    overwrite: bool = False,
    quantize: str | None = None,
    rescore: str | None = None,
) -> None:
    """Refuse, before anything is encoded, what :func:`write_index_folder` would refuse: an unknown
    backend, a quantization (or rescoring) the backend does not have, a folder that is a file, an existing index
    folder, collection or table (unless ``overwrite``), pgvector without a URL, a server that does not
    answer."""
    directory = Path(directory)
    if backend not in BACKENDS and backend != "numpy":
        raise ValueError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ValueError(f"unknown quantization {quantize!r}; choose {', '.join(QUANTIZE)}")
    if quantize is not None and backend == "qdrant":
        raise ValueError(
            f"--quantize {quantize} is for the embedded, faiss, qdrant-edge and pgvector backends, not qdrant"
        )
    if rescore is not None and rescore not in RESCORE:
        raise ValueError(f"unknown rescoring {rescore!r}; choose {', '.join(RESCORE)}")
    if rescore is not None and (quantize != "binary" or backend not in ("embedded", "numpy", "faiss")):
        raise ValueError(
            f"--rescore {rescore} reranks a binary shortlist: it needs --quantize binary and the embedded or "
            "faiss backend"
        )
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory}: exists and is not a folder")
    if (directory / "meta.json").exists() and not overwrite:
        raise ValueError(f"{directory}: already an index folder; pass --overwrite to replace it")
    if directory.is_dir() and not (directory / "meta.json").exists() and any(directory.iterdir()):
        raise ValueError(f"{directory}: a folder that holds files and is not an index; choose a new or empty folder")
    if backend == "pgvector" and not url:
        raise ValueError("the pgvector backend needs --url postgresql://...")
    if overwrite:
        return
    if backend == "pgvector" and url and table_exists(url, collection):
        raise ValueError(
            f"PostgreSQL at {safe_url(url)}: table {collection!r} already exists; pass --overwrite to replace it"
        )
    if backend == "qdrant" and url and qdrant_collection_exists(url, collection):
        raise ValueError(f"Qdrant at {url}: collection {collection!r} already exists; pass --overwrite to replace it")
    if backend == "qdrant-edge" and edge_path(directory, check_name("Qdrant collection", collection)).exists():
        raise ValueError(
            f"{edge_path(directory, collection)}: Qdrant Edge collection already exists; pass --overwrite to replace it"
        )


def write_index_folder(
    directory: str | Path,
    prefix: np.ndarray,
    full: np.ndarray,
    texts: list[str],
    *,
    backend: str = "embedded",
    model: str | None = None,
    url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    overwrite: bool = False,
    quantize: str | None = None,
    rescore: str | None = None,
    oversample: int = 4,
    dial: float | None = None,
    backbone: str | None = None,
) -> SearchIndex:
    """Build an index folder: ``meta.json``, ``texts.jsonl`` and the backend's own storage (files in
    the folder, or a collection / table on the server at ``url``). An existing index folder, or an
    existing collection of the same name, is replaced only with ``overwrite=True``
    (:func:`check_index_target` says so before any work). ``quantize="binary"`` (every backend but
    ``qdrant``): the first stage ranks by the prefix's sign bits (:class:`EmbeddedIndex`, and the
    engines' own binary indexes); ``rescore`` (embedded and faiss) reranks the bits' shortlist by the
    prefix in int8 or float16 (:class:`EmbeddedIndex`). ``dial``: the dial the documents were encoded
    at (a model trained with the dial), and ``backbone``: the backbone with the runtime and maximum
    sequence length they were encoded with (:attr:`Backbone.name`), so that queries are encoded as
    they were."""
    directory = Path(directory)
    check_index_target(
        directory,
        backend=backend,
        url=url,
        collection=collection,
        overwrite=overwrite,
        quantize=quantize,
        rescore=rescore,
    )
    directory.mkdir(parents=True, exist_ok=True)
    dims = (prefix.shape[1], full.shape[1])
    index: SearchIndex
    if backend == "qdrant-edge":
        check_name("Qdrant collection", collection)
        index = _build_edge(edge_path(directory, collection), prefix, full, overwrite, quantize)
    else:
        if backend == "qdrant":
            index = QdrantIndex(
                *dims,
                collection=collection,
                overwrite=overwrite,
                url=url or None,
                path=None if url else str(directory / "qdrant"),
            )
        elif backend == "pgvector":
            index = build_index(backend, *dims, url=url, table=collection, overwrite=overwrite, quantize=quantize)
        else:
            extra: dict[str, Any] = {"rescore": rescore, "oversample": oversample} if rescore else {}
            index = build_index(backend, *dims, quantize=quantize, **extra)
        index.add(prefix, full)
    if isinstance(index, EmbeddedIndex):
        index.save(directory)
    index.close()
    atomic_write(
        directory / "texts.jsonl",
        lambda p: p.write_text(
            "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8"
        ),
    )
    atomic_write_json(
        directory / "meta.json",
        folder_meta(backend, model, dial, backbone, url, collection, len(texts), dims, quantize, rescore),
    )
    return index


def folder_meta(
    backend: str,
    model: str | None,
    dial: float | None,
    backbone: str | None,
    url: str | None,
    collection: str,
    count: int,
    dims: tuple[int, int],
    quantize: str | None,
    rescore: str | None,
) -> dict:
    """An index folder's ``meta.json``: what :func:`open_index_folder` and ``steer search`` read back
    (the model, dial and backbone settings queries are encoded with, the server without its password,
    the dims)."""
    return {
        "backend": backend,
        "model": model,
        "dial": dial,
        "backbone": backbone,
        "url": safe_url(url) if url and backend in ("qdrant", "pgvector") else None,
        "collection": collection if backend in ("qdrant", "qdrant-edge", "pgvector") else None,
        "count": count,
        "prefix_dim": dims[0],
        "full_dim": dims[1],
        "quantize": quantize,
        "rescore": rescore,
    }


def open_index_folder(directory: str | Path, url: str | None = None) -> tuple[SearchIndex, dict, list[str]]:
    """(index, meta, texts) of a folder written by :func:`write_index_folder`; ``url`` replaces the
    server URL it was built with (whose password, if any, was not stored)."""
    directory = Path(directory)
    if not (directory / "meta.json").exists():
        raise FileNotFoundError(f"{directory}: not an index folder (no meta.json); build one with `steer index`")
    meta = read_json(directory / "meta.json")
    backend, dims = meta["backend"], (meta["prefix_dim"], meta["full_dim"])
    collection = meta.get("collection") or DEFAULT_COLLECTION
    url = url or meta.get("url")
    index: SearchIndex
    if backend == "qdrant":
        index = QdrantIndex(
            *dims, collection=collection, create=False, url=url or None, path=None if url else str(directory / "qdrant")
        )
    elif backend == "qdrant-edge":
        index = QdrantEdgeIndex(
            *dims, path=edge_path(directory, collection), create=False, quantize=meta.get("quantize")
        )
    elif backend == "pgvector":
        index = build_index(backend, *dims, url=url, table=collection, create=False, quantize=meta.get("quantize"))
    else:
        index = EmbeddedIndex.load(directory)
    with open(directory / "texts.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    return index, meta, texts
