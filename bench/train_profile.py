"""Where training time goes: a CLINC run, phase by phase, on cached vectors.

Replays ``steerable.training.train``'s loop for a method with a timer around each phase of every step:
sampling the batch and its positives, gathering the rows, the head's forward pass, building the loss
(every term's loss kind), backward, gradient clipping, the optimiser step; and per epoch, the
validation k-NN. Prints seconds per phase and their share; ``--torch-profile`` adds torch's own
operator table for one epoch. The replay trains the same model as ``train`` (same RNG draws). It also
counts the operator calls each phase of one step dispatches (the last step of the first epoch).
``--overhead`` runs the same loop on a head whose every width is a few numbers (backbone vectors cut to
their first 12 dimensions, hidden layers of 16, blocks of 2): the same operator calls with next to no
arithmetic, so its time per step is what the calls themselves cost.

    python bench/train_profile.py --method v5 --threads 2            # the paper's recipe
    python bench/train_profile.py --method heal --epochs 2 --threads 2   # the coarse-only recipe
    python bench/train_profile.py --method v5 --threads 2 --overhead  # the calls without their arithmetic
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import replace

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from steerable.backbone import Backbone, split_vectors
from steerable.data import load_dataset
from steerable.methods import preset
from steerable.model import SteerableModel
from steerable.training import TrainConfig
from steerable.training.adamw import FlatAdamW
from steerable.training.loop import (
    BalancedBatches,
    PositiveSampler,
    forward_step,
    optimiser,
    terms_loss,
    validation_accuracy,
)
from steerable.training.stack import Seeds

from _common import finish, machine, print_machine, write_json


class Laps(TorchDispatchMode):
    """Seconds per phase of the loop (each :meth:`lap` ends a phase), and, for the steps run with this
    mode entered, the operator calls each phase dispatched (aten operators, as torch dispatches them)."""

    def __init__(self):
        super().__init__()
        self.seconds: dict[str, float] = defaultdict(float)
        self.ops: dict[str, int] = defaultdict(int)
        self._calls = 0
        self._t = time.perf_counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self._calls += 1
        return func(*args, **(kwargs or {}))

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._t
        self.ops[phase] += self._calls
        self._t, self._calls = now, 0


def profile(
    model, schedule, vecs, cfg: TrainConfig, torch_profile: bool = False, fused: bool = False
) -> tuple[dict, dict]:
    """(seconds per phase over ``cfg.epochs`` epochs of the training loop, operator calls per phase in
    the last step of the first epoch)."""
    laps = Laps()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    x = torch.from_numpy(np.ascontiguousarray(vecs.train, dtype=np.float32))
    y = vecs.y_train
    samplers = {k: PositiveSampler(y[:, k]) for k in schedule.supervised_levels()}
    params = list(model.parameters())
    seeds = Seeds([model])
    steps = (len(x) + cfg.batch_size - 1) // cfg.batch_size
    if fused:
        opt, sched = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True), None
    else:  # what steerable.training trains with
        opt, sched = optimiser([params], cfg, cfg.epochs * steps)
    balanced = BalancedBatches(y[:, -1], cfg.batch_size) if cfg.sampler == "balanced" else None
    prof = None
    for epoch in range(cfg.epochs):
        if torch_profile and epoch == 0:
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            prof.__enter__()
        model.train()
        perm = rng.permutation(len(x))
        for s in range(steps):
            counted = epoch == 0 and s == steps - 1
            if counted:
                laps.ops.clear()
                laps.__enter__()
            laps.lap("other")
            idx = balanced(rng) if balanced else perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            positives = {k: sampler(idx, rng) for k, sampler in samplers.items()}
            levels = sorted(positives)
            rows = np.concatenate([idx, *(positives[k] for k in levels)])
            laps.lap("sample")
            xb = x[torch.from_numpy(rows)]
            yb = torch.from_numpy(y[rows])
            laps.lap("gather")
            step = forward_step(seeds, schedule, xb[None], yb[None], len(idx), levels, [rng], cfg.loss)
            laps.lap("forward")
            total = terms_loss(step, schedule)
            laps.lap("loss")
            opt.zero_grad(set_to_none=True)
            total.sum().backward()
            laps.lap("backward")
            if fused:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
            else:
                assert isinstance(opt, FlatAdamW)
                opt.clip_grad_norm(cfg.grad_clip)
            laps.lap("clip")
            opt.step()
            if sched is not None:
                sched.step()
            laps.lap("optimiser")
            total.item()
            laps.lap("item")
            if counted:
                laps.__exit__(None, None, None)
                ops = dict(laps.ops)
        laps.lap("other")
        validation_accuracy(model, vecs.train, y, vecs.validation, vecs.y_validation)
        laps.lap("validation")
        if prof is not None:
            prof.__exit__(None, None, None)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
            prof = None
    laps.seconds.pop("other", None)
    ops.pop("other", None)
    return dict(laps.seconds), ops


def gemm_floor(model, rows: int, repeats: int = 50) -> tuple[float, float]:
    """(seconds, FLOP) per step of the head's own matrix products: each linear layer's forward, input
    gradient and weight gradient on ``rows`` rows, timed alone at the current threads. A lower bound:
    the classifiers, similarity matrices, element-wise work and the optimiser come on top."""
    seconds = flop = 0.0
    for layer in model.head.modules():
        if not isinstance(layer, torch.nn.Linear):
            continue
        n_in, n_out = layer.in_features, layer.out_features
        x, w, g = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(rows, n_out)
        for a, b in ((x, w.T), (g, w), (g.T, x)):  # forward, grad input, grad weight
            for _ in range(5):
                a @ b
            t = time.perf_counter()
            for _ in range(repeats):
                a @ b
            seconds += (time.perf_counter() - t) / repeats
            flop += 2 * a.shape[0] * a.shape[1] * b.shape[1]
    return seconds, flop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="clinc150")
    ap.add_argument("--method", default="v5")
    ap.add_argument("--head", default="mlp")
    ap.add_argument("--epochs", type=int, help="default: the method's recipe")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torch-profile", action="store_true", help="also print torch's operator table (epoch 1)")
    ap.add_argument(
        "--fused",
        action="store_true",
        help="fused AdamW (faster, not bit-identical to the default; not what steerable trains with)",
    )
    ap.add_argument(
        "--overhead",
        action="store_true",
        help="every width a few numbers (inputs 12, hidden 16, blocks of 2): the same operator "
        "calls with next to no arithmetic",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = machine()
    print_machine(m)
    ds = load_dataset(args.dataset)
    vecs = split_vectors(ds, Backbone(), seed=42, progress=False)
    head_options = {}
    if args.overhead:
        vecs = replace(
            vecs,
            **{split: np.ascontiguousarray(getattr(vecs, split)[:, :12]) for split in ("train", "validation", "test")},
        )
        head_options = {"hidden_dim": 16, "block_dim": 2}
    schedule = preset(args.method, ds.hierarchy.num_levels)
    cfg = TrainConfig.for_schedule(schedule, seed=42, epochs=args.epochs)
    torch.manual_seed(cfg.seed)
    model = SteerableModel.for_schedule(schedule, args.head, vecs.train.shape[1], ds.hierarchy, "bench", head_options)
    t0 = time.perf_counter()
    phases, ops = profile(model, schedule, vecs, cfg, args.torch_profile, args.fused)
    wall = time.perf_counter() - t0
    loop = sum(phases.values())  # less setting up (a process's first optimiser imports torch._dynamo)
    steps = cfg.epochs * ((len(vecs.train) + cfg.batch_size - 1) // cfg.batch_size)
    rows = cfg.batch_size * (1 + len(schedule.supervised_levels()))  # anchors and one positive per level
    floor_s, floor_flop = gemm_floor(model, rows)
    print(
        f"{args.dataset} {args.method}: {cfg.epochs} epochs, batch {cfg.batch_size}, {steps} steps, "
        f"{loop:.2f} s ({1000 * loop / steps:.2f} ms per step; "
        f"{1000 * (loop - phases.get('validation', 0.0)) / steps:.2f} without the validation), "
        f"setting up {wall - loop:.2f} s"
    )
    for name, sec in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<11} {sec:7.2f} s  {100 * sec / loop:5.1f} %  {1000 * sec / steps:6.3f} ms/step")
    print(
        f"  the head's matrix products alone ({rows} rows, {floor_flop / 1e6:.0f} MFLOP per step): "
        f"{1000 * floor_s:.2f} ms/step = {floor_s * steps:.1f} s for these steps "
        f"({floor_flop / floor_s / 1e9:.0f} GFLOP/s)"
    )
    print(
        f"  operator calls in one step ({sum(ops.values())}): "
        + ", ".join(f"{name} {n}" for name, n in sorted(ops.items(), key=lambda kv: -kv[1]) if n)
    )
    finish(m)
    write_json(
        f"train_profile_{args.dataset}_{args.method}"
        + ("_fused" if args.fused else "")
        + ("_overhead" if args.overhead else ""),
        {
            "machine": m,
            "method": args.method,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "steps": steps,
            "wall_s": wall,
            "loop_s": loop,
            "phases_s": phases,
            "operator_calls": ops,
            "threads": args.threads,
            "optimizer": "adamw-fused" if args.fused else "adamw-flat",
            "head_options": head_options,
            "gemm_floor": {"rows": rows, "flop_per_step": floor_flop, "seconds_per_step": floor_s},
        },
    )


if __name__ == "__main__":
    main()
