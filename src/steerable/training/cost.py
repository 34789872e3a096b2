"""Costs of a head, measured rather than estimated: parameters, training FLOPs, storage per document."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..model import SteerableModel
from ..schedule import Schedule
from .loop import PositiveSampler, schedule_loss
from .losses import LossConfig


def head_parameters(model: SteerableModel) -> int:
    """Trainable parameters of the head (classifiers, used only in training, excluded)."""
    return sum(p.numel() for p in model.head.parameters())


def training_flops_per_example(
    model: SteerableModel, schedule: Schedule, x: np.ndarray, y: np.ndarray, batch_size: int = 32, seed: int = 0
) -> float:
    """FLOPs of one training step (forward + backward, positives included) per anchor example.

    Counted by torch's FlopCounterMode on a real step of ``schedule_loss`` over the first batch.
    """
    rng = np.random.default_rng(seed)
    idx = np.arange(min(batch_size, len(x)))
    positives = {k: PositiveSampler(y[:, k])(idx, rng) for k in schedule.supervised_levels()}
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    model.train()
    with FlopCounterMode(display=False) as counter:
        loss = schedule_loss(model, schedule, xt, y, idx, positives, rng, LossConfig())
        loss.backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    return counter.get_total_flops() / len(idx)


def encoding_flops_per_text(model: SteerableModel) -> float:
    """FLOPs of the head's forward pass per text (inference; every prefix comes from one pass)."""
    x = torch.zeros(64, model.head.input_dim)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.head.embed(model.head.blocks(x), model.head.num_blocks)
    return counter.get_total_flops() / len(x)


def bytes_per_document(dims: list[int]) -> dict[int, dict[str, int]]:
    """Storage of one document vector at each prefix dim, as float32 and float16."""
    return {d: {"float32": 4 * d, "float16": 2 * d} for d in dims}
