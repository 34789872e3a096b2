"""Does ``torch.compile`` make a training step cheaper on this machine? Eager against compiled.

Trains the same head the same way twice per round, from the same seed: once as ``steerable.training``
does (eager), once with the head's forward pass and the loss construction (every term's loss kind)
wrapped in one ``torch.compile``d function (inductor; it breaks the graph where a loss draws from
numpy's random stream). The optimiser, clipping and batches are the real ones. Prints the compile
time (the first step, and each recompilation, such as the last, shorter batch of an epoch is not
in the per-step figure), milliseconds per step after it, and how far the compiled run's weights end
from the eager run's (dropout draws eager's random numbers, but compiled kernels round differently,
so the two are not bit-identical).

    python bench/train_compile.py --threads 2 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from steerable.backbone import Backbone, split_vectors
from steerable.data import load_dataset
from steerable.methods import preset
from steerable.model import SteerableModel
from steerable.training import TrainConfig
from steerable.training.loop import PositiveSampler, forward_step, optimiser, terms_loss
from steerable.training.stack import Seeds

from _common import finish, machine, print_machine, write_json


def run(schedule, vecs, hierarchy, cfg: TrainConfig, steps: int, compiled: bool) -> tuple[float, float, torch.Tensor]:
    """(seconds of the first step, seconds of the other ``steps - 1``, the trained weights flattened)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SteerableModel.for_schedule(schedule, "mlp", vecs.train.shape[1], hierarchy, "bench")
    x = torch.from_numpy(np.ascontiguousarray(vecs.train, dtype=np.float32))
    y = vecs.y_train
    samplers = {k: PositiveSampler(y[:, k]) for k in schedule.supervised_levels()}
    levels = sorted(samplers)
    opt, sched = optimiser([list(model.parameters())], cfg, steps)
    batch = cfg.batch_size
    seeds = Seeds([model])

    def forward_and_loss(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        step = forward_step(seeds, schedule, inputs[None], labels[None], batch, levels, [rng], cfg.loss)
        return terms_loss(step, schedule)[0]

    loss_fn = torch.compile(forward_and_loss, dynamic=False) if compiled else forward_and_loss
    model.train()
    perm = rng.permutation(len(x))
    first = rest = 0.0
    for s in range(steps):
        t = time.perf_counter()
        idx = perm[s * batch : (s + 1) * batch]
        rows = np.concatenate([idx, *(samplers[k](idx, rng) for k in levels)])
        loss = loss_fn(x[torch.from_numpy(rows)], torch.from_numpy(y[rows]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.clip_grad_norm(cfg.grad_clip)
        opt.step()
        if sched is not None:
            sched.step()
        loss.item()
        if s == 0:
            first = time.perf_counter() - t
        else:
            rest += time.perf_counter() - t
    opt.unpack()
    return first, rest, torch.cat([p.detach().flatten() for p in model.parameters()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="clinc150")
    ap.add_argument("--method", default="v5")
    ap.add_argument("--steps", type=int, default=400, help="steps of full batches (default 400)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="eager and compiled alternated, each round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch._inductor.config.fallback_random = True  # dropout draws eager's random numbers, as a solo run does
    m = machine()
    print_machine(m)
    ds = load_dataset(args.dataset)
    vecs = split_vectors(ds, Backbone(), seed=42, progress=False)
    schedule = preset(args.method, ds.hierarchy.num_levels)
    cfg = TrainConfig.for_schedule(schedule, seed=42)
    steps = min(args.steps, len(vecs.train) // cfg.batch_size)  # full batches: one shape to compile
    per_step: dict[str, list[float]] = {"eager": [], "compiled": []}
    compile_s, diffs = [], []
    for r in range(args.rounds):
        weights = {}
        for mode in ("eager", "compiled"):
            torch._dynamo.reset()  # every round compiles afresh (the on-disk cache may still help)
            first, rest, weights[mode] = run(schedule, vecs, ds.hierarchy, cfg, steps, mode == "compiled")
            per_step[mode].append(1000 * rest / (steps - 1))
            if mode == "compiled":
                compile_s.append(first)
            print(f"round {r + 1} {mode:<8} first step {first:6.2f} s, then {per_step[mode][-1]:.2f} ms/step")
        diffs.append(float((weights["eager"] - weights["compiled"]).abs().max()))
    eager, comp = statistics.median(per_step["eager"]), statistics.median(per_step["compiled"])
    print(
        f"{args.dataset} {args.method}, {steps} steps of batch {cfg.batch_size}, {args.threads} threads, "
        f"medians of {args.rounds}: eager {eager:.2f} ms/step, compiled {comp:.2f} ms/step "
        f"({eager / comp:.2f}x), compiling {statistics.median(compile_s):.1f} s; "
        f"weights apart by up to {max(diffs):.1e} after {steps} steps"
    )
    finish(m)
    write_json(
        f"train_compile_{args.dataset}_{args.method}",
        {
            "machine": m,
            "method": args.method,
            "steps": steps,
            "threads": args.threads,
            "ms_per_step": per_step,
            "compile_seconds": compile_s,
            "max_weight_diff": diffs,
        },
    )


if __name__ == "__main__":
    main()
