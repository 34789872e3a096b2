"""Search at scale: the binary funnel against exact search, HNSW-256, IVF-PQ and the float funnel on
generated collections of a million vectors and more, each contender measured in a process of its own
for its resident memory, its disk and its speed.

The collection is generated from a fit to a trained head's real outputs, so that the 64-d prefix holds
the share of the ranking a real prefix holds (a collection of random dimensions would not):

1. ``fit``: an MRL head (``--method``) is trained through ``steerable.runs.run`` on ``--head-data``'s
   training split; its 256-d outputs on the out-of-sample collection of ``bench/search.py`` (every data
   set's test texts no step read) are fitted by a mixture of ``--components`` Gaussians: k-means
   centres, each component's share of the texts, and one full covariance of the residuals (pooled
   over the components) scaled by each component's residual variance. A generated vector is a centre
   plus scaled correlated noise, made unit-length; its prefix is its first 64 dims made unit-length,
   as a head's prefix is its output's first 64 dims (checked on the real outputs). The fit is judged
   on the real collection's size: the prefix's ceiling and the binary funnel's recall on real outputs
   against a generated collection of as many vectors (``fit.json``).
2. ``run --n N``: N documents and two disjoint sets of ``--queries`` queries (selection, evaluation)
   are generated (seeded), the exact top 10 of every query computed, and each contender built once
   into ``--work`` (FAISS indexes with ``faiss.write_index``, the library's binary index folders with
   the full vectors as one ``full.npy`` hard link). Then each contender at each thread count runs in
   a fresh process that loads its index as a user would and measures, over its settings: recall@10
   against the exact top 10, queries/s over the batch, single-query latency p50 / p99 (200 queries),
   and its memory: ``VmRSS`` split into ``RssAnon`` (memory the process holds) and ``RssFile`` (pages of
   mapped files it touched, which the kernel can drop and read again) after the searches, and the
   disk of its files.

Contenders: ``exact-256`` (FAISS flat scan); ``hnsw-256`` (HNSW, m 32, efConstruction 80, efSearch
sweep); ``ivf-pq`` (IVF, PQ 32 bytes a vector, nprobe sweep; no rerank); ``funnel-float`` (HNSW on the
64-d prefix, shortlist K reranked by the full vectors in memory: the library's ``--backend faiss``);
``funnel-binary`` (the library's ``--quantize binary``: the prefix's 64 sign bits scanned, the shortlist
reranked from the memory-mapped full vectors), ``funnel-binary-int8`` (the same with ``--rescore int8``:
the bits shortlist ``oversample`` x K, the int8 prefix keeps K), ``funnel-binary-128`` /
``funnel-binary-256`` (the sign bits of the first 128 dims / of the whole vector, scanned) and
``funnel-binary-256-hnsw`` (those 256 bits searched through FAISS's binary HNSW graph, m 16: the
library's ``--backend faiss --quantize binary``). Settings are chosen on the selection queries (the fastest with
selection recall@10 >= 0.99, per mode: batch, one at a time) and reported on the evaluation queries.

    STEER_DATA_DIR=../shared/datasets python bench/search_scale.py fit
    python bench/search_scale.py run --n 1000000 --threads 1 2      # bench/out/search_scale_1000000.json
    python bench/search_scale.py run --n 10000000 --contenders funnel-binary-256 funnel-binary
    python bench/search_scale.py run --n 1000000 --threads 2 --contenders engine-pgvector-binary-256 \
        engine-qdrant-edge-binary-256 --shortlists 5000 10000 20000 --measure-queries 100
    python bench/search_scale.py summary --n 1000000                # the tables docs/search.md quotes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from steerable.search.metrics import overlap_at_k

from search_lib import unit

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "out" / "scale"
DIM, PREFIX = 256, 64
CONTENDERS = (
    "exact-256",
    "hnsw-256",
    "ivf-pq",
    "funnel-float",
    "funnel-binary",
    "funnel-binary-int8",
    "funnel-binary-128",
    "funnel-binary-256",
    "funnel-binary-256-hnsw",
    "engine-pgvector-binary-256",
    "engine-qdrant-edge-binary-256",
)
SETTINGS: dict[str, list[dict]] = {
    "exact-256": [{}],
    "hnsw-256": [{"ef_search": ef} for ef in (16, 32, 64, 128, 192, 256, 384, 512, 768, 1024)],
    "ivf-pq": [{"nprobe": p} for p in (16, 64, 256)],
    "funnel-float": [{"shortlist": K} for K in (50, 100, 200, 500, 1000)],
    "funnel-binary": [{"shortlist": K} for K in (500, 1000, 2000, 5000, 10000, 20000)],
    "funnel-binary-int8": [{"shortlist": K} for K in (50, 100, 200, 500, 1000)],
    "funnel-binary-128": [{"shortlist": K} for K in (100, 200, 500, 1000, 2000, 5000, 10000)],
    "funnel-binary-256": [{"shortlist": K} for K in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)],
    "funnel-binary-256-hnsw": [{"shortlist": K} for K in (100, 200, 500, 1000, 2000)],
    "engine-pgvector-binary-256": [{"shortlist": K} for K in (200, 500, 1000, 2000, 5000)],
    "engine-qdrant-edge-binary-256": [{"shortlist": K} for K in (200, 500, 1000, 2000, 5000)],
}
BITS = {"funnel-binary-128": 128, "funnel-binary-256": 256, "funnel-binary-256-hnsw": 256}  # else the 64-d prefix's
BINARY_HNSW_M = 16  # funnel-binary-256-hnsw: 32 B of bits and about 128 B of links a document
OVERSAMPLE = 8  # funnel-binary-int8: the bits shortlist 8 K, the int8 prefix keeps K
TARGET = 0.99
LATENCY_QUERIES = 200


# --- 1. the fit ---------------------------------------------------------------------------------


def real_outputs(head_data: str, method: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(prefixes, full vectors) of a trained head on the out-of-sample collection, and what to record."""
    from steerable.backbone import Backbone, VectorCache
    from steerable.data import list_datasets, load_dataset

    from search import collection, train_head  # bench/search.py's
    from search import head_data as pick

    datasets = [load_dataset(name) for name in list_datasets()]
    texts, counts = collection(datasets)
    cache = VectorCache(Backbone())
    vectors = cache.get_or_encode(texts, progress=True, desc="collection")
    model, info = train_head(pick(datasets, head_data), method, cache)
    prefix, full = model.embed_vectors(vectors, [PREFIX, DIM])
    return prefix, full, {"method": method, "head_data": head_data, "collection": counts, "head": info}


def fit_mixture(full: np.ndarray, components: int, seed: int = 0) -> dict[str, np.ndarray]:
    import faiss

    km = faiss.Kmeans(DIM, components, niter=25, seed=seed, spherical=False, verbose=False)
    km.train(full)
    _, assign = km.index.search(full, 1)
    assign = assign[:, 0]
    centres = np.asarray(km.centroids, dtype=np.float64)
    resid = full - centres[assign]
    counts = np.bincount(assign, minlength=components).astype(np.float64)
    var = np.array([(resid[assign == c] ** 2).sum(1).mean() if counts[c] else 0.0 for c in range(components)])
    pooled = np.cov(resid.T, bias=True)  # (DIM, DIM)
    scale = var / max(np.trace(pooled), 1e-12)  # each component's residual variance, as a share of the pooled
    chol = np.linalg.cholesky(pooled + 1e-9 * np.eye(DIM))
    return {
        "centres": centres.astype(np.float32),
        "weights": (counts / counts.sum()).astype(np.float64),
        "scale": scale.astype(np.float32),
        "chol": chol.astype(np.float32),
    }


def generate(fit: dict[str, np.ndarray], n: int, seed: int, out: np.ndarray | None = None, chunk: int = 250_000):
    """``n`` unit-length vectors from the mixture (seeded), written into ``out`` if given."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32) if out is None else out
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        c = rng.choice(len(fit["weights"]), size=m, p=fit["weights"])
        z = rng.standard_normal((m, DIM), dtype=np.float32)
        x = fit["centres"][c] + np.sqrt(fit["scale"][c])[:, None] * (z @ fit["chol"].T)
        out[s : s + m] = unit(x)
    return out


def prefix_of(full: np.ndarray) -> np.ndarray:
    return unit(full[:, :PREFIX])


def exact_top(docs: np.ndarray, queries: np.ndarray, k: int = 10, chunk: int = 1_000_000) -> np.ndarray:
    """The exact top ``k`` by inner product, over the documents a chunk at a time (ties: FAISS's order)."""
    import faiss

    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for s in range(0, len(docs), chunk):
        flat = faiss.IndexFlatIP(docs.shape[1])
        flat.add(np.ascontiguousarray(docs[s : s + chunk]))
        sc, ix = flat.search(queries, k)
        best_s, best_i = np.hstack([best_s, sc]), np.hstack([best_i, ix + s])
        order = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    return best_i


def fidelity(prefix: np.ndarray, full: np.ndarray, queries: int = 1000, seed: int = 0) -> dict:
    """What the generator must reproduce, on one collection: the share of the full vector's top 10
    inside the prefix's top K (its ceiling) and the binary funnel's recall@10 at K."""
    from steerable.search import EmbeddedIndex

    rng = np.random.default_rng(seed)
    q = rng.choice(len(full), queries, replace=False)
    docs = np.setdiff1d(np.arange(len(full)), q)
    truth = exact_top(full[docs], full[q])
    out: dict = {"documents": len(docs), "queries": queries}
    for K in (10, 50, 200, 1000):
        out[f"ceiling@{K}"] = overlap_at_k(exact_top(prefix[docs], prefix[q], K), truth)
    index = EmbeddedIndex(PREFIX, DIM, quantize="binary")
    index.add(prefix[docs], full[docs])
    for K in (100, 500, 2000):
        out[f"binary_funnel@{K}"] = overlap_at_k(index.search(prefix[q], full[q], shortlist=K)[0], truth)
    return out


def cmd_fit(args) -> None:
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    prefix, full, info = real_outputs(args.head_data, args.method)
    gap = float(np.abs(prefix - prefix_of(full)).max())
    if gap > 1e-4:
        raise SystemExit(f"the head's prefix is not its output's first {PREFIX} dims made unit-length ({gap:.2e})")
    fit = fit_mixture(full, args.components)
    fake = generate(fit, len(full), seed=1)
    info |= {
        "components": args.components,
        "prefix_is_truncation": gap,
        "real": fidelity(prefix, full),
        "generated": fidelity(prefix_of(fake), fake),
        "fit_s": time.perf_counter() - t0,
    }
    args.work.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in fit.items()}, str(args.work / "fit.safetensors"))
    (args.work / "fit.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k] for k in ("real", "generated")}, indent=1))


# --- 2. the collection, the indexes --------------------------------------------------------------


def load_fit(work: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if not (work / "fit.safetensors").exists():
        raise SystemExit(f"{work / 'fit.safetensors'}: no fit; run `python bench/search_scale.py fit` first")
    return load_file(str(work / "fit.safetensors"))


def collection_dir(work: Path, n: int) -> Path:
    return work / f"n{n}"


def make_collection(work: Path, n: int, queries: int) -> Path:
    """``full.npy`` (n documents), ``queries.npy`` (selection then evaluation) and ``truth.npy`` (their
    exact top 10), each made once (a file that exists is kept)."""
    d = collection_dir(work, n)
    d.mkdir(parents=True, exist_ok=True)
    fit = load_fit(work)
    if not (d / "full.npy").exists():
        t0 = time.perf_counter()
        part = d / "full.npy.part"
        full = np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=(n, DIM))
        generate(fit, n, seed=2, out=full)
        full.flush()
        del full
        part.rename(d / "full.npy")
        print(f"generated {n:,} documents in {time.perf_counter() - t0:.0f} s")
    if not (d / "truth.npy").exists():
        q = generate(fit, 2 * queries, seed=3)  # no query is a document (another seed)
        np.save(d / "queries.npy", q)
        t0 = time.perf_counter()
        np.save(d / "truth.npy", exact_top(np.load(d / "full.npy", mmap_mode="r"), q))
        print(f"exact top 10 of {2 * queries:,} queries in {time.perf_counter() - t0:.0f} s")
    return d


def build(d: Path, contender: str) -> float:
    """Build ``contender``'s index in ``d`` / contender (once); its build seconds."""
    import faiss

    from steerable.search import EmbeddedIndex

    if contender.startswith("engine-"):
        return 0.0  # built by the measuring process (search_scale_engines), which times it
    where = d / contender
    done = where / "build.json"
    if done.exists():
        return json.loads(done.read_text())["build_s"]
    where.mkdir(exist_ok=True)
    full = np.load(d / "full.npy", mmap_mode="r")
    n = len(full)
    t0 = time.perf_counter()
    index: Any  # a FAISS index, or the library's binary index
    if contender == "exact-256":
        index = faiss.IndexFlatIP(DIM)
        for s in range(0, n, 1_000_000):
            index.add(np.ascontiguousarray(full[s : s + 1_000_000]))
        faiss.write_index(index, str(where / "index.faiss"))
    elif contender in ("hnsw-256", "funnel-float"):
        dim = DIM if contender == "hnsw-256" else PREFIX
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        for s in range(0, n, 1_000_000):
            block = np.ascontiguousarray(full[s : s + 1_000_000])
            index.add(block if dim == DIM else prefix_of(block))
        faiss.write_index(index, str(where / "index.faiss"))
    elif contender == "ivf-pq":
        nlist = int(4 * np.sqrt(n))
        index = faiss.index_factory(DIM, f"IVF{nlist},PQ32", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(4)
        index.train(np.ascontiguousarray(full[np.sort(rng.choice(n, min(n, 100 * nlist), replace=False))]))
        for s in range(0, n, 1_000_000):
            index.add(np.ascontiguousarray(full[s : s + 1_000_000]))
        faiss.write_index(index, str(where / "index.faiss"))
    else:  # the library's binary index folder, its full vectors the collection's own file (a hard link)
        bits = BITS.get(contender, PREFIX)
        rescore = "int8" if contender == "funnel-binary-int8" else None
        graph = contender.endswith("-hnsw")
        index = EmbeddedIndex(
            bits, DIM, quantize="binary", rescore=rescore, oversample=OVERSAMPLE, hnsw=graph, hnsw_m=BINARY_HNSW_M
        )
        for s in range(0, n, 1_000_000):
            block = np.ascontiguousarray(full[s : s + 1_000_000])
            index.bits.add(unit(block[:, :bits]))
            if index.middle is not None:
                index.middle.add(prefix_of(block))
        index.ids = np.arange(n, dtype=np.int64)
        index.full.vectors = full  # a whole .npy mapped into memory: save() links the file, no copy
        index.save(where)
    build_s = time.perf_counter() - t0
    done.write_text(json.dumps({"build_s": build_s}))
    print(f"built {contender} in {build_s:.0f} s")
    return build_s


# --- 3. one contender in a process of its own -----------------------------------------------------


def memory() -> dict:
    """This process's resident memory (MiB): all of it, what it holds, and mapped file pages it touched."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def disk_mb(where: Path) -> float:
    return sum(f.stat().st_size for f in where.iterdir() if f.is_file()) / 2**20


def open_contender(d: Path, contender: str, threads: int):
    """(search(q_full, setting) -> ids, memory-relevant files): the contender's index read back from disk."""
    import faiss

    from steerable.search import EmbeddedIndex

    faiss.omp_set_num_threads(threads)
    if contender.startswith("engine-"):
        from search_scale_engines import open_engine

        return open_engine(d, contender, threads)
    where = d / contender
    if contender in ("exact-256", "hnsw-256", "ivf-pq"):
        index: Any = faiss.read_index(str(where / "index.faiss"))

        def search(q: np.ndarray, setting: dict) -> np.ndarray:
            if "ef_search" in setting:
                index.hnsw.efSearch = max(setting["ef_search"], 10)
            if "nprobe" in setting:
                faiss.extract_index_ivf(index).nprobe = setting["nprobe"]
            return index.search(q, 10)[1]

        return search
    if contender == "funnel-float":
        from steerable.search.funnel import Exact, funnel
        from steerable.search.index import HNSW

        stage = HNSW(PREFIX, 32)
        graph: Any = faiss.read_index(str(where / "index.faiss"))  # the IndexHNSWFlat build() wrote
        stage.graph = graph
        stage.ef_search = 64  # searched at efSearch max(K, 64)
        full = Exact(np.load(d / "full.npy"))  # in memory, as the library's faiss backend holds them
        stage.vectors = prefix_of(full.vectors)  # and the float prefixes beside the graph

        def search(q: np.ndarray, setting: dict) -> np.ndarray:
            return funnel(stage, full, prefix_of(q), q, 10, setting["shortlist"])[0]

        return search
    binary = EmbeddedIndex.load(where)  # the bits (and int8 prefix) in memory, full.npy memory-mapped

    def search_binary(q: np.ndarray, setting: dict) -> np.ndarray:
        return binary.search(unit(q[:, : binary.prefix_dim]), q, k=10, shortlist=setting["shortlist"])[0]

    return search_binary


def measure(d: Path, contender: str, threads: int, queries: int, shortlists: list[int] | None = None) -> dict:
    """Every setting of ``contender`` (``shortlists``: these shortlists instead of its own) on the
    first ``queries`` of each query set; its memory after the searches; its disk."""
    import faiss  # noqa: F401  (imported before the baseline: its memory is not the index's)

    import steerable.search  # noqa: F401

    q_all, truth = np.load(d / "queries.npy"), np.load(d / "truth.npy")
    half = len(q_all) // 2  # the selection queries, then as many evaluation queries
    if not 0 < queries <= half:
        raise SystemExit(f"--queries {queries}: the collection has {half} queries in each set")
    sets = {"selection": slice(0, queries), "evaluation": slice(half, half + queries)}
    settings = SETTINGS[contender]
    if shortlists and "shortlist" in settings[0]:
        settings = [{"shortlist": K} for K in shortlists]
    before = memory()
    t0 = time.perf_counter()
    search = open_contender(d, contender, threads)
    load_s = time.perf_counter() - t0
    rows = []
    for setting in settings:
        row: dict = {"contender": contender, "threads": threads, **setting}
        for name, part in sets.items():
            q, t = np.ascontiguousarray(q_all[part]), truth[part]
            search(q[:50], setting)  # warm-up
            t0 = time.perf_counter()
            found = search(q, setting)
            row[f"{name}_qps"] = len(q) / (time.perf_counter() - t0)
            row[f"{name}_recall@10"] = overlap_at_k(found, t)
            lat = []
            for i in range(min(LATENCY_QUERIES, len(q))):
                t0 = time.perf_counter()
                search(q[i : i + 1], setting)
                lat.append(1000 * (time.perf_counter() - t0))
            row[f"{name}_p50_ms"], row[f"{name}_p99_ms"] = (float(np.percentile(lat, p)) for p in (50, 99))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    engine = search.report() if hasattr(search, "report") else {}  # a real engine's own numbers
    own_disk = engine.pop("disk_mb") if "disk_mb" in engine else disk_mb(d / contender)
    if contender == "funnel-float":  # its full vectors are the collection's file, read into memory
        own_disk += (d / "full.npy").stat().st_size / 2**20
    return engine | {
        "contender": contender,
        "threads": threads,
        "queries": queries,  # of each set
        "load_s": load_s,
        "memory_before_mb": before,
        "memory_mb": memory(),
        "disk_mb": own_disk,
        "rows": rows,
    }


# --- 4. choice on the selection queries, the run ---------------------------------------------------


def choose(results: list[dict]) -> list[dict]:
    """Per contender, thread count and mode: the fastest setting whose selection recall@10 >= TARGET
    (or, if none reaches it, the most accurate), with its evaluation numbers."""
    chosen = []
    for r in results:
        for mode, key in (("batch", "qps"), ("one at a time", "p50_ms")):
            ok = [row for row in r["rows"] if row["selection_recall@10"] >= TARGET]
            if ok:
                best = max(ok, key=lambda row: row[f"selection_{key}"] * (1 if key == "qps" else -1))
            else:
                best = max(r["rows"], key=lambda row: row["selection_recall@10"])
            setting = {k: best[k] for k in ("shortlist", "ef_search", "nprobe") if k in best}
            chosen.append(
                {
                    "contender": r["contender"],
                    "threads": r["threads"],
                    "queries": r.get("queries"),  # of each set
                    "mode": mode,
                    "setting": setting,
                    "reaches_target": bool(ok),
                    "recall@10": best["evaluation_recall@10"],
                    "qps": best["evaluation_qps"],
                    "p50_ms": best["evaluation_p50_ms"],
                    "p99_ms": best["evaluation_p99_ms"],
                    "rss_mb": r["memory_mb"]["VmRSS"],
                    "rss_anon_mb": r["memory_mb"]["RssAnon"],
                    "rss_file_mb": r["memory_mb"]["RssFile"],
                    # what loading and searching the index added to the process (imports excluded)
                    "index_anon_mb": r["memory_mb"]["RssAnon"] - r["memory_before_mb"]["RssAnon"],
                    "index_file_mb": r["memory_mb"]["RssFile"] - r["memory_before_mb"]["RssFile"],
                    "disk_mb": r["disk_mb"],
                    "build_s": r.get("build_s"),
                    "server_rss_mb": r.get("server_rss_mb"),  # pgvector: the PostgreSQL processes
                }
            )
    return chosen


def cmd_measure(args) -> None:
    print(json.dumps(measure(args.dir, args.contender, args.threads, args.queries, args.shortlists)))


def cmd_run(args) -> None:
    from _common import finish, machine, print_machine

    m = machine()
    print_machine(m)
    d = make_collection(args.work, args.n, args.queries)
    out = BENCH / "out" / f"search_scale_{args.n}.json"
    # a run of some contenders keeps the others' results of an earlier run; each measurement is saved
    # as it ends (atomically), so an interrupted run keeps what it measured
    results = json.loads(out.read_text())["results"] if out.exists() else []
    for contender in args.contenders:
        build_s = build(d, contender)
        for threads in args.threads:
            env = os.environ | {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
            cmd = [sys.executable, __file__, "measure", "--dir", str(d), "--contender", contender]
            cmd += ["--threads", str(threads), "--queries", str(args.measure_queries or args.queries)]
            if args.shortlists:
                cmd += ["--shortlists", *map(str, args.shortlists)]
            measured = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
            new = {"build_s": build_s} | json.loads(measured.strip().splitlines()[-1])
            results = [r for r in results if (r["contender"], r["threads"]) != (contender, threads)] + [new]
            mem = new["memory_mb"]
            print(
                f"{contender} at {threads} thread(s): RSS {mem['VmRSS']:.0f} MiB (anon {mem['RssAnon']:.0f}, "
                f"file {mem['RssFile']:.0f}), disk {new['disk_mb']:.0f} MiB"
            )
            save_results(out, args, results, None)
    finish(m)
    for c in save_results(out, args, results, m):
        print(json.dumps(c))
    print(f"wrote {out}")


def save_results(out: Path, args, results: list[dict], machine: dict | None) -> list[dict]:
    """Write the run's results and the settings chosen from them; the chosen settings."""
    from steerable.atomic import atomic_write_json

    chosen = choose(results)
    result = {
        "n": args.n,
        "queries": {"selection": args.queries, "evaluation": args.queries},
        "fit": json.loads((args.work / "fit.json").read_text()),
        "target_recall": TARGET,
        "oversample": OVERSAMPLE,
        "results": results,
        "chosen": chosen,
        "machine": machine,
    }
    atomic_write_json(out, json.loads(json.dumps(result, default=float)))
    return chosen


def cmd_summary(args) -> None:
    """The markdown tables the docs quote, from ``bench/out/search_scale_<n>.json``."""
    path = BENCH / "out" / f"search_scale_{args.n}.json"
    if not path.exists():
        raise SystemExit(f"{path}: no results; run `python bench/search_scale.py run --n {args.n}` first")
    result = json.loads(path.read_text())
    print(
        f"{result['n']:,} documents; settings chosen on the selection queries (recall@10 >= {TARGET}, "
        "else the most accurate), numbers on the evaluation queries\n"
    )
    print(
        "| contender | threads | mode | setting | recall@10 | queries/s | p50 ms | p99 ms | index RSS (anon) MiB "
        "| file pages MiB | disk MiB | build s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    chosen = result["chosen"]
    for i, c in enumerate(chosen):
        batch = chosen[i - 1] if c["mode"] != "batch" else None
        if batch is not None and batch["setting"] == c["setting"]:
            continue  # one at a time chose the batch's setting: one row for both
        same = c["mode"] == "batch" and i + 1 < len(chosen) and chosen[i + 1]["setting"] == c["setting"]
        mode = "both" if same else c["mode"]
        setting = ", ".join(f"{k} {v:,}" for k, v in c["setting"].items()) or "-"
        mark = "" if c["reaches_target"] else " (below target)"
        if c.get("queries") and c["queries"] != result["queries"]["selection"]:
            mark += f" ({c['queries']:,} queries a set)"
        server = f" + server {c['server_rss_mb']:,.0f}" if c.get("server_rss_mb") else ""
        print(
            f"| {c['contender']} | {c['threads']} | {mode} | {setting}{mark} | {c['recall@10']:.3f} "
            f"| {c['qps']:,.0f} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {c['index_anon_mb']:,.0f}{server} "
            f"| {c['index_file_mb']:,.0f} | {c['disk_mb']:,.0f} | {c['build_s']:.0f} |"
        )
    print("\nevery setting (evaluation recall@10 / queries/s over the batch / p50 ms), 2 threads where measured:")
    for r in result["results"]:
        if r["threads"] != max(x["threads"] for x in result["results"] if x["contender"] == r["contender"]):
            continue
        cells = []
        for row in r["rows"]:
            setting = ",".join(f"{row[k]}" for k in ("shortlist", "ef_search", "nprobe") if k in row) or "-"
            numbers = (row["evaluation_recall@10"], row["evaluation_qps"], row["evaluation_p50_ms"])
            cells.append(f"{setting}: {numbers[0]:.3f}/{numbers[1]:,.0f}/{numbers[2]:.2f}")
        print(f"- {r['contender']} ({r['threads']} threads): " + "; ".join(cells))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train a head and fit the generator to its real outputs")
    fit.add_argument("--head-data", default="clinc150", help="data set the head trains on (or 'all')")
    fit.add_argument("--method", default="mrl")
    fit.add_argument("--components", type=int, default=256)
    run = sub.add_parser("run", help="generate a collection, build and measure the contenders")
    run.add_argument("--n", type=int, default=1_000_000)
    run.add_argument("--queries", type=int, default=1000, help="per query set (selection, evaluation)")
    run.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    run.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    run.add_argument(
        "--measure-queries",
        type=int,
        help="measure these contenders on the first N queries of each set (slow engines at scale)",
    )
    meas = sub.add_parser("measure", help="(internal) one contender in this process")
    meas.add_argument("--dir", type=Path, required=True)
    meas.add_argument("--contender", choices=CONTENDERS, required=True)
    meas.add_argument("--threads", type=int, required=True)
    meas.add_argument("--queries", type=int, required=True)
    summ = sub.add_parser("summary", help="print the tables of a run")
    summ.add_argument("--n", type=int, default=1_000_000)
    for p in (run, meas):
        p.add_argument("--shortlists", type=int, nargs="+", help="these shortlists instead of the contenders' own")
    for p in (fit, run):
        p.add_argument("--work", type=Path, default=WORK, help="fit, collections and indexes (large)")
    return ap.parse_args(argv)


def main() -> None:
    args = parse_args()
    {"fit": cmd_fit, "run": cmd_run, "measure": cmd_measure, "summary": cmd_summary}[args.command](args)


if __name__ == "__main__":
    main()
