"""Search indexes over steerable embeddings, with one small interface and two backends.

Every index stores, per document, the short prefix and the full vector (both unit-length) and
answers two kinds of query:

- exact: cosine ranking by the full vector;
- multi-stage (``shortlist=K``): the K nearest documents by the short prefix, reranked by the full
  vector.

Backends: :class:`EmbeddedIndex` (numpy; ``hnsw=True`` puts a FAISS HNSW graph on the prefix so the
shortlist does not scan every document) and :class:`QdrantIndex` (named vectors ``prefix`` and
``full``, one ``prefetch`` query; in-process local mode, or a Qdrant server by URL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .io import atomic_write, atomic_write_json, read_json


class SearchIndex(Protocol):
    prefix_dim: int
    full_dim: int

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None) -> None: ...

    def search(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10,
               shortlist: int | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...


def adaptive_search(index: SearchIndex, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10,
                    shortlist: int = 100, margin: float = 0.02
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, scores, extended): the prefix answers the queries it is confident about.

    A query is confident when its prefix top-1 similarity beats its top-2 by at least ``margin``;
    it gets the prefix ranking (scores are prefix similarities). Every other query is extended: it
    gets the multi-stage answer (prefix shortlist, full-vector rerank). Works with any backend.
    """
    ids, scores = index.search_prefix(q_prefix, max(k, 2))
    gap = scores[:, 0] - scores[:, 1]
    extended = ~(gap >= margin)
    ids, scores = ids[:, :k].copy(), scores[:, :k].copy()
    if extended.any():
        ids[extended], scores[extended] = index.search(q_prefix[extended], q_full[extended], k,
                                                       shortlist=shortlist)
    return ids, scores, extended


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def rerank(queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray, k: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores), each (nq, k): the k candidates (row positions into ``vectors``; -1 = none) with
    the largest inner product per query, best first; missing results have row -1 and score -inf.

    FAISS computes it in one pass over the candidate rows when it is installed (no (nq, K, d) copy of
    the gathered vectors); numpy otherwise. Both give the same ranking.
    """
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # no copy when it already is
    nq, width = candidates.shape
    k = min(k, width)
    try:
        import faiss

        scores = np.empty((nq, k), np.float32)
        rows = np.empty((nq, k), np.int64)
        ptr = faiss.swig_ptr
        faiss.knn_inner_products_by_idx(ptr(queries), ptr(vectors), ptr(candidates), vectors.shape[1], nq,
                                        len(vectors), width, k, ptr(scores), ptr(rows), width)
        scores[rows < 0] = -np.inf
        return rows, scores
    except (ImportError, TypeError):  # no FAISS, or an old one with another signature
        pass
    cand_scores = np.einsum("qd,qkd->qk", queries, vectors[np.maximum(candidates, 0)])
    cand_scores[candidates < 0] = -np.inf  # HNSW pads with -1 when it finds fewer
    order = _topk(cand_scores, k)
    rows = np.take_along_axis(candidates, order, axis=1)
    scores = np.take_along_axis(cand_scores, order, axis=1)
    rows[~np.isfinite(scores)] = -1
    return rows, scores


def _check(name: str, x: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {x.shape}")
    return x


class EmbeddedIndex:
    """In-memory index: exact numpy scans, and optionally an HNSW graph (FAISS) on the prefix."""

    backend = "embedded"

    def __init__(self, prefix_dim: int, full_dim: int, *, hnsw: bool = False, hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 128):
        self.prefix_dim, self.full_dim = prefix_dim, full_dim
        self.hnsw, self.hnsw_m = hnsw, hnsw_m
        self.ef_construction, self.ef_search = ef_construction, ef_search
        self.prefix = np.zeros((0, prefix_dim), np.float32)
        self.full = np.zeros((0, full_dim), np.float32)
        self.ids = np.zeros(0, np.int64)
        self._graph = None

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None) -> None:
        prefix, full = _check("prefix", prefix, self.prefix_dim), _check("full", full, self.full_dim)
        if len(prefix) != len(full):
            raise ValueError(f"prefix and full have {len(prefix)} and {len(full)} rows")
        new_ids = np.arange(len(self), len(self) + len(prefix)) if ids is None else np.asarray(ids)
        self.prefix = np.concatenate([self.prefix, prefix])
        self.full = np.concatenate([self.full, full])
        self.ids = np.concatenate([self.ids, new_ids.astype(np.int64)])
        if self.hnsw:
            self._graph_add(prefix)

    def _graph_add(self, prefix: np.ndarray) -> None:
        import faiss

        if self._graph is None:
            self._graph = faiss.IndexHNSWFlat(self.prefix_dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._graph.hnsw.efConstruction = self.ef_construction
        self._graph.add(prefix)

    def shortlist(self, q_prefix: np.ndarray, k: int) -> np.ndarray:
        """Row positions of the k nearest documents by the prefix (HNSW when enabled)."""
        if self._graph is not None:
            self._graph.hnsw.efSearch = max(self.ef_search, k)
            return self._graph.search(q_prefix, k)[1]
        return _topk(q_prefix @ self.prefix.T, k)

    def search(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10,
               shortlist: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores), each (nq, k): exact by the full vector, or multi-stage with ``shortlist``."""
        q_prefix = _check("query prefix", q_prefix, self.prefix_dim)
        q_full = _check("query full", q_full, self.full_dim)
        if shortlist is None:
            scores = q_full @ self.full.T
            rows = _topk(scores, k)
            return self.ids[rows], np.take_along_axis(scores, rows, axis=1)
        cand = self.shortlist(q_prefix, max(shortlist, k))
        rows, scores = rerank(q_full, self.full, cand, k)
        return self._ids(rows), scores

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) ranked by the prefix alone (exact, or the HNSW graph when enabled)."""
        q_prefix = _check("query prefix", q_prefix, self.prefix_dim)
        rows, scores = rerank(q_prefix, self.prefix, self.shortlist(q_prefix, k), k)
        return self._ids(rows), scores

    def _ids(self, rows: np.ndarray) -> np.ndarray:
        """Document ids of row positions; -1 (no result) stays -1."""
        return np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)

    def memory_bytes(self) -> dict[str, int]:
        out = {"prefix": self.prefix.nbytes, "full": self.full.nbytes}
        if self._graph is not None:
            import faiss

            out["hnsw_prefix"] = int(faiss.serialize_index(self._graph).nbytes)
        return out

    # -- persistence: safetensors + JSON (the graph is rebuilt on load) -------------------------
    def save(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file

        directory = Path(directory)
        tensors = {"prefix": self.prefix, "full": self.full, "ids": self.ids}
        atomic_write(directory / "vectors.safetensors", lambda p: save_file(tensors, str(p)))
        atomic_write_json(directory / "index.json", {
            "backend": self.backend, "prefix_dim": self.prefix_dim, "full_dim": self.full_dim,
            "hnsw": self.hnsw, "hnsw_m": self.hnsw_m, "count": len(self)})

    @classmethod
    def load(cls, directory: str | Path) -> "EmbeddedIndex":
        from safetensors.numpy import load_file

        directory = Path(directory)
        meta = read_json(directory / "index.json")
        index = cls(meta["prefix_dim"], meta["full_dim"], hnsw=meta["hnsw"], hnsw_m=meta["hnsw_m"])
        t = load_file(str(directory / "vectors.safetensors"))
        index.add(t["prefix"], t["full"], t["ids"])
        return index


class QdrantIndex:
    """Qdrant with named vectors ``prefix`` and ``full``; multi-stage is one ``prefetch`` query.

    ``location=":memory:"`` or ``path=...`` run Qdrant in this process (local mode); ``url=...``
    talks to a server. The code path is the same.
    """

    backend = "qdrant"

    def __init__(self, prefix_dim: int, full_dim: int, *, collection: str = "steerable",
                 location: str | None = None, path: str | None = None, url: str | None = None,
                 recreate: bool = True):
        from qdrant_client import QdrantClient, models

        self.models = models
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
        results = self.client.query_batch_points(self.collection, requests=requests)
        return self._collect(results, k)

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        m = self.models
        q_prefix = _check("query prefix", q_prefix, self.prefix_dim)
        requests = [m.QueryRequest(query=q.tolist(), using="prefix", limit=k) for q in q_prefix]
        return self._collect(self.client.query_batch_points(self.collection, requests=requests), k)

    @staticmethod
    def _collect(results, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.full((len(results), k), -1, np.int64)
        scores = np.full((len(results), k), -np.inf, np.float32)
        for i, r in enumerate(results):
            for j, p in enumerate(r.points):
                ids[i, j], scores[i, j] = p.id, p.score
        return ids, scores


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
    import json

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
    import json

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
