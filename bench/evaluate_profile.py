"""Where a run's evaluation time goes: a trained CLINC V5 head, phase by phase.

Trains V5 on CLINC's cached vectors (``--epochs``, default 1: the phases' time hardly depends on how
far the head trained), then times, ``--repeats`` times, each phase that a run's evaluation
(``steerable.runs.run``) goes through after training, with the same calls and a run's default
settings: the training cost count, embedding the test and training splits at every prefix, k-NN
accuracy under both protocols, the leakage probe, the geometry measures and retrieval. Prints each
phase's median seconds and share. A seed's evaluation is its own (it reads that seed's model), so
in a sweep of N seeds it runs N times while the seeds' training is shared.

    python bench/evaluate_profile.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from steerable.backbone import Backbone, split_vectors
from steerable.data import load_dataset
from steerable.methods import preset
from steerable.metrics import evaluate_embeddings, geometry, probe_prefix
from steerable.model import SteerableModel
from steerable.runs.run import protocols_of
from steerable.runs.spec import RunSpec
from steerable.search.metrics import evaluate_retrieval
from steerable.training import TrainConfig, train
from steerable.training.cost import training_flops_per_example

from _common import finish, machine, print_machine, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = machine()
    print_machine(m)
    ds, spec = load_dataset("clinc150"), RunSpec("clinc150", "v5", 42)
    v, h, schedule = split_vectors(ds, Backbone(), seed=spec.seed, progress=False), ds.hierarchy, preset("v5")
    torch.manual_seed(spec.seed)
    model = SteerableModel.for_schedule(schedule, "mlp", v.train.shape[1], h, "bench")
    cfg = TrainConfig.for_schedule(schedule, seed=spec.seed, epochs=args.epochs)
    train(model, schedule, v.train, v.y_train, v.validation, v.y_validation, cfg, progress=False)
    dims, levels = model.dims, h.level_names
    embedded: dict[str, list] = {}

    def embed() -> None:
        embedded["test"], embedded["train"] = model.embed_vectors(v.test), model.embed_vectors(v.train)

    phases: dict[str, Callable[[], object]] = {
        "training cost count": lambda: training_flops_per_example(model, schedule, v.train, v.y_train, cfg.batch_size),
        "embed test and train": embed,
        "k-NN, both protocols": lambda: evaluate_embeddings(
            embedded["test"], v.y_test, embedded["train"], v.y_train, dims, levels, protocols_of(spec)
        ),
        "leakage probe": lambda: probe_prefix(
            embedded["train"][0], v.y_train, embedded["test"][0], v.y_test, levels, seed=spec.seed
        ),
        "geometry": lambda: geometry(embedded["test"], dims, v.y_test, v.test, seed=spec.seed),
        "retrieval": lambda: evaluate_retrieval(embedded["test"], dims, v.y_test, levels, spec.seed),
    }
    seconds: dict[str, list[float]] = {name: [] for name in phases}
    for _ in range(args.repeats):
        for name, phase in phases.items():
            t = time.perf_counter()
            phase()
            seconds[name].append(time.perf_counter() - t)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    total = sum(median.values())
    print(f"clinc150 v5 ({args.epochs} epoch(s) trained), median of {args.repeats}, {args.threads} threads:")
    for name, s in median.items():
        print(f"  {name:22s} {s:6.2f} s  {100 * s / total:5.1f} %")
    print(f"  {'all':22s} {total:6.2f} s")
    finish(m)
    write_json("evaluate_profile", {"machine": m, "threads": args.threads, "seconds": seconds, "median_s": median})


if __name__ == "__main__":
    main()
