"""Multi-stage search on real embeddings, and throughput on a generated million.

(a) Every text of every data set under STEER_DATA_DIR (about 97,000) goes through a trained V5, a
trained MRL and a trained MRL-distill head (MRL whose 64-d prefix also learns to rank each batch as
its full vector does, ``steerable.methods.mrl_distill``); ``--queries`` random texts are held out
as queries. By default the heads are trained on one taxonomy over all the data sets
(``steerable.data.combine_datasets``: coarse classes ``<data set>/l0``, fine classes
``<data set>/<finest level>``), so that every text of the collection is in the heads' domain; ``--head-data clinc150`` trains them on CLINC alone (then most of the
collection is out of domain, and its nearest neighbours are near-ties). Contenders, all with the
same thread count and measured after a warm-up, on the whole query batch:

- exact-256 / exact-64: flat inner-product scan of the full vectors / of the 64-d prefixes alone;
- hnsw-64: HNSW on the prefixes alone (no rerank);
- funnel-flat: 64-d flat scan shortlist of K, exact 256-d rerank;
- funnel-hnsw: 64-d HNSW shortlist of K (efSearch = max(K, 64)), exact 256-d rerank;
- funnel-ivf: 64-d IVF shortlist of K (inverted lists over k-means cells of the prefixes, ``nprobe``
  cells scanned), exact 256-d rerank;
- funnel-ivf-sq8 / funnel-ivf-pq4fs: the same with the prefixes stored quantized in the lists
  (8-bit scalar quantizer, 4x smaller; 4-bit product quantizer with 32 sub-vectors scanned with
  SIMD look-up tables, FAISS "fast scan", 16x smaller): a cheaper scan, an approximate shortlist;
- adaptive: 64-d HNSW; a query whose top-1 beats its top-2 by the margin is answered by the prefix,
  the others by the HNSW funnel with K = 200;
- hnsw-256: HNSW on the full vectors.

The rerank is ``steerable.search.ranking.rerank`` (FAISS scores the candidate rows in place).
Reported: recall@10 against exact-256's top 10, queries per second over the batch, the median
latency of single queries (one at a time, ``latency_ms``: what a server answering queries as they
come sees; for the exact scans the faster of FAISS's flat index and a numpy matrix-vector product),
index memory; and the prefix's ceiling: the share of exact-256's top 10 inside the exact 64-d top K,
which no 64-d shortlist index can beat.
Targets: the funnel at least 3x exact-256's throughput while keeping >= 0.99 of its top 10, and
faster than hnsw-256 at equal recall.

(b) ``--synthetic N`` (default 1,000,000): the same contenders' throughput on a seeded N x 256
collection (clustered Gaussian, prefix = renormalised first 64 dims).

    STEER_DATA_DIR=../shared/datasets python bench/search.py [--threads 2] [--synthetic 1000000]
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
import torch

from _common import finish, machine, print_machine, timed, write_json
from steerable.backbone import Backbone, VectorCache
from steerable.data import combine_datasets, list_datasets, load_dataset
from steerable.metrics import standard_protocol
from steerable.runs import run
from steerable.search.ranking import rerank, top_k


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


def exact_latency(index, vectors: np.ndarray, queries: np.ndarray, k: int) -> dict:
    """Single-query latency of an exact scan two ways, FAISS's flat index and a numpy matrix-vector
    product with ``steerable.search.ranking.top_k``; ``latency_ms`` is the faster, so the baseline is
    not a straw man."""
    fa = latency_ms(lambda i: index.search(queries[i:i + 1], k))
    npy = latency_ms(lambda i: top_k(queries[i:i + 1] @ vectors.T, k))
    return {"latency_ms": min(fa, npy), "latency_ms_faiss": fa, "latency_ms_numpy": npy}


def build_hnsw(vectors: np.ndarray, m: int = 32, ef_construction: int = 80):
    """(inner-product HNSW index, build seconds, serialized size in MiB)."""
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    t0 = time.perf_counter()
    index.add(vectors)
    return index, time.perf_counter() - t0, faiss.serialize_index(index).nbytes / 2**20


IVF_CODECS = {"funnel-ivf": "Flat", "funnel-ivf-sq8": "SQ8", "funnel-ivf-pq4fs": "PQ32x4fs"}


def build_ivf(vectors: np.ndarray, nlist: int, codec: str = "Flat"):
    """(inner-product IVF index over ``nlist`` k-means cells whose lists store the vectors as
    ``codec`` (a FAISS factory string: Flat, SQ8, PQ32x4fs), build seconds, serialized MiB)."""
    index = faiss.index_factory(vectors.shape[1], f"IVF{nlist},{codec}", faiss.METRIC_INNER_PRODUCT)
    faiss.extract_index_ivf(index).cp.seed = 0
    t0 = time.perf_counter()
    index.train(vectors)
    index.add(vectors)
    return index, time.perf_counter() - t0, faiss.serialize_index(index).nbytes / 2**20


def prefix_ceiling(prefix: np.ndarray, full: np.ndarray, q_prefix: np.ndarray, q_full: np.ndarray,
                   shortlists: list[int], k: int = 10) -> list[dict]:
    """Share of the exact full-vector top k inside the exact prefix top K, for each K."""
    truth = faiss.knn(q_full, full, k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    top = faiss.knn(q_prefix, prefix, max(shortlists), metric=faiss.METRIC_INNER_PRODUCT)[1]
    return [{"shortlist": K, "recall@10": float(np.mean([len(set(t) & set(c[:K])) / k
                                                         for t, c in zip(truth, top)]))}
            for K in shortlists]


def contenders(prefix: np.ndarray, full: np.ndarray, q_prefix: np.ndarray, q_full: np.ndarray,
               shortlists: list[int], efs: list[int], k: int = 10, nprobes: tuple[int, ...] = (16, 64),
               nlist: int | None = None) -> list[dict]:
    nlist = nlist or max(4, min(256, len(full) // 100))

    out = []
    flat = faiss.IndexFlatIP(full.shape[1])
    flat.add(full)
    truth = flat.search(q_full, k)[1]
    t = best_of(lambda: flat.search(q_full, k))
    base_qps = len(q_full) / t
    out.append({"contender": "exact-256", "recall@10": 1.0, "qps": base_qps,
                **exact_latency(flat, full, q_full, k), "memory_mb": full.nbytes / 2**20})

    def rerank_rows(cand, q):
        return rerank(q, full, cand, k)[0]

    flat64 = faiss.IndexFlatIP(prefix.shape[1])
    flat64.add(prefix)
    t = best_of(lambda: flat64.search(q_prefix, k))
    out.append({"contender": "exact-64", "recall@10": overlap(flat64.search(q_prefix, k)[1], truth),
                "qps": len(q_full) / t, "speedup": len(q_full) / t / base_qps,
                **exact_latency(flat64, prefix, q_prefix, k), "memory_mb": prefix.nbytes / 2**20})
    hnsw64, build64, mem64 = build_hnsw(prefix)
    for ef in efs:
        hnsw64.hnsw.efSearch = ef
        t = best_of(lambda: hnsw64.search(q_prefix, k))
        out.append({"contender": "hnsw-64", "ef_search": ef,
                    "recall@10": overlap(hnsw64.search(q_prefix, k)[1], truth),
                    "qps": len(q_full) / t, "speedup": len(q_full) / t / base_qps,
                    "latency_ms": latency_ms(lambda i: hnsw64.search(q_prefix[i:i + 1], k)),
                    "memory_mb": mem64, "build_s": build64})

    def adaptive(margin: float, K: int = 200):
        hnsw64.hnsw.efSearch = max(K, 64)
        sims, cand = hnsw64.search(q_prefix, K)
        out_ids = cand[:, :k].copy()
        extend = ~(sims[:, 0] - sims[:, 1] >= margin)
        if extend.any():
            out_ids[extend] = rerank_rows(cand[extend], np.ascontiguousarray(q_full[extend]))
        return out_ids, float(extend.mean())

    for margin in (0.01, 0.02, 0.05):
        t = best_of(lambda: adaptive(margin))
        ids, frac = adaptive(margin)
        out.append({"contender": "adaptive", "margin": margin, "extended": frac,
                    "recall@10": overlap(ids, truth), "qps": len(q_full) / t,
                    "speedup": len(q_full) / t / base_qps, "memory_mb": (mem64 * 2**20 + full.nbytes) / 2**20})
    ivfs = {name: build_ivf(prefix, nlist, codec) for name, codec in IVF_CODECS.items()}

    def measure_funnel(index, K: int, **extra) -> dict:
        """One funnel setting: batch throughput, single-query latency, recall."""
        def f(qp, qf):
            return rerank(qf, full, index.search(qp, K)[1], k)[0]

        t = best_of(lambda: f(q_prefix, q_full))
        return {"shortlist": K, **extra, "recall@10": overlap(f(q_prefix, q_full), truth),
                "qps": len(q_full) / t, "speedup": len(q_full) / t / base_qps,
                "latency_ms": latency_ms(lambda i: f(q_prefix[i:i + 1], q_full[i:i + 1]))}

    for K in shortlists:
        out.append({"contender": "funnel-flat", **measure_funnel(flat64, K),
                    "memory_mb": (prefix.nbytes + full.nbytes) / 2**20})
        hnsw64.hnsw.efSearch = max(K, 64)
        out.append({"contender": "funnel-hnsw", **measure_funnel(hnsw64, K),
                    "memory_mb": (mem64 * 2**20 + full.nbytes) / 2**20, "build_s": build64})
        for name, (ivf, ivf_build_s, mem_ivf) in ivfs.items():
            for nprobe in nprobes:
                faiss.extract_index_ivf(ivf).nprobe = nprobe
                out.append({"contender": name, **measure_funnel(ivf, K, nprobe=nprobe, nlist=nlist),
                            "memory_mb": (mem_ivf * 2**20 + full.nbytes) / 2**20, "build_s": ivf_build_s})
    hnsw256, build256, mem256 = build_hnsw(full)
    for ef in efs:
        hnsw256.hnsw.efSearch = ef
        fn = lambda: hnsw256.search(q_full, k)[1]  # noqa: E731
        t = best_of(fn)
        out.append({"contender": "hnsw-256", "ef_search": ef, "recall@10": overlap(fn(), truth),
                    "qps": len(q_full) / t, "speedup": len(q_full) / t / base_qps,
                    "latency_ms": latency_ms(lambda i: hnsw256.search(q_full[i:i + 1], k)),
                    "memory_mb": mem256, "build_s": build256})
    return out


HEADS = ("v5", "mrl", "mrl_distill")  # mrl_distill: MRL whose prefix learns to shortlist for its full vector


def head_data(datasets: list, name: str):
    """The data set the bench's heads are trained on: ``all`` = one taxonomy over every data set."""
    if name == "all":
        return combine_datasets(datasets, name="all")
    by_name = {ds.name: ds for ds in datasets}
    if name not in by_name:
        raise SystemExit(f"--head-data {name!r}: no such data set (have: all, {', '.join(by_name)})")
    return by_name[name]


def real_embeddings(args) -> dict:
    datasets = [load_dataset(name) for name in list_datasets()]
    texts: dict[str, None] = {}
    for ds in datasets:
        for split in ("train", "validation", "test"):
            texts.update(dict.fromkeys(ds.split(split).texts))
    texts = list(texts)
    cache = VectorCache(Backbone())
    vectors = cache.get_or_encode(texts, progress=True, desc="all data sets")
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(texts))
    q_idx, d_idx = perm[: args.queries], perm[args.queries:]
    train_on = head_data(datasets, args.head_data)
    out = {"documents": len(d_idx), "queries": len(q_idx), "head_data": args.head_data, "heads": {},
           "ceiling": {}}
    for method in HEADS:
        t0 = time.perf_counter()
        result = run(train_on, method, cache=cache, progress=False, max_test=2000, retrieval=False,
                     protocols=[standard_protocol()])
        model = result.model
        (block,) = result.metrics.values()
        out["heads"][method] = {"train_and_eval_s": time.perf_counter() - t0,
                                "train_examples": len(train_on.train),
                                "coarse_classes": train_on.hierarchy.num_classes(0),
                                "fine_classes": train_on.hierarchy.num_classes(1),
                                "standard_protocol": {k: v for k, v in block.items() if k != "protocol"}}
        print(method, "head", out["heads"][method])
        prefix, full = model.embed_vectors(vectors, [64, model.dims[-1]])
        p, f, qp, qf = (np.ascontiguousarray(x) for x in (prefix[d_idx], full[d_idx], prefix[q_idx], full[q_idx]))
        out["ceiling"][method] = prefix_ceiling(p, f, qp, qf, args.ceiling)
        print(method, "ceiling", out["ceiling"][method])
        rows = contenders(p, f, qp, qf, args.shortlists, args.efs)
        out[method] = rows
        for r in rows:
            print(method, r)
    return out


def synthetic(args) -> list[dict]:
    rng = np.random.default_rng(0)
    n, d = args.synthetic, 256
    centres = rng.normal(size=(1000, d)).astype(np.float32)
    full = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        full[s:s + m] = centres[rng.integers(0, 1000, m)] + rng.normal(size=(m, d)).astype(np.float32)
    full = unit(full)
    q = unit(centres[rng.integers(0, 1000, args.queries)] + rng.normal(size=(args.queries, d)))
    rows = contenders(unit(full[:, :64]), full, unit(q[:, :64]), q, args.shortlists, args.efs)
    for r in rows:
        print("synthetic", r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--shortlists", default="50,100,200,400,1000")
    ap.add_argument("--ceiling", default="10,20,50,100,200,400,1000,2000",
                    help="shortlist sizes for the prefix's ceiling (exact 64-d top K)")
    ap.add_argument("--head-data", default="all",
                    help="what the heads are trained on: all (one taxonomy over every data set) or a data set")
    ap.add_argument("--efs", default="32,64,128,256")
    ap.add_argument("--synthetic", type=int, default=1_000_000, help="0 to skip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    args.shortlists = [int(x) for x in args.shortlists.split(",")]
    args.efs = [int(x) for x in args.efs.split(",")]
    args.ceiling = [int(x) for x in args.ceiling.split(",")]

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    m = machine()
    print_machine(m)
    result = {"machine": m, "threads": args.threads}
    if not args.skip_real:
        result["real"] = real_embeddings(args)
    if args.synthetic:
        result["synthetic"] = synthetic(args)
    finish(m)
    write_json("search", result)


if __name__ == "__main__":
    main()
