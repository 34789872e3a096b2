"""Qdrant backends: one collection with the named vectors ``prefix`` and ``full``.

The funnel is one Qdrant query: a ``prefetch`` of the ``shortlist`` nearest by the prefix, reranked by
the full vector (the rule of :func:`steerable.search.funnel.funnel`, run by Qdrant). Two engines:

- :class:`QdrantIndex` (``qdrant-client``): a Qdrant server by URL, or the client's local mode, a
  pure-Python stand-in that scans every vector (no HNSW).
- :class:`QdrantEdgeIndex` (``qdrant-edge-py``): Qdrant's own engine in this process, on a shard
  folder: an HNSW graph on the prefix, none on the full vector (it only reranks or scans). With
  ``quantize="binary"`` the prefix is searched by Qdrant's binary quantisation (its sign bits, kept in
  memory, no rescoring by the float prefix) and both float vectors stay on disk.

An existing collection is opened only when asked for (``create=False``) and replaced only with
``overwrite=True``; creating over it otherwise is refused.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from ..extras import require
from .funnel import adaptive
from .funnel import checked as _check

DEFAULT_COLLECTION = "steerable"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a plain collection / table name (letters, digits, ``_ . -``), else a
    ValueError naming it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > 63:
        raise ValueError(f"{kind} name {name!r}: use letters, digits and _ . - (at most 63)")
    return name


class _Stage:
    """One named vector of the collection as a :class:`~steerable.search.funnel.Stage`; rows are
    point ids."""

    def __init__(self, index: "_Qdrant", using: str):
        self.index, self.using = index, using

    def __len__(self) -> int:
        return len(self.index)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._scaled(self.index.query([self.index.request(q, self.using, k) for q in queries], k))

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._scaled(
            self.index.query(
                [
                    self.index.request(q, self.using, k, ids=[int(i) for i in c if i >= 0])
                    for q, c in zip(queries, candidates)
                ],
                k,
            )
        )

    def _scaled(self, answer: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Scores as the embedded backend gives them: Qdrant scores a binary prefix ``d - 2 h`` (the dot
        product of two +-1 vectors), the library ``1 - 2 h / d``. (Qdrant's exact search ignores the
        quantisation: it scans the float prefix.)"""
        ids, scores = answer
        if self.using == "prefix" and self.index.quantize and not self.index.exact:
            scores = scores / np.float32(self.index.prefix_dim)
        return ids, scores


class _Qdrant:
    """What both engines share: the funnel as a prefetch query, the prefix alone, adaptive search.
    A subclass builds the engine's requests (:meth:`request`) and runs a batch (:meth:`run`)."""

    backend = "qdrant"
    prefix_dim: int
    full_dim: int
    ef_search: int = 128

    def __len__(self) -> int:
        raise NotImplementedError

    exact: bool = False  # True: the engine scans every vector instead of searching its graph
    quantize: str | None = None  # "binary": the prefix is ranked by its sign bits

    def _stages(self) -> None:
        self.prefix, self.full = _Stage(self, "prefix"), _Stage(self, "full")

    def request(
        self,
        vector: np.ndarray,
        using: str,
        limit: int,
        *,
        ids: list[int] | None = None,
        prefetch: tuple[np.ndarray, int] | None = None,
    ) -> Any:
        raise NotImplementedError

    def run(self, requests: list) -> list[list]:
        raise NotImplementedError

    def query(self, requests: list, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of a batch of requests, padded with -1 / -inf."""
        results = self.run(requests)
        ids = np.full((len(results), k), -1, np.int64)
        scores = np.full((len(results), k), -np.inf, np.float32)
        for i, points in enumerate(results):
            for j, p in enumerate(points[:k]):
                ids[i, j], scores[i, j] = p.id, p.score
        return ids, scores

    def search(
        self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores): exact by the full vector, or the funnel with ``shortlist`` (one query)."""
        q_prefix = _check("query prefix", q_prefix, self.prefix_dim)
        q_full = _check("query full", q_full, self.full_dim)
        return self.query(
            [
                self.request(qf, "full", k, prefetch=None if shortlist is None else (qp, max(shortlist, k)))
                for qp, qf in zip(q_prefix, q_full)
            ],
            k,
        )

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        return self.prefix.search(_check("query prefix", q_prefix, self.prefix_dim), k)

    def adaptive(
        self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100, margin: float = 0.02
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, extended): :func:`steerable.search.funnel.adaptive` over this collection."""
        return adaptive(
            self.prefix,
            self.full,
            _check("query prefix", q_prefix, self.prefix_dim),
            _check("query full", q_full, self.full_dim),
            k,
            shortlist,
            margin,
        )

    def _new_ids(self, n: int, ids: Sequence[int] | None) -> list[int]:
        start = len(self)
        return list(range(start, start + n)) if ids is None else [int(i) for i in ids]


def _client() -> tuple[Any, ModuleType]:
    client = require("qdrant_client", "search", "the qdrant backend")
    return client.QdrantClient, require("qdrant_client.models", "search", "the qdrant backend")


def qdrant_collection_exists(url: str, collection: str) -> bool:
    """Whether the Qdrant server at ``url`` holds ``collection`` (asked before any encoding)."""
    QdrantClient, _ = _client()
    name = check_name("Qdrant collection", collection)
    client = QdrantClient(url=url)
    try:
        return client.collection_exists(name)
    except Exception as e:  # the client raises transport errors of several libraries
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot reach Qdrant at {url}: {why}") from None
    finally:
        client.close()


class QdrantIndex(_Qdrant):
    """Qdrant through ``qdrant-client``: ``url=...`` talks to a server, ``path=...`` or
    ``location=":memory:"`` (the default) run the client's local mode in this process.

    ``create=True`` makes the collection (refused if it exists, unless ``overwrite=True``);
    ``create=False`` opens an existing one.
    """

    backend = "qdrant"

    def __init__(
        self,
        prefix_dim: int,
        full_dim: int,
        *,
        collection: str = DEFAULT_COLLECTION,
        location: str | None = None,
        path: str | None = None,
        url: str | None = None,
        create: bool = True,
        overwrite: bool = False,
        ef_search: int = 128,
    ):
        QdrantClient, self.models = _client()
        models = self.models
        self.prefix_dim, self.full_dim, self.ef_search = prefix_dim, full_dim, ef_search
        self.collection = check_name("Qdrant collection", collection)
        self.where = url or (str(path) if path else location or ":memory:")
        self.remote = bool(url)  # local mode scans every vector and takes no search parameters
        if url:
            self.client = QdrantClient(url=url)
        elif path:
            self.client = QdrantClient(path=str(path))
        else:
            self.client = QdrantClient(location or ":memory:")
        exists = self.client.collection_exists(collection)
        if not create and not exists:
            raise ValueError(f"Qdrant at {self.where}: no collection {collection!r}")
        if create:
            if exists and not overwrite:
                raise ValueError(
                    f"Qdrant at {self.where}: collection {collection!r} already exists; pass --overwrite to replace it"
                )
            if exists:
                self.client.delete_collection(collection)
            cosine = models.Distance.COSINE
            self.client.create_collection(
                collection,
                vectors_config={
                    "prefix": models.VectorParams(size=prefix_dim, distance=cosine),
                    "full": models.VectorParams(size=full_dim, distance=cosine),
                },
            )
        self._stages()

    def __len__(self) -> int:
        return self.client.count(self.collection).count

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None, batch: int = 1024) -> None:
        prefix, full = _check("prefix", prefix, self.prefix_dim), _check("full", full, self.full_dim)
        ids = self._new_ids(len(prefix), ids)
        for s in range(0, len(ids), batch):
            self.client.upload_collection(
                self.collection,
                vectors={"prefix": prefix[s : s + batch], "full": full[s : s + batch]},
                ids=ids[s : s + batch],
                wait=True,
            )

    def request(
        self,
        vector: np.ndarray,
        using: str,
        limit: int,
        *,
        ids: list[int] | None = None,
        prefetch: tuple[np.ndarray, int] | None = None,
    ) -> Any:
        m = self.models

        def params(width: int) -> Any:
            return m.SearchParams(hnsw_ef=max(self.ef_search, width), exact=self.exact) if self.remote else None

        pre = None
        if prefetch is not None:
            qp, shortlist = prefetch
            pre = m.Prefetch(query=qp.tolist(), using="prefix", limit=shortlist, params=params(shortlist))
        flt = None if ids is None else m.Filter(must=[m.HasIdCondition(has_id=ids)])
        return m.QueryRequest(
            query=vector.tolist(), using=using, limit=limit, prefetch=pre, filter=flt, params=params(limit)
        )

    def run(self, requests: list) -> list[list]:
        return [r.points for r in self.client.query_batch_points(self.collection, requests=requests)]

    def close(self) -> None:
        self.client.close()


def _edge() -> ModuleType:
    return require("qdrant_edge", "search", "the qdrant-edge backend")


class QdrantEdgeIndex(_Qdrant):
    """Qdrant's engine in this process (``qdrant-edge-py``), on the shard folder ``path``: an HNSW
    graph (``hnsw_m``, ``ef_construction``; searched with ``ef_search``) on the prefix, the full
    vector stored without one.

    ``create=True`` makes the shard (refused if ``path`` exists, unless ``overwrite=True``, which
    deletes it first); ``create=False`` opens it with the settings it was made with. ``threads``:
    the shard's search threads (default: Qdrant's, from the CPU count), kept with the shard.
    :meth:`add` builds the graph before it returns.
    """

    backend = "qdrant-edge"

    def __init__(
        self,
        prefix_dim: int,
        full_dim: int,
        *,
        path: str | Path,
        create: bool = True,
        overwrite: bool = False,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        threads: int | None = None,
        quantize: str | None = None,
    ):
        if quantize not in (None, "binary"):
            raise ValueError(f"unknown quantization {quantize!r} for qdrant-edge; choose binary")
        qe = self.qe = _edge()
        self.prefix_dim, self.full_dim, self.ef_search, self.quantize = prefix_dim, full_dim, ef_search, quantize
        self.path = Path(path)
        if not create:
            if not self.path.is_dir():
                raise ValueError(f"{self.path}: no Qdrant Edge collection there")
            self.shard = qe.EdgeShard.load(str(self.path))
        else:
            if self.path.exists() and not overwrite:
                raise ValueError(f"{self.path}: Qdrant Edge collection already exists; pass --overwrite to replace it")
            if self.path.exists():
                shutil.rmtree(self.path)
            graph = qe.HnswIndexConfig(m=hnsw_m, ef_construct=ef_construction, full_scan_threshold=1)
            no_graph = qe.HnswIndexConfig(m=0, ef_construct=ef_construction, full_scan_threshold=1)
            cosine, binary = qe.Distance.Cosine, quantize == "binary"
            bits = qe.BinaryQuantizationConfig(always_ram=True) if binary else None
            config = qe.EdgeConfig(
                vectors={
                    "prefix": qe.EdgeVectorParams(
                        prefix_dim, cosine, on_disk=binary or None, quantization_config=bits, hnsw_config=graph
                    ),
                    "full": qe.EdgeVectorParams(full_dim, cosine, on_disk=binary or None, hnsw_config=no_graph),
                },
                # index every segment (threshold in KB), so that the prefix is searched by its graph
                optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),
                max_search_threads=threads,
            )
            self.shard = qe.EdgeShard.create(str(self.path), config)
        self._stages()

    def __len__(self) -> int:
        return self.shard.count(self.qe.CountRequest(exact=True))

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None, batch: int = 4096) -> None:
        """Upsert the points, build the graph (``optimize``) and flush them to disk."""
        qe = self.qe
        prefix, full = _check("prefix", prefix, self.prefix_dim), _check("full", full, self.full_dim)
        ids = self._new_ids(len(prefix), ids)
        for s in range(0, len(ids), batch):
            points = [
                qe.Point(i, {"prefix": p, "full": f})
                for i, p, f in zip(ids[s : s + batch], prefix[s : s + batch].tolist(), full[s : s + batch].tolist())
            ]
            self.shard.update(qe.UpdateOperation.upsert_points(points))
        self.shard.optimize()
        self.shard.flush()

    def request(
        self,
        vector: np.ndarray,
        using: str,
        limit: int,
        *,
        ids: list[int] | None = None,
        prefetch: tuple[np.ndarray, int] | None = None,
    ) -> Any:
        qe = self.qe
        pre = None
        if prefetch is not None:
            qp, shortlist = prefetch
            pre = [
                qe.Prefetch(
                    limit=shortlist,
                    query=qe.Query.Nearest(qp.tolist(), using="prefix"),
                    params=self._params("prefix", shortlist),
                )
            ]
        flt = None if ids is None else qe.Filter(must=[qe.HasIdCondition(set(ids))])
        return qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector.tolist(), using=using),
            prefetches=pre,
            filter=flt,
            params=self._params(using, limit),
        )

    def _params(self, using: str, width: int) -> Any:
        """Search parameters for a ranking of ``width`` points by ``using``: a binary prefix ranks by its
        bits alone (no rescoring by the float prefix, which stays on disk; ``exact`` scans the float
        prefix instead, as Qdrant's exact search ignores quantisation)."""
        qe = self.qe
        bits = qe.QuantizationSearchParams(rescore=False) if self.quantize and using == "prefix" else None
        return qe.SearchParams(hnsw_ef=max(self.ef_search, width), exact=self.exact, quantization=bits)

    def run(self, requests: list) -> list[list]:
        return self.shard.query_batch(self.qe.QueryBatchRequest(requests))

    def close(self) -> None:
        self.shard.close()
