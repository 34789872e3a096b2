"""Does a faster backbone runtime cost accuracy downstream? Heads trained on each runtime's vectors.

V5 and MRL on CLINC-150 (caps 10,000 / 2,000 as `steer reproduce` uses, seeds as given), once on the
torch runtime's vectors and once on another runtime's (default ``onnx-int8``), same seeds, so the
batches and initialisations are the same and only the vectors differ. For each method, level and
prefix length: the standard protocol's 5-NN accuracy, mean over seeds, on each runtime, and the
difference. The target: every difference within 0.3 pt.

    python bench/runtime_accuracy.py --results /tmp/runtime-store --seeds 42,123,456 --threads 2

Runs go into a results store (``--results``), so an interrupted check resumes.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from steerable.backbone import DEFAULT_BACKBONE
from steerable.runs import LocalExecutor, ResultsStore, RunSpec, run_sweep

from _common import write_json

CAPS: dict[str, Any] = {"max_train": 10_000, "max_test": 2_000}
TARGET_PT = 0.3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="results store for the runs")
    ap.add_argument("--runtime", default="onnx-int8", help="the runtime compared with torch (onnx-int8)")
    ap.add_argument("--dataset", default="clinc150")
    ap.add_argument("--methods", default="v5,mrl")
    ap.add_argument("--seeds", default="42,123,456")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    backbones = {"torch": DEFAULT_BACKBONE, args.runtime: f"{DEFAULT_BACKBONE}@runtime={args.runtime}"}
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    runs = [RunSpec(args.dataset, m, s, b, **CAPS) for b in backbones.values() for m in methods for s in seeds]
    run_sweep(runs, args.results, executor=LocalExecutor(workers=1, threads=args.threads))
    records = {r.run_id: r for r in ResultsStore(args.results).records()}

    table, worst = [], 0.0
    for m in methods:
        block = {
            rt: [records[RunSpec(args.dataset, m, s, b, **CAPS).run_id].metrics["standard"] for s in seeds]
            for rt, b in backbones.items()
        }
        levels, dims = list(block["torch"][0].accuracy), block["torch"][0].dims
        for level in levels:
            for d in dims:
                mean = {
                    rt: 100 * float(np.mean([b.accuracy[level][str(d)] for b in blocks]))
                    for rt, blocks in block.items()
                }
                diff = mean[args.runtime] - mean["torch"]
                worst = max(worst, abs(diff))
                table.append(
                    {
                        "method": m,
                        "level": level,
                        "dim": d,
                        "torch": mean["torch"],
                        args.runtime: mean[args.runtime],
                        "diff_pt": diff,
                    }
                )
    print(f"{args.dataset}, standard protocol, 5-NN accuracy (%), mean over seeds {args.seeds}")
    print(f"{'method':<6} {'level':<6} {'dim':>4} {'torch':>7} {args.runtime:>10} {'diff':>6}")
    for row in table:
        print(
            f"{row['method']:<6} {row['level']:<6} {row['dim']:>4} {row['torch']:7.2f} "
            f"{row[args.runtime]:10.2f} {row['diff_pt']:+6.2f}"
        )
    # accuracies are counts over the test texts: a difference of exactly 0.3 pt must not fail on the
    # floating-point sum (18 of 6,000 predictions is 0.30000000000001 pt)
    met = round(worst, 9) <= TARGET_PT
    verdict = "met" if met else "NOT met"
    print(f"largest |difference| {worst:.2f} pt: target (within {TARGET_PT} pt) {verdict}")
    write_json(
        f"runtime_accuracy_{args.dataset}_{args.runtime}",
        {
            "dataset": args.dataset,
            "runtime": args.runtime,
            "seeds": seeds,
            "caps": CAPS,
            "rows": table,
            "largest_abs_diff_pt": worst,
            "target_pt": TARGET_PT,
            "met": met,
        },
    )


if __name__ == "__main__":
    main()
