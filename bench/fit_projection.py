"""Wall time of fitting each closed-form projection head on CLINC150's cached training vectors.

Fetches the training split's vectors (capped as the paper's grids cap it, 10,000 by default; the
fetch is excluded), then times ``Head.fit`` of the method's head, as a run calls it, for each
projection at its chosen setting and for PCA (the raw backbone's fitted view), median of
``--repeats``.

Target: at most 5 s per projection head on 2 cores.

    STEER_DATA_DIR=../shared/datasets python bench/fit_projection.py [--threads 2] [--repeats 3]
        [--max-train 10000]
"""

from __future__ import annotations

import argparse

import torch

from steerable.backbone import Backbone, split_vectors
from steerable.data import load_dataset
from steerable.methods import preset
from steerable.model import SteerableModel

from _common import finish, machine, print_machine, summary, timed, write_json

TARGET_S = 5.0
METHODS = ("flat_pca", "gep", "nuisance", "lda")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=10_000, help="training cap (default 10,000, as the grids)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = machine()
    print_machine(m)
    ds = load_dataset("clinc150")
    backbone = Backbone()
    vecs = split_vectors(ds, backbone, max_train=args.max_train, seed=42, progress=False)
    x = torch.from_numpy(vecs.train)
    results = {}
    for name in METHODS:
        schedule = preset(name, ds.hierarchy.num_levels)
        model = SteerableModel.for_schedule(schedule, "mlp", x.shape[1], ds.hierarchy, backbone.name)
        seconds = summary(timed(lambda: model.head.fit(x, vecs.y_train), args.repeats))
        results[schedule.name] = seconds | {"met": seconds["median_s"] <= TARGET_S}
        print(
            f"{schedule.name:<14} fit on {len(x)} x {x.shape[1]}: median {seconds['median_s']:.3f} s "
            f"({seconds['min_s']:.3f}-{seconds['max_s']:.3f}) over {args.repeats}"
        )
    met = all(r["met"] for name, r in results.items() if name != "flat_pca")
    print(f"target: every projection fits in at most {TARGET_S:.0f} s: {'MET' if met else 'NOT MET'}")
    finish(m)
    write_json(
        "fit_projection",
        {
            "machine": m,
            "config": {"dataset": "clinc150", "train": len(x), "repeats": args.repeats},
            "fit": results,
            "target": {"max_s": TARGET_S, "met": met},
        },
    )


if __name__ == "__main__":
    main()
