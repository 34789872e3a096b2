"""Would training several seeds as one stacked model pay on this machine? A timing experiment.

Steps of CLINC V5's training loop (MLP head, batch 32, cached vectors) three ways, at the same threads:

- ``solo``: one model, steerable's own loop (``steerable.train.schedule_loss``, foreach AdamW, clipping);
- ``stacked S``: S models' weights stacked with ``torch.func.stack_module_state`` and the same loss
  run once for all of them under ``torch.func.vmap``: one batched matrix product per layer for all
  seeds, one foreach AdamW step over the stacked weights.

It times steps only: in the stacked runs every seed sees the same batch and the same random draws
(a real grouped trainer would give each seed its own), which costs the same. Prints milliseconds per
step and per seed-step; a stacked trainer is worth building only where ``stacked S`` per seed-step is
well below ``solo``.

    python bench/train_grouped.py --threads 1 --seeds 5 --steps 100
    python bench/train_grouped.py --device cuda --seeds 5 --steps 100     # on a GPU
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from torch.func import stack_module_state, vmap
from torch.nn.utils.stateless import _reparametrize_module

from _common import finish, machine, print_machine, write_json
from steerable.backbone import Backbone, split_vectors
from steerable.data import load_dataset
from steerable.methods import preset
from steerable.model import SteerableModel
from steerable.train import PositiveSampler, TrainConfig, schedule_loss


def time_steps(models, schedule, x, y, steps: int, batch_size: int) -> float:
    """Seconds per step of training ``models`` together (one model: the plain loop)."""
    rng = np.random.default_rng(0)
    samplers = {k: PositiveSampler(y[:, k]) for k in schedule.supervised_levels()}
    loss_cfg = TrainConfig().loss
    yt = torch.from_numpy(y).to(x.device)
    for m in models:
        m.train()
    if len(models) == 1:
        model = models[0]
        params = list(model.parameters())

        def loss_of(idx, pos):
            return schedule_loss(model, schedule, x, yt, idx, pos, rng, loss_cfg)
    else:
        stacked, buffers = stack_module_state(models)
        params = list(stacked.values())
        shell = copy.deepcopy(models[0])

        def one(p, b, idx, pos):
            with _reparametrize_module(shell, {**p, **b}):
                return schedule_loss(shell, schedule, x, yt, idx, pos, rng, loss_cfg)

        def loss_of(idx, pos):
            return vmap(lambda p, b: one(p, b, idx, pos), randomness="different")(stacked, buffers).sum()
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, foreach=True)
    perm = rng.permutation(len(x))
    t = 0.0
    for s in range(steps + 5):  # five warm-up steps
        c = time.perf_counter()
        idx = perm[s * batch_size:(s + 1) * batch_size]
        pos = {k: sampler(idx, rng) for k, sampler in samplers.items()}
        loss = loss_of(idx, pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()
        if s >= 5:
            t += time.perf_counter() - c
    return t / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="median over this many timings")
    ap.add_argument("--device", default="cpu", help="where the models train (cpu; cuda on a GPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = machine()
    print_machine(m)
    ds = load_dataset("clinc150")
    vecs = split_vectors(ds, Backbone(), seed=42, progress=False)
    x = torch.from_numpy(np.ascontiguousarray(vecs.train, dtype=np.float32)).to(args.device)
    schedule = preset("v5", ds.hierarchy.num_levels)

    def build(seed):
        torch.manual_seed(seed)
        return SteerableModel.for_schedule(schedule, "mlp", x.shape[1], ds.hierarchy, "bench").to(args.device)

    out = {}
    for label, n in (("solo", 1), (f"stacked {args.seeds}", args.seeds)):
        runs = [time_steps([build(s) for s in range(n)], schedule, x, vecs.y_train, args.steps, 32)
                for _ in range(args.repeats)]
        per_step = float(np.median(runs))
        out[label] = {"seeds": n, "ms_per_step": 1000 * per_step, "ms_per_seed_step": 1000 * per_step / n}
        print(f"{label:<10} {1000 * per_step:7.1f} ms/step  {1000 * per_step / n:6.1f} ms per seed-step")
    finish(m)
    write_json(f"train_grouped_clinc150_v5{'' if args.device == 'cpu' else '_' + args.device}",
               {"machine": m, "threads": args.threads, "device": args.device, "steps": args.steps, "results": out})


if __name__ == "__main__":
    main()
