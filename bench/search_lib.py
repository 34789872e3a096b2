"""Helpers of ``bench/search.py``: the out-of-sample collection and its two query sets, the
contenders (each setting measured on the selection and on the evaluation queries), the prefix's
ceiling, and the choice of settings on the selection queries (reported on the evaluation queries).

The search rules are the library's (``steerable.search.funnel``: the funnel and adaptive search; the
HNSW graph of ``steerable.search.index``); this module only times them, beside FAISS's flat and IVF
indexes and the real engines."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import faiss
import numpy as np

from steerable.search.binary import BinaryStage
from steerable.search.funnel import Exact, adaptive, funnel
from steerable.search.index import HNSW
from steerable.search.metrics import overlap_at_k
from steerable.search.ranking import top_k

from _common import timed
from search_engines import engine_rows

TARGET_RECALL = 0.99  # the funnel keeps >= 0.99 of exact-256's top 10
IVF_CODECS = {"funnel-ivf": "Flat", "funnel-ivf-sq8": "SQ8", "funnel-ivf-pq4fs": "PQ32x4fs"}
BINARY_OVERSAMPLE = (1, 4)  # funnel-binary's shortlists: each --shortlists K, and 4 K
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
        "recall@10": overlap_at_k(search(q.prefix, q.full), q.truth),
        "qps": len(q) / t,
        "latency_ms": latency_ms(lambda i: search(*q.one(i))),
    }
    if numpy_scan is not None:
        npy = latency_ms(lambda i: numpy_scan(*q.one(i)))
        row.update(latency_ms=min(row["latency_ms"], npy), latency_ms_faiss=row["latency_ms"], latency_ms_numpy=npy)
    return row


# --- indexes ------------------------------------------------------------------------------------


class FaissStage:
    """A FAISS index (flat or IVF, inner product) as the first stage of the library's search rules."""

    def __init__(self, index: faiss.Index):
        self.index = index

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, rows = self.index.search(queries, k)
        return rows, sims

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError("a first stage only: the full vectors rerank")


def build_hnsw(vectors: np.ndarray, m: int = 32, ef_construction: int = 80) -> tuple[HNSW, float, float]:
    """(the library's inner-product HNSW graph over ``vectors``, build seconds, serialized size in MiB)."""
    index = HNSW(vectors.shape[1], m, ef_construction)
    t0 = time.perf_counter()
    index.add(vectors)
    return index, time.perf_counter() - t0, index.nbytes() / 2**20


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
    return [{"shortlist": K, "recall@10": overlap_at_k(top[:, :K], truth)} for K in shortlists]


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
        self.exact = Exact(full)  # the second stage of every funnel: exact rerank on the full vectors
        self.flat = faiss.IndexFlatIP(full.shape[1])
        self.flat.add(full)
        self.evaluation = self.queries(*evaluation)
        self.selection = self.queries(*selection) if selection is not None else None

    def queries(self, q_prefix: np.ndarray, q_full: np.ndarray) -> Queries:
        return Queries(q_prefix, q_full, self.flat.search(q_full, self.k)[1])

    def sets(self) -> dict[str, Queries]:
        """The query sets by field prefix: ``""`` evaluation, ``"selection_"`` selection."""
        return {"": self.evaluation} | ({"selection_": self.selection} if self.selection else {})

    def row(self, contender: str, search: Search, *, numpy_scan: Search | None = None, **fields: Any) -> dict:
        out = {"contender": contender, **fields}
        for pre, q in self.sets().items():
            out.update({pre + key: v for key, v in measure(search, q, numpy_scan).items()})
        return out

    def funnel(self, stage: FaissStage | HNSW | BinaryStage, K: int) -> Search:
        """The library's funnel: a 64-d shortlist of K from ``stage``, reranked exactly on the full vectors."""
        return lambda qp, qf: funnel(stage, self.exact, qp, qf, self.k, K)[0]


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
        index.ef_search = ef
        rows.append(
            b.row(
                name,
                lambda qp, qf: index.search(qf if use_full else qp, b.k)[0],
                ef_search=ef,
                memory_mb=mem,
                build_s=build_s,
            )
        )
    return rows, (index, build_s, mem)


def adaptive_search(
    b: Bench, hnsw64: HNSW, margin: float, K: int = 200
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, float]]:
    """The library's adaptive search over the 64-d HNSW (efSearch max(K, 64)): a query whose top-1
    beats its top-2 by ``margin`` is answered by the prefix, the others by the funnel with shortlist K.
    Returns (ids, share of queries extended)."""

    def search(qp: np.ndarray, qf: np.ndarray) -> tuple[np.ndarray, float]:
        hnsw64.ef_search = 64
        ids, _, extended = adaptive(hnsw64, b.exact, qp, qf, b.k, K, margin)
        return ids, float(extended.mean())

    return search


def adaptive_rows(b: Bench, hnsw64: HNSW, mem64: float) -> list[dict]:
    rows = []
    for margin in ADAPTIVE_MARGINS:
        search = adaptive_search(b, hnsw64, margin)
        extended: dict[str, Any] = {pre + "extended": search(q.prefix, q.full)[1] for pre, q in b.sets().items()}
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
    b: Bench, hnsw64: HNSW, build64: float, mem64: float, shortlists: list[int], nprobes: tuple[int, ...], nlist: int
) -> list[dict]:
    flat64 = faiss.IndexFlatIP(b.prefix.shape[1])
    flat64.add(b.prefix)
    ivfs = {name: build_ivf(b.prefix, nlist, codec) for name, codec in IVF_CODECS.items()}
    t0 = time.perf_counter()
    bits = _binary(b.prefix)
    bits_build_s = time.perf_counter() - t0
    full_mb = b.full.nbytes / 2**20
    rows = []
    for K in sorted({K * f for K in shortlists for f in BINARY_OVERSAMPLE}):  # bits need longer shortlists
        rows.append(
            b.row(
                "funnel-binary",
                b.funnel(bits, K),
                shortlist=K,
                memory_mb=bits.nbytes() / 2**20 + full_mb,
                build_s=bits_build_s,
            )
        )
    for K in shortlists:
        rows.append(
            b.row(
                "funnel-flat", b.funnel(FaissStage(flat64), K), shortlist=K, memory_mb=b.prefix.nbytes / 2**20 + full_mb
            )
        )
        hnsw64.ef_search = 64  # searched at efSearch max(K, 64)
        rows.append(b.row("funnel-hnsw", b.funnel(hnsw64, K), shortlist=K, memory_mb=mem64 + full_mb, build_s=build64))
        for name, (ivf, ivf_build_s, mem_ivf) in ivfs.items():
            for nprobe in nprobes:
                faiss.extract_index_ivf(ivf).nprobe = nprobe
                rows.append(
                    b.row(
                        name,
                        b.funnel(FaissStage(ivf), K),
                        shortlist=K,
                        nprobe=nprobe,
                        nlist=nlist,
                        memory_mb=mem_ivf + full_mb,
                        build_s=ivf_build_s,
                    )
                )
    return rows


def _binary(prefix: np.ndarray) -> BinaryStage:
    stage = BinaryStage(prefix.shape[1])
    stage.add(prefix)
    return stage


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
