"""Why a run's last digits depend on its torch thread count: one training step at each count.

Takes the first step of a CLINC run (the real batch, loss and backward pass) at one thread and at
``--threads``, from the same seed, and prints how far each parameter's gradient lies apart. The
forward pass and the loss agree exactly; the gradients that differ are those torch sums from
per-thread partial sums (such as a layer norm's weight and bias) and products the math library
splits otherwise at another thread count. From there every later step differs in its last bits.

    python bench/thread_digits.py --threads 2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from steerable.backbone import Backbone, split_vectors
from steerable.data import load_dataset
from steerable.methods import preset
from steerable.model import SteerableModel
from steerable.training import TrainConfig
from steerable.training.loop import PositiveSampler, schedule_loss


def first_step(threads: int, schedule, vecs, hierarchy, cfg: TrainConfig) -> tuple[torch.Tensor, dict]:
    """(the loss, each parameter's gradient) of the first step of a run at ``threads`` threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SteerableModel.for_schedule(schedule, "mlp", vecs.train.shape[1], hierarchy, "bench")
    model.train()
    x = torch.from_numpy(np.ascontiguousarray(vecs.train, dtype=np.float32))
    samplers = {k: PositiveSampler(vecs.y_train[:, k]) for k in schedule.supervised_levels()}
    idx = rng.permutation(len(x))[: cfg.batch_size]
    positives = {k: sampler(idx, rng) for k, sampler in samplers.items()}
    loss = schedule_loss(model, schedule, x, vecs.y_train, idx, positives, rng, cfg.loss)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="clinc150")
    ap.add_argument("--method", default="v5")
    ap.add_argument("--threads", type=int, default=2, help="compared with one thread")
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    vecs = split_vectors(ds, Backbone(), seed=42, progress=False)
    schedule = preset(args.method, ds.hierarchy.num_levels)
    cfg = TrainConfig.for_schedule(schedule, seed=42)
    loss_1, grads_1 = first_step(1, schedule, vecs, ds.hierarchy, cfg)
    loss_n, grads_n = first_step(args.threads, schedule, vecs, ds.hierarchy, cfg)
    print(
        f"{args.dataset} {args.method}, first step, 1 thread against {args.threads}: "
        f"loss {'identical' if torch.equal(loss_1, loss_n) else f'{loss_1.item()!r} vs {loss_n.item()!r}'}"
    )
    for name, g in grads_1.items():
        diff = float((g - grads_n[name]).abs().max())
        print(f"  {name:<32} {tuple(g.shape)!s:<12} {'identical' if diff == 0 else f'apart by up to {diff:.1e}'}")


if __name__ == "__main__":
    main()
