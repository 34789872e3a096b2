"""Wall time of the 5-seed CLINC comparison: V5 + MRL x seeds 42 123 456 789 1024 (10 runs).

Starts from an EMPTY vector cache (a fresh temporary folder), so backbone encoding is included, and
runs through the real sweep machinery (`steerable.runs.run_sweep`) with the paper's caps
(10,000 train / 2,000 test; each seed's own subsample). Target on the 2-core machine: under 10
minutes. The five seeds of each method train together, as a sweep does by default (``--group 0``:
one run at a time).

    python bench/clinc_5seeds.py [--head mlp|fractal|linear] [--precision fp32] [--workers 1] [--group 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from steerable.heads import DEFAULT_HEAD
from steerable.runs import LocalExecutor, RunSpec, run_sweep
from steerable.runs.sweep import DEFAULT_GROUP

TARGET_S = 600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--head", default=DEFAULT_HEAD)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seeds", default="42,123,456,789,1024")
    ap.add_argument("--group", type=int, default=DEFAULT_GROUP, help="seeds trained together (0: one at a time)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="steer-bench-"))
    os.environ["STEER_CACHE_DIR"] = str(tmp / "cache")  # empty: encoding is part of the timing

    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [
        RunSpec("clinc150", m, s, head=args.head, precision=args.precision, max_train=10_000, max_test=2_000)
        for m in ("v5", "mrl")
        for s in seeds
    ]
    t0 = time.perf_counter()
    records = run_sweep(runs, tmp / "results", executor=LocalExecutor(args.workers), progress=True, group=args.group)
    wall = time.perf_counter() - t0

    train_s = sorted(r.seconds["train"] for r in records)
    out = {
        "runs": len(records),
        "head": args.head,
        "precision": args.precision,
        "workers": args.workers,
        "group": args.group,
        # each worker's threads: LocalExecutor shares the cores out among several workers
        "torch_threads": (
            torch.get_num_threads() if args.workers == 1 else max(1, (os.cpu_count() or 1) // args.workers)
        ),
        "cores": os.cpu_count(),
        "wall_s": wall,
        "target_s": TARGET_S,
        "meets_target": wall < TARGET_S,
        "median_train_s": train_s[len(train_s) // 2],
        "S": {
            m: {p: [r.metrics[p].steerability_score for r in records if r.method == m] for p in ("paper", "standard")}
            for m in ("v5", "mrl")
        },
    }
    print(json.dumps(out, indent=2))
    dest = Path(__file__).parent / "out" / f"clinc_5seeds_group{args.group}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"10-run CLINC comparison: {wall / 60:.1f} min (target {TARGET_S / 60:.0f} min) "
        f"-> {'meets' if out['meets_target'] else 'misses'} the target"
    )


if __name__ == "__main__":
    main()
