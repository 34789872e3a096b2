"""Wall time of one CLINC150 training run on cached backbone vectors, and of its evaluation.

Loads clinc150, fetches every split's vectors with ``steerable.backbone.split_vectors`` (pre-warms
the cache first; that fetch is reported but excluded from the timing), then times
``steerable.training.train`` (default: method v5, the default head, 5 epochs, all 15,000 training
examples, batch 32; includes the per-epoch validation k-NN) and, separately,
``steerable.metrics.evaluate`` under both default protocols (paper, standard). Prints the
steerability score under both protocols as a sanity check. ms/step is reported both as train time /
steps and with the per-epoch validation removed.

Target: one run (train) under 60 s once vectors are cached.

    STEER_DATA_DIR=/work/shared/datasets python bench/train_clinc.py [--head fractal|linear|mlp]
        [--method v5] [--epochs 5] [--batch-size 32] [--repeats 1] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from steerable.backbone import Backbone, VectorCache, split_vectors
from steerable.data import load_dataset
from steerable.heads import DEFAULT_HEAD, HEADS
from steerable.methods import METHODS, preset
from steerable.metrics import default_protocols, evaluate
from steerable.model import SteerableModel
from steerable.training import TrainConfig, train
from steerable.training.loop import validation_accuracy

from _common import finish, machine, print_machine, summary, timed, write_json

TARGET_TRAIN_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="v5", choices=[m for m in METHODS if m != "dial" and preset(m).trains])
    ap.add_argument("--head", default=DEFAULT_HEAD, choices=sorted(HEADS))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-train", type=int, help="cap on training examples (default: all 15,000)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--cache-dir", help="vector cache root (default: $STEER_CACHE_DIR or ~/.cache/steerable)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    m = machine()
    print_machine(m)
    ds = load_dataset("clinc150")
    backbone = Backbone()
    cache = VectorCache(backbone, root=args.cache_dir)
    t0 = time.perf_counter()
    vecs = split_vectors(ds, backbone, cache=cache, max_train=args.max_train, seed=args.seed)
    fetch_s = time.perf_counter() - t0
    print(
        f"vectors: train {vecs.train.shape}, validation {len(vecs.validation)}, test {len(vecs.test)} "
        f"from {cache.dir} in {fetch_s:.2f} s ({cache.encoded_count} newly encoded; excluded)"
    )

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    h = ds.hierarchy
    schedule = preset(args.method, h.num_levels, 4)
    steps = args.epochs * math.ceil(len(vecs.train) / args.batch_size)
    protocols = default_protocols(cfg.seed)
    runs = []
    for r in range(args.repeats):
        torch.manual_seed(cfg.seed)
        model = SteerableModel.for_schedule(schedule, args.head, vecs.train.shape[1], h, backbone.name)
        t0 = time.perf_counter()
        history = train(
            model, schedule, vecs.train, vecs.y_train, vecs.validation, vecs.y_validation, cfg, progress=False
        )
        train_s = time.perf_counter() - t0
        # Per-epoch validation k-NN is part of train(); time it alone to get the pure step cost.
        val_s = statistics.median(
            timed(lambda: validation_accuracy(model, vecs.train, vecs.y_train, vecs.validation, vecs.y_validation), 3)
        )
        t0 = time.perf_counter()
        metrics = evaluate(model, vecs, h.level_names, protocols)
        eval_s = time.perf_counter() - t0
        run = {
            "train_s": train_s,
            "eval_s": eval_s,
            "validation_per_epoch_s": val_s,
            "ms_per_step": 1e3 * train_s / steps,
            "ms_per_step_excl_validation": 1e3 * max(train_s - args.epochs * val_s, 0.0) / steps,
            "best_epoch": history["best_epoch"],
            "final_loss": history["epochs"][-1]["loss"],
            "steerability_score": {p: metrics[p]["steerability_score"] for p in metrics},
            "short_coarse": {p: metrics[p]["short_coarse"] for p in metrics},
            "full_fine": {p: metrics[p]["full_fine"] for p in metrics},
        }
        runs.append(run)
        scores = "  ".join(f"{p}={s:+.4f}" for p, s in run["steerability_score"].items())
        print(
            f"run {r + 1}/{args.repeats}: train {train_s:.2f} s ({run['ms_per_step']:.2f} ms/step, "
            f"{run['ms_per_step_excl_validation']:.2f} ms/step without the {val_s:.2f} s/epoch validation), "
            f"eval {eval_s:.2f} s, best epoch {run['best_epoch']}, steerability {scores}"
        )

    train_sum = summary([x["train_s"] for x in runs])
    eval_sum = summary([x["eval_s"] for x in runs])
    ms_step = statistics.median(x["ms_per_step"] for x in runs)
    ms_step_pure = statistics.median(x["ms_per_step_excl_validation"] for x in runs)
    met = train_sum["median_s"] < TARGET_TRAIN_S
    print(
        f"summary ({args.method}, {args.head} head, {args.epochs} epochs x {len(vecs.train)} examples, "
        f"batch {args.batch_size}, {steps} steps, median of {args.repeats}): train {train_sum['median_s']:.2f} s, "
        f"{ms_step:.2f} ms/step ({ms_step_pure:.2f} excl. validation); eval {eval_sum['median_s']:.2f} s"
    )
    print(
        f"target: train < {TARGET_TRAIN_S:.0f} s once vectors are cached: {'MET' if met else 'NOT MET'}"
        f" ({train_sum['median_s'] + eval_sum['median_s']:.2f} s with evaluation)"
    )
    finish(m)
    write_json(
        "train_clinc",
        {
            "machine": m,
            "config": {
                "dataset": "clinc150",
                "method": args.method,
                "head": args.head,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "train_examples": len(vecs.train),
                "steps": steps,
                "repeats": args.repeats,
                "seed": args.seed,
                "cache_dir": str(cache.dir),
                "vector_fetch_s": fetch_s,
                "newly_encoded": cache.encoded_count,
            },
            "train": train_sum | {"ms_per_step": ms_step, "ms_per_step_excl_validation": ms_step_pure},
            "eval": eval_sum,
            "runs": runs,
            "target": {"train_s_max": TARGET_TRAIN_S, "met": met},
        },
    )


if __name__ == "__main__":
    main()
