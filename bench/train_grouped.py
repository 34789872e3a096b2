"""Seeds trained together (``steerable.training.together.train_group``) against the same seeds trained one by one.

CLINC150, cached backbone vectors, the method's own recipe (V5: MLP head, batch 32, 5 epochs, all
15,000 training examples, per-epoch validation k-NN included). Each repeat trains the seeds
separately with ``steerable.training.train`` and then together, at the same threads; prints the median
wall time of each, the ratio, and whether every seed's weights came out identical (``torch.equal``)
both ways. Then the peak memory of a process that trains 1, 2, ... seeds together for one epoch
(each in a fresh process: peak resident set on the CPU, ``torch.cuda.max_memory_allocated`` on a
GPU), so a user knows how many seeds fit.

    python bench/train_grouped.py --threads 2 --seeds 5 --repeats 3
    python bench/train_grouped.py --threads 2 --seeds 5 --epochs 1 --repeats 1   # a quick look
    python bench/train_grouped.py --device cuda --seeds 5                        # on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from steerable.backbone import Backbone, split_vectors
from steerable.data import load_dataset
from steerable.methods import preset
from steerable.model import SteerableModel
from steerable.training import TrainConfig, train
from steerable.training.together import train_group

from _common import finish, machine, print_machine, write_json


def status_mib(field: str) -> float:
    """A memory field of this process's /proc status (VmHWM: peak resident set, VmRSS: now), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_memory(n: int, method: str, device: str) -> dict:
    """Peak memory of one epoch of grouped training of ``n`` seeds, in this process: resident set on the
    CPU, allocated GPU memory on a GPU (MiB), with what the process held before training."""
    ds = load_dataset("clinc150")
    vecs = split_vectors(ds, Backbone(), seed=42, progress=False)
    data = (vecs.train, vecs.y_train, vecs.validation, vecs.y_validation)
    schedule = preset(method, ds.hierarchy.num_levels)
    models = []
    for s in range(n):
        torch.manual_seed(s)
        models.append(SteerableModel.for_schedule(schedule, "mlp", vecs.train.shape[1], ds.hierarchy, "bench"))
    cfgs = [TrainConfig.for_schedule(schedule, epochs=1, seed=s) for s in range(n)]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
        train_group(models, schedule, [data] * n, cfgs, progress=False, device=device)
        return {"seeds": n, "before_mib": before, "peak_mib": torch.cuda.max_memory_allocated() / 2**20}
    before = status_mib("VmRSS")
    train_group(models, schedule, [data] * n, cfgs, progress=False, device=device)
    return {"seeds": n, "before_mib": before, "peak_mib": status_mib("VmHWM")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="v5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, help="default: the method's recipe")
    ap.add_argument(
        "--repeats", type=int, default=3, help="median over this many timings of each contender (0: memory only)"
    )
    ap.add_argument("--memory-seeds", default="1,2,5,10", help="seed counts whose grouped peak memory is measured")
    ap.add_argument("--device", default="cpu", help="where the heads train (cpu; cuda on a GPU)")
    ap.add_argument("--memory-of", type=int, help=argparse.SUPPRESS)  # the child that measures one seed count
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_of:
        print(json.dumps(measure_memory(args.memory_of, args.method, args.device)))
        return
    m = machine()
    print_machine(m)
    ds = load_dataset("clinc150")
    vecs = split_vectors(ds, Backbone(), seed=42, progress=False)
    data = (vecs.train, vecs.y_train, vecs.validation, vecs.y_validation)
    schedule = preset(args.method, ds.hierarchy.num_levels)
    seeds = [42 + i for i in range(args.seeds)]

    def build(seeds):
        out = []
        for s in seeds:  # as a run builds its model
            torch.manual_seed(s)
            out.append(SteerableModel.for_schedule(schedule, "mlp", vecs.train.shape[1], ds.hierarchy, "bench"))
        return out

    def configs(seeds):
        return [TrainConfig.for_schedule(schedule, epochs=args.epochs, seed=s) for s in seeds]

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {"separate": [], "grouped": []}
    identical, largest_diff = True, 0.0
    for r in range(args.repeats):
        solo = build(seeds)
        t0 = time.perf_counter()
        for model, cfg in zip(solo, configs(seeds)):
            train(model, schedule, *data, cfg, progress=False, device=args.device)
        sync()
        times["separate"].append(time.perf_counter() - t0)
        grouped = build(seeds)
        t0 = time.perf_counter()
        train_group(grouped, schedule, [data] * len(seeds), configs(seeds), progress=False, device=args.device)
        sync()
        times["grouped"].append(time.perf_counter() - t0)
        diff = max(
            float((a - b).abs().max())
            for s, g in zip(solo, grouped)
            for a, b in zip(s.state_dict().values(), g.state_dict().values())
        )
        identical &= diff == 0
        largest_diff = max(largest_diff, diff)
        print(
            f"repeat {r + 1}: {len(seeds)} seeds separately {times['separate'][-1]:.1f} s, together "
            f"{times['grouped'][-1]:.1f} s; "
            + ("every weight identical" if diff == 0 else f"largest weight difference {diff:.2g}")
        )
    med = {k: statistics.median(v) for k, v in times.items() if v}
    if med:
        print(
            f"median of {args.repeats}: separately {med['separate']:.1f} s, together {med['grouped']:.1f} s "
            f"({med['separate'] / med['grouped']:.2f}x; {med['grouped'] / len(seeds):.1f} s per seed)"
        )

    memory = {}
    for n in [int(v) for v in args.memory_seeds.split(",") if v]:
        # each in a fresh process: a process's peak memory, not what earlier trainings left in its allocator
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-of",
                str(n),
                "--method",
                args.method,
                "--threads",
                str(args.threads),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        memory[n] = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"grouped training of {n} seeds (1 epoch): peak {memory[n]['peak_mib']:.0f} MiB, "
            f"{memory[n]['before_mib']:.0f} MiB before it (data and vectors loaded)"
        )
    finish(m)
    write_json(
        f"train_grouped_clinc150_{args.method}{'' if args.device == 'cpu' else '_' + args.device}",
        {
            "machine": m,
            "threads": args.threads,
            "device": args.device,
            "seeds": seeds,
            "epochs": args.epochs or schedule.recipe.get("epochs", TrainConfig.epochs),
            "seconds": times,
            "median_seconds": med,
            "identical": identical,
            "largest_weight_difference": largest_diff,
            "peak_memory_mib": memory,
        },
    )


if __name__ == "__main__":
    main()
