"""How many directions does a method's 64-d prefix use? Train each method on each data set (one
seed, the standard caps) and print, for the test-set prefixes: S (standard protocol), the numerical
rank (singular values above 1e-3 of the largest), the effective rank (participation ratio of the
singular values squared; ``steerable.metrics.effective_rank``) and the number of coarse classes.

A prefix can be full-rank and still put almost all its variance in a few directions; this script
tells the two apart, e.g. for HEAL against the adversarial prefix:

    STEER_DATA_DIR=../shared/datasets python scripts/prefix_spectrum.py \
        --datasets clinc150,trec,20newsgroups --methods heal,adversarial --seed 7
"""

from __future__ import annotations

import argparse
import json

import torch

from steerable.data import load_dataset
from steerable.runs import RunSpec, Where, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default="clinc150,trec,20newsgroups")
    ap.add_argument("--methods", default="heal,adversarial")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        for method in args.methods.split(","):
            spec = RunSpec(
                name, method, args.seed, max_train=10_000, max_test=2_000, retrieval=False, protocols=("standard",)
            )
            r = run(spec, dataset=ds, where=Where(progress=False))
            (block,) = r.metrics.values()
            print(
                json.dumps(
                    {
                        "dataset": name,
                        "method": method,
                        "seed": args.seed,
                        "S": round(block["steerability_score"], 3),
                        "rank": r.probe["rank"],
                        "effective_rank": round(r.probe["effective_rank"], 1),
                        "coarse_classes": ds.hierarchy.num_classes(0),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
