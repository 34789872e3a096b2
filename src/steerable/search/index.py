"""Search indexes over steerable embeddings: one small interface, two backends, index folders.

Every index stores, per document, the short prefix and the full vector (both unit-length) and
answers with the rules of :mod:`steerable.search.funnel`: exact (by the full vector), the funnel
(``shortlist=K``) and adaptive search. Backends: :class:`EmbeddedIndex` (in memory; ``hnsw=True``
puts a FAISS HNSW graph on the prefix so the shortlist does not scan every document) and
:class:`QdrantIndex` (named vectors ``prefix`` and ``full``; the funnel is one ``prefetch`` query; in-
process local mode, or a Qdrant server by URL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Sequence

import faiss
import numpy as np
from safetensors.numpy import load_file, save_file

from ..io import atomic_write, atomic_write_json, read_json
from .funnel import Exact, adaptive, funnel
from .ranking import rerank


class SearchIndex(Protocol):
    prefix_dim: int
    full_dim: int

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None) -> None: ...

    def search(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10,
               shortlist: int | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]: ...

    def adaptive(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100,
                 margin: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...


def _check(name: str, x: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {x.shape}")
    return x


class HNSW:
    """A FAISS HNSW graph (inner product) over vectors: an approximate first stage."""

    def __init__(self, dim: int, m: int = 32, ef_construction: int = 80, ef_search: int = 128):
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
        return int(faiss.serialize_index(self.graph).nbytes)


class EmbeddedIndex:
    """In-memory index: exact scans, and optionally an HNSW graph on the prefix."""

    backend = "embedded"

    def __init__(self, prefix_dim: int, full_dim: int, *, hnsw: bool = False, hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 128):
        self.prefix_dim, self.full_dim = prefix_dim, full_dim
        self.hnsw, self.hnsw_m = hnsw, hnsw_m
        self.prefix = (HNSW(prefix_dim, hnsw_m, ef_construction, ef_search) if hnsw
                       else Exact(np.zeros((0, prefix_dim), np.float32)))
        self.full = Exact(np.zeros((0, full_dim), np.float32))
        self.ids = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None) -> None:
        prefix, full = _check("prefix", prefix, self.prefix_dim), _check("full", full, self.full_dim)
        if len(prefix) != len(full):
            raise ValueError(f"prefix and full have {len(prefix)} and {len(full)} rows")
        new_ids = np.arange(len(self), len(self) + len(prefix)) if ids is None else np.asarray(ids)
        if isinstance(self.prefix, HNSW):
            self.prefix.add(prefix)
        else:
            self.prefix.vectors = np.concatenate([self.prefix.vectors, prefix])
        self.full.vectors = np.concatenate([self.full.vectors, full])
        self.ids = np.concatenate([self.ids, new_ids.astype(np.int64)])

    def _ids(self, rows: np.ndarray) -> np.ndarray:
        """Document ids of row positions; -1 (no result) stays -1."""
        return np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)

    def search(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10,
               shortlist: int | None = None) -> tuple[np.ndarray, np.ndarray]:
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

    def adaptive(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100,
                 margin: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, extended): :func:`steerable.search.funnel.adaptive` over this index."""
        rows, scores, extended = adaptive(self.prefix, self.full, _check("query prefix", q_prefix, self.prefix_dim),
                                          _check("query full", q_full, self.full_dim), k, shortlist, margin)
        return self._ids(rows), scores, extended

    def memory_bytes(self) -> dict[str, int]:
        out = {"prefix": self.prefix.vectors.nbytes, "full": self.full.vectors.nbytes}
        if isinstance(self.prefix, HNSW):
            out["hnsw_prefix"] = self.prefix.nbytes()
        return out

    # -- persistence: safetensors + JSON, and the HNSW graph in FAISS's own format -------------
    GRAPH_FILE = "prefix.faiss"

    def save(self, directory: str | Path) -> None:
        """Write ``vectors.safetensors``, ``index.json`` and, with ``hnsw=True``, the graph as
        ``prefix.faiss`` (``faiss.write_index``), each file atomically, ``index.json`` last."""
        directory = Path(directory)
        tensors = {"prefix": self.prefix.vectors, "full": self.full.vectors, "ids": self.ids}
        atomic_write(directory / "vectors.safetensors", lambda p: save_file(tensors, str(p)))
        if isinstance(self.prefix, HNSW):
            graph = self.prefix.graph
            atomic_write(directory / self.GRAPH_FILE, lambda p: faiss.write_index(graph, str(p)))
        atomic_write_json(directory / "index.json", {
            "backend": self.backend, "prefix_dim": self.prefix_dim, "full_dim": self.full_dim,
            "hnsw": self.hnsw, "hnsw_m": self.hnsw_m, "count": len(self)})

    @classmethod
    def load(cls, directory: str | Path) -> "EmbeddedIndex":
        """The index :meth:`save` wrote. The HNSW graph is read back as saved (not rebuilt), so the
        answers are the saved index's; a folder without ``prefix.faiss`` has its graph rebuilt."""
        directory = Path(directory)
        meta = read_json(directory / "index.json")
        index = cls(meta["prefix_dim"], meta["full_dim"], hnsw=meta["hnsw"], hnsw_m=meta["hnsw_m"])
        t = load_file(str(directory / "vectors.safetensors"))
        graph_file = directory / cls.GRAPH_FILE
        if not (meta["hnsw"] and graph_file.exists()):
            index.add(t["prefix"], t["full"], t["ids"])
            return index
        graph = faiss.read_index(str(graph_file))
        if graph.ntotal != len(t["prefix"]) or graph.d != meta["prefix_dim"]:
            raise ValueError(f"{graph_file}: a graph of {graph.ntotal} {graph.d}-d vectors, but the folder "
                             f"holds {len(t['prefix'])} {meta['prefix_dim']}-d prefixes; rebuild the index")
        index.prefix.graph = graph
        index.prefix.vectors = np.ascontiguousarray(t["prefix"], dtype=np.float32)
        index.full.vectors = np.ascontiguousarray(t["full"], dtype=np.float32)
        index.ids = t["ids"].astype(np.int64)
        return index


def _qdrant():
    try:
        from qdrant_client import QdrantClient, models
    except ImportError:
        raise ImportError("the Qdrant backend needs the 'search' extra: pip install 'steerable[search]'") from None
    return QdrantClient, models


class _QdrantStage:
    """One named vector of a Qdrant collection as a :class:`~steerable.search.funnel.Stage`."""

    def __init__(self, index: "QdrantIndex", using: str):
        self.index, self.using = index, using

    def __len__(self) -> int:
        return len(self.index)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.index.models
        return self.index.query([m.QueryRequest(query=q.tolist(), using=self.using, limit=k) for q in queries], k)

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.index.models
        return self.index.query([
            m.QueryRequest(query=q.tolist(), using=self.using, limit=k, filter=m.Filter(
                must=[m.HasIdCondition(has_id=[int(i) for i in c if i >= 0])]))
            for q, c in zip(queries, candidates)], k)


class QdrantIndex:
    """Qdrant with named vectors ``prefix`` and ``full``; the funnel is one ``prefetch`` query (the
    same rule as :func:`~steerable.search.funnel.funnel`, run by Qdrant).

    ``location=":memory:"`` or ``path=...`` run Qdrant in this process (local mode); ``url=...``
    talks to a server. The code path is the same.
    """

    backend = "qdrant"

    def __init__(self, prefix_dim: int, full_dim: int, *, collection: str = "steerable",
                 location: str | None = None, path: str | None = None, url: str | None = None,
                 recreate: bool = True):
        QdrantClient, self.models = _qdrant()
        models = self.models
        self.prefix_dim, self.full_dim, self.collection = prefix_dim, full_dim, collection
        if url:
            self.client = QdrantClient(url=url)
        elif path:
            self.client = QdrantClient(path=str(path))
        else:
            self.client = QdrantClient(location or ":memory:")
        exists = self.client.collection_exists(collection)
        if recreate or not exists:
            if exists:
                self.client.delete_collection(collection)
            cosine = models.Distance.COSINE
            self.client.create_collection(collection, vectors_config={
                "prefix": models.VectorParams(size=prefix_dim, distance=cosine),
                "full": models.VectorParams(size=full_dim, distance=cosine)})
        self.prefix, self.full = _QdrantStage(self, "prefix"), _QdrantStage(self, "full")

    def __len__(self) -> int:
        return self.client.count(self.collection).count

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None,
            batch: int = 1024) -> None:
        prefix, full = _check("prefix", prefix, self.prefix_dim), _check("full", full, self.full_dim)
        start = len(self)
        ids = list(range(start, start + len(prefix))) if ids is None else [int(i) for i in ids]
        for s in range(0, len(ids), batch):
            self.client.upload_collection(
                self.collection, vectors={"prefix": prefix[s:s + batch], "full": full[s:s + batch]},
                ids=ids[s:s + batch], wait=True)

    def query(self, requests: list, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of a batch of Qdrant query requests, padded with -1 / -inf."""
        results = self.client.query_batch_points(self.collection, requests=requests)
        ids = np.full((len(results), k), -1, np.int64)
        scores = np.full((len(results), k), -np.inf, np.float32)
        for i, r in enumerate(results):
            for j, p in enumerate(r.points):
                ids[i, j], scores[i, j] = p.id, p.score
        return ids, scores

    def search(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10,
               shortlist: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        m = self.models
        q_prefix = _check("query prefix", q_prefix, self.prefix_dim)
        q_full = _check("query full", q_full, self.full_dim)
        requests = []
        for qp, qf in zip(q_prefix, q_full):
            prefetch = (m.Prefetch(query=qp.tolist(), using="prefix", limit=max(shortlist, k))
                        if shortlist is not None else None)
            requests.append(m.QueryRequest(query=qf.tolist(), using="full", limit=k, prefetch=prefetch))
        return self.query(requests, k)

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        return self.prefix.search(_check("query prefix", q_prefix, self.prefix_dim), k)

    def adaptive(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100,
                 margin: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, extended): :func:`steerable.search.funnel.adaptive` over this collection."""
        return adaptive(self.prefix, self.full, _check("query prefix", q_prefix, self.prefix_dim),
                        _check("query full", q_full, self.full_dim), k, shortlist, margin)


def build_index(backend: str, prefix_dim: int, full_dim: int, **options) -> SearchIndex:
    if backend in ("embedded", "numpy"):
        return EmbeddedIndex(prefix_dim, full_dim, **options)
    if backend == "faiss":
        return EmbeddedIndex(prefix_dim, full_dim, hnsw=True, **options)
    if backend == "qdrant":
        return QdrantIndex(prefix_dim, full_dim, **options)
    raise ValueError(f"unknown backend {backend!r}; choose embedded, faiss or qdrant")


# ------------------------------------------------------------------------- index folders on disk

def write_index_folder(directory: str | Path, prefix: np.ndarray, full: np.ndarray, texts: list[str],
                       *, backend: str = "embedded", model: str | None = None,
                       url: str | None = None) -> SearchIndex:
    """Build an index folder: ``meta.json``, ``texts.jsonl`` and the backend's own storage."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    options = {}
    if backend == "qdrant":
        options = {"url": url} if url else {"path": str(directory / "qdrant")}
    index = build_index(backend, prefix.shape[1], full.shape[1], **options)
    index.add(prefix, full)
    if isinstance(index, EmbeddedIndex):
        index.save(directory)
    else:
        index.client.close()
    atomic_write(directory / "texts.jsonl", lambda p: p.write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8"))
    atomic_write_json(directory / "meta.json", {
        "backend": backend, "model": model, "url": url, "count": len(texts),
        "prefix_dim": prefix.shape[1], "full_dim": full.shape[1]})
    return index


def open_index_folder(directory: str | Path) -> tuple[SearchIndex, dict, list[str]]:
    """(index, meta, texts) of a folder written by :func:`write_index_folder`."""
    directory = Path(directory)
    if not (directory / "meta.json").exists():
        raise FileNotFoundError(f"{directory}: not an index folder (no meta.json); build one with `steer index`")
    meta = read_json(directory / "meta.json")
    if meta["backend"] == "qdrant":
        options = {"url": meta["url"]} if meta["url"] else {"path": str(directory / "qdrant")}
        index = QdrantIndex(meta["prefix_dim"], meta["full_dim"], recreate=False, **options)
    else:
        index = EmbeddedIndex.load(directory)
    with open(directory / "texts.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    return index, meta, texts
