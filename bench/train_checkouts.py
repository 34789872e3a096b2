"""Two checkouts of steerable, one CLINC training epoch each, alternated: is a change faster, and exact?

Runs each checkout's code (its ``src`` on ``PYTHONPATH``) in a fresh process, in turns (A, B, A, B,
...), so that both meet the same machine load. Each process trains, at the same threads, one epoch of
CLINC V5 (the recipe's batch 32, all 15,000 examples, the per-epoch validation) for seed 42 alone
(``steerable.training.train``), then for five seeds together where the checkout has
``steerable.training.together``, and prints the times and a digest of the solo model's weights. The summary
gives each checkout's median times, their ratio, and whether the digests agree (they must, for a
change that may not move a number).

    python bench/train_checkouts.py /path/to/old/src src --rounds 5 --threads 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from _common import finish, machine, print_machine, write_json


def one_epoch(threads: int, seeds: int) -> dict:
    """This process's checkout: seconds for one epoch alone and for ``seeds`` seeds together."""
    from steerable.backbone import Backbone, split_vectors
    from steerable.data import load_dataset
    from steerable.methods import preset
    from steerable.model import SteerableModel
    from steerable.training import TrainConfig, train

    torch.set_num_threads(threads)
    ds = load_dataset("clinc150")
    v = split_vectors(ds, Backbone(), seed=42, progress=False)
    schedule = preset("v5", ds.hierarchy.num_levels)
    data = (v.train, v.y_train, v.validation, v.y_validation)
    cfgs = [TrainConfig.for_schedule(schedule, seed=42 + i, epochs=1) for i in range(seeds)]

    def model(seed: int) -> SteerableModel:
        torch.manual_seed(seed)
        return SteerableModel.for_schedule(schedule, "mlp", v.train.shape[1], ds.hierarchy, "bench")

    solo = model(42)
    t = time.perf_counter()
    train(solo, schedule, *data, cfgs[0], progress=False)
    out = {
        "solo_s": time.perf_counter() - t,
        "digest": hashlib.sha1(b"".join(p.numpy().tobytes() for p in solo.state_dict().values())).hexdigest(),
    }
    try:
        from steerable.training.together import train_group
    except ImportError:  # a checkout from before grouped training
        return out
    models = [model(c.seed) for c in cfgs]
    t = time.perf_counter()
    train_group(models, schedule, [data] * seeds, cfgs, progress=False)
    return out | {"together_s": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="the first checkout's src folder")
    ap.add_argument("b", help="the second checkout's src folder")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one_epoch(args.threads, args.seeds)))
        return
    torch.set_num_threads(args.threads)  # what the children use, for the machine line and the load check
    m = machine()
    print_machine(m)
    results: dict[str, list[dict]] = {"a": [], "b": []}
    for r in range(args.rounds):
        for name in ("a", "b"):
            src = os.path.abspath(getattr(args, name))
            env = dict(os.environ, PYTHONPATH=src)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    args.a,
                    args.b,
                    "--child",
                    "--threads",
                    str(args.threads),
                    "--seeds",
                    str(args.seeds),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[name].append(res)
            print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items() if k.endswith("_s")))
    medians = {
        name: {k: statistics.median(x[k] for x in rs) for k in rs[0] if k.endswith("_s")}
        for name, rs in results.items()
    }
    same = len({x["digest"] for rs in results.values() for x in rs}) == 1
    for name in ("a", "b"):
        print(
            f"{name} ({getattr(args, name)}): median of {args.rounds}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in medians[name].items())
        )
    for k in medians["b"]:
        if k in medians["a"]:
            print(f"{k}: a / b = {medians['a'][k] / medians['b'][k]:.2f}x")
    print("solo weights identical in every process" if same else "SOLO WEIGHTS DIFFER between processes")
    finish(m)
    write_json(
        "train_checkouts",
        {
            "machine": m,
            "a": args.a,
            "b": args.b,
            "threads": args.threads,
            "seeds": args.seeds,
            "rounds": results,
            "medians": medians,
            "identical": same,
        },
    )


if __name__ == "__main__":
    main()
