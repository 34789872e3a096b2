"""Several seeds of one training, trained together: one stacked step for all of them.

Runs that differ only by seed (same schedule, recipe and head) train in lockstep
(:class:`steerable.training.loop.Lockstep`, the loop a single training runs too). Each seed keeps its
own model, initialisation, batch order, positives, random loss draws, dropout stream, gradient
clipping and best epoch; what is shared is the work: one forward pass with every product batched
over the seeds (:class:`steerable.training.stack.Seeds`), every loss kind over a leading seed axis,
one backward pass, clipping by each seed's norm in one pass, and one AdamW pass over every seed's
parameters (:class:`steerable.training.adamw.FlatAdamW`).

The result of every seed is the result of training it alone with :func:`steerable.training.train`, bit
for bit on the CPU at any thread count (``tests/test_grouped.py`` compares every weight with
``torch.equal`` for every trained method; ``bench/train_grouped.py`` does on CLINC).

Supported: the heads of :data:`~steerable.training.stack.STACKED_HEADS` with any option, in full
precision, without checkpoints; :func:`why_not_together` says why a set of trainings cannot (None
where it can), and the runs layer trains those one by one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from tqdm.auto import tqdm

from ..model import SteerableModel
from ..schedule import Schedule
from .loop import Lockstep, TrainConfig, check_fits
from .stack import STACKED_HEADS


def why_not_together(models: list[SteerableModel], cfgs: list[TrainConfig], train_sizes: list[int]) -> str | None:
    """None if these trainings can run as one group, else why not (one line)."""
    heads = {m.head.kind for m in models}
    if len(heads) > 1 or not heads <= set(STACKED_HEADS):
        return f"grouped training supports the {' and '.join(STACKED_HEADS)} heads, not {sorted(heads)}"
    configs = {repr(m.get_config_dict()) for m in models}
    if len(configs) > 1:
        return "the models differ in more than their weights"
    if len({repr(replace(c, seed=0)) for c in cfgs}) > 1:
        return "the training settings differ in more than the seed"
    if cfgs[0].precision != "fp32":
        return f"grouped training runs in fp32, not {cfgs[0].precision}"
    if len(set(train_sizes)) > 1:
        return f"the training sets differ in size ({sorted(set(train_sizes))}): their epochs would not align"
    return None


def train_group(
    models: list[SteerableModel],
    schedule: Schedule,
    data: list[tuple[np.ndarray, ...]],
    cfgs: list[TrainConfig],
    *,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> list[dict]:
    """Train ``models`` in place together, each on its ``data`` = (x_train, y_train, x_val, y_val) with
    its ``cfgs`` (settings that differ only by seed); returns each one's training history, as
    :func:`steerable.training.train` would (each epoch's ``seconds`` are the group's). Raises ValueError
    where :func:`why_not_together` gives a reason.

    On a GPU (``device="cuda"``) the seeds train the same way, but not bit for bit as alone: batched
    products may round differently from single ones there, and a solo run's dropout on a GPU draws its
    masks with another kernel than the per-seed generators here (the same distribution, other masks).
    """
    if not models:
        return []
    why = why_not_together(models, cfgs, [len(d[0]) for d in data])
    if why:
        raise ValueError(why)
    for m, d in zip(models, data):
        m.head.fit(torch.from_numpy(np.ascontiguousarray(d[0], dtype=np.float32)), d[1])
    if not schedule.trains:
        for m in models:
            m.eval()
        return [{} for _ in models]
    for m in models:
        check_fits(m, schedule)
    group = Lockstep(models, schedule, data, cfgs, torch.device(device or "cpu"))
    cfg = cfgs[0]
    bar = tqdm(
        total=cfg.epochs * group.steps,
        desc=f"train {schedule.name} x{len(models)} seeds",
        unit="step",
        disable=not progress,
    )
    try:
        for epoch in range(1, cfg.epochs + 1):
            accs = group.epoch(epoch, bar)
            bar.set_postfix(epoch=epoch, val_fine=" ".join(f"{a[-1]:.3f}" for a in accs))
    finally:
        bar.close()
        group.close()  # every model owns its weights again, whatever happened
    return [sel.finish(m, x, d[1]) for sel, m, x, d in zip(group.selections, models, group.xs, data)]
