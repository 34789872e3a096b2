"""Does a head trained for its sign bits shortlist better than the plain sign of MRL's prefix?

Heads are trained through ``steerable.runs.run`` on ``--head-data``'s training split (CLINC by
default) and measured on the out-of-sample collection of ``bench/search.py`` (every data set's test
texts that no step read), split into 1,000 selection queries, 1,000 evaluation queries and the
documents (seed 0, as there). For each head: the binary funnel's recall@10 (the 64-d prefix's sign
bits shortlist K by Hamming distance, the head's full vector reranks; measured against the same head's
exact full-vector top 10) at each K, on both query sets.

Heads: ``mrl``; ``mrl_distill`` (its prefix learns to rank the batch as the full vector does, the
library's setting); and the sign-aware candidates, MRL-distill whose prefix ranks the batch as *soft
signs* (``Term.sign_slope``: ``tanh(slope * sqrt(d) * e)``), at each (weight, slope) of
``CANDIDATES``. The candidate is chosen on the selection queries: the highest selection recall at
``CHOICE_K`` among those whose validation FullFine is at most 0.5 pt below MRL's; it is compared with
MRL and MRL-distill on the evaluation queries.

    STEER_DATA_DIR=../shared/datasets python bench/search_binary_head.py   # bench/out/search_binary_head.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from steerable.backbone import Backbone, VectorCache
from steerable.data import list_datasets, load_dataset
from steerable.methods import mrl
from steerable.methods.matryoshka import DISTILL_TEMPERATURE, DISTILL_WEIGHT, prefix_distillation
from steerable.schedule import Schedule
from steerable.search import EmbeddedIndex, overlap_at_k

from _common import finish, machine, print_machine, write_json
from search import collection, head_data, take, train_head
from search_lib import split_queries

CANDIDATES = ((1.0, 1.0), (1.0, 3.0), (3.0, 1.0), (3.0, 3.0))  # (weight, slope)
SHORTLISTS = (50, 100, 200, 500, 1000, 2000)
CHOICE_K = 500
MARGIN = 0.005  # validation FullFine at most 0.5 pt below MRL's


def sign_distill(num_levels: int, weight: float, slope: float) -> Schedule:
    base = mrl(num_levels)
    term = prefix_distillation(num_levels, 4, weight, DISTILL_TEMPERATURE, sign_slope=slope)
    return Schedule(f"mrl_sign_distill@w{weight:g},s{slope:g}", base.terms + (term,), base.block_keep)


def plain_distill(num_levels: int) -> Schedule:
    base = mrl(num_levels)
    term = prefix_distillation(num_levels, 4, DISTILL_WEIGHT, DISTILL_TEMPERATURE)
    return Schedule("mrl_distill", base.terms + (term,), base.block_keep)


def binary_recalls(prefix: np.ndarray, full: np.ndarray, docs, queries) -> dict[int, float]:
    """The binary funnel's recall@10 against exact full-vector search, at each K."""
    d_prefix, d_full = take(prefix, full, docs)
    q_prefix, q_full = take(prefix, full, queries)
    exact = EmbeddedIndex(prefix.shape[1], full.shape[1])
    exact.add(d_prefix, d_full)
    truth, _ = exact.search(q_prefix, q_full, k=10)
    bits = EmbeddedIndex(prefix.shape[1], full.shape[1], quantize="binary")
    bits.add(d_prefix, d_full)
    out = {}
    for K in SHORTLISTS:
        found, _ = bits.search(q_prefix, q_full, k=10, shortlist=K)
        out[K] = overlap_at_k(found, truth)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--head-data", default="clinc150")
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    m = machine()
    print_machine(m)
    datasets = [load_dataset(name) for name in list_datasets()]
    texts, counts = collection(datasets)
    cache = VectorCache(Backbone())
    vectors = cache.get_or_encode(texts, progress=True, desc="collection")
    sel, ev, docs = split_queries(len(texts), args.queries, 0)
    train_on = head_data(datasets, args.head_data)
    levels = train_on.hierarchy.num_levels
    heads: dict[str, object] = {"mrl": "mrl", "mrl_distill": plain_distill(levels)}
    heads |= {f"sign w{w:g} s{s:g}": sign_distill(levels, w, s) for w, s in CANDIDATES}
    rows = {}
    for name, method in heads.items():
        t0 = time.perf_counter()
        model, info = train_head(train_on, method, cache, split="validation")
        prefix, full = model.embed_vectors(vectors, [64, model.dims[-1]])
        rows[name] = {
            "validation_full_fine": info["standard_protocol"]["full_fine"],
            "selection": binary_recalls(prefix, full, docs, sel),
            "evaluation": binary_recalls(prefix, full, docs, ev),
            "seconds": time.perf_counter() - t0,
        }
        print(name, rows[name], flush=True)
    floor = rows["mrl"]["validation_full_fine"] - MARGIN
    eligible = [n for n in rows if n.startswith("sign") and rows[n]["validation_full_fine"] >= floor]
    chosen = max(eligible, key=lambda n: rows[n]["selection"][CHOICE_K]) if eligible else None
    print("chosen on the selection queries:", chosen)
    result = {
        "head_data": args.head_data,
        "collection": counts,
        "documents": len(docs),
        "queries": {"selection": len(sel), "evaluation": len(ev)},
        "choice": f"the highest selection recall@10 at K = {CHOICE_K} among the sign-aware candidates whose "
        f"validation FullFine is at most {100 * MARGIN:g} pt below MRL's",
        "eligible": eligible,
        "chosen": chosen,
        "heads": rows,
    }
    finish(m)
    result["machine"] = m
    write_json("search_binary_head", result)


if __name__ == "__main__":
    main()
