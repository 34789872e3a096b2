"""A sweep of N seeds against a sweep of one, through the same command: what grouping seeds buys end to end.

Runs ``steer sweep --datasets D --methods M --seeds ...`` with N seeds and with the first seed alone, in
turns (one, N, one, N, ...), each into a fresh temporary results store (the vector cache is used as it
is: warm it first, so encoding is not timed), at the same ``--threads``; prints each one's median wall time
and the ratio N-seed / one-seed, and writes ``bench/out/sweep_seeds_<dataset>_<method>.json``. The N seeds
train together (the sweep groups up to five by default); the ratio would be N without any sharing.

    STEER_DATA_DIR=../shared/datasets python bench/sweep_seeds.py --threads 2 --repeats 3
    python bench/sweep_seeds.py --dataset clinc150 --method v5 --seeds 42,123,456,789,1024 --max-train 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import finish, machine, print_machine, write_json


def sweep_seconds(args: argparse.Namespace, seeds: str) -> float:
    """Wall seconds of one ``steer sweep`` of ``seeds`` into a fresh store."""
    with tempfile.TemporaryDirectory(prefix="steer-sweep-bench-") as store:
        cmd = [sys.executable, "-m", "steerable.cli", "sweep", "--results", str(Path(store) / "results")]
        cmd += ["--datasets", args.dataset, "--methods", args.method, "--seeds", seeds]
        cmd += ["--threads", str(args.threads), "--quiet"]
        if args.max_train:
            cmd += ["--max-train", str(args.max_train)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="clinc150")
    ap.add_argument("--method", default="v5")
    ap.add_argument("--seeds", default="42,123,456,789,1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-train", type=int, help="training cap per run (default: every training example)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = machine()
    print_machine(m)
    seeds = args.seeds.split(",")
    times: dict[str, list[float]] = {"one": [], "all": []}
    for r in range(args.repeats):
        times["one"].append(sweep_seconds(args, seeds[0]))
        times["all"].append(sweep_seconds(args, args.seeds))
        print(f"repeat {r + 1}: one seed {times['one'][-1]:.1f} s, {len(seeds)} seeds {times['all'][-1]:.1f} s")
    one, every = statistics.median(times["one"]), statistics.median(times["all"])
    print(f"median of {args.repeats}: one seed {one:.1f} s, {len(seeds)} seeds {every:.1f} s ({every / one:.2f}x)")
    finish(m)
    write_json(
        f"sweep_seeds_{args.dataset}_{args.method}",
        {
            "machine": m,
            "args": vars(args),
            "seconds": times,
            "median_s": {"one": one, "all": every},
            "ratio": every / one,
        },
    )


if __name__ == "__main__":
    main()
