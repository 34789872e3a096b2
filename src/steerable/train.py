"""Training a head on cached backbone vectors under a :class:`~steerable.schedule.Schedule`."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .evaluate import knn_accuracy
from .losses import LossConfig, block_loss
from .model import SteerableModel
from .schedule import Schedule


@dataclass
class TrainConfig:
    """Optimisation settings (defaults as the original code ran them)."""

    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 42
    select_best: bool = True  # keep the epoch with the best validation k-NN, else the last
    precision: str = "fp32"  # "bf16": the head's forward pass under CPU bfloat16 autocast
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class PositiveSampler:
    """For each example, a random *other* example with the same label at a level (vectorised)."""

    def __init__(self, labels: np.ndarray):
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(len(labels), dtype=np.int64)
        rank[order] = np.arange(len(labels)) - starts[labels[order]]
        self.order, self.labels, self.counts, self.starts, self.rank = order, labels, counts, starts, rank

    def __call__(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        y = self.labels[idx]
        n = self.counts[y]
        r = (rng.random(len(idx)) * np.maximum(n - 1, 1)).astype(np.int64)
        r = np.where(r >= self.rank[idx], r + 1, r)  # skip the anchor itself
        r = np.where(n > 1, r, 0)  # a singleton class is its own positive
        return self.order[self.starts[y] + r]


def _seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def schedule_loss(model: SteerableModel, schedule: Schedule, x: torch.Tensor, y: np.ndarray,
                  idx: np.ndarray, positives: dict[int, np.ndarray], rng: np.random.Generator,
                  cfg: LossConfig, bf16: bool = False) -> torch.Tensor:
    """The schedule's total loss on one batch of anchors ``idx`` and their per-level positives."""
    head, nb = model.head, schedule.num_blocks
    levels = sorted(positives)
    rows = np.concatenate([idx, *(positives[k] for k in levels)])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        blocks = head.blocks(x[torch.from_numpy(rows)])
    blocks = blocks.float()  # losses and normalisation in full precision
    B = len(idx)
    y_t = torch.from_numpy(y[idx])
    total = blocks.new_zeros(())
    for term in schedule.terms:
        tb = blocks
        if term.block_dropout and schedule.block_keep:
            keep = rng.random((len(rows), nb)) < np.asarray(schedule.block_keep)
            tb = blocks * torch.from_numpy(keep.astype(np.float32))[..., None]
        anchor_blocks = tb[:B]
        pos_blocks = {k: tb[B * (i + 1):B * (i + 2)] for i, k in enumerate(levels)}
        table = torch.tensor(term.levels, dtype=blocks.dtype)  # (nb, L)
        if term.sample:
            j = rng.choice(nb, size=B, p=np.asarray(term.probs)) + 1
            paths = [(torch.from_numpy(j), table[torch.from_numpy(j - 1)], 1.0)]
        else:
            paths = [(j, table[j - 1].expand(B, -1), p)
                     for j, p in enumerate(term.probs, start=1) if p > 0]
        for j, weights, p in paths:
            e = head.embed(anchor_blocks, j)
            for k in levels:
                w = weights[:, k]
                if not bool((w > 0).any()):
                    continue
                e_pos = head.embed(pos_blocks[k], j)
                per_example = block_loss(e, e_pos, y_t[:, k], model.classifiers[k](e), cfg)
                total = total + term.weight * p * (w * per_example).mean()
    return total


def train(model: SteerableModel, schedule: Schedule, x_train: np.ndarray, y_train: np.ndarray,
          x_val: np.ndarray, y_val: np.ndarray, cfg: TrainConfig, *, progress: bool = True) -> dict:
    """Train ``model`` in place; keep the epoch with the best validation k-NN (coarse + fine, full dim).

    Returns the training history: per-epoch loss, validation accuracies, seconds, and the best epoch.
    """
    from tqdm.auto import tqdm

    if schedule.num_levels != model.hierarchy.num_levels:
        raise ValueError(f"schedule {schedule.name!r} is for {schedule.num_levels} levels, "
                         f"the data has {model.hierarchy.num_levels}")
    if schedule.num_blocks != model.head.num_blocks:
        raise ValueError(f"schedule {schedule.name!r} is for {schedule.num_blocks} blocks, "
                         f"the head has {model.head.num_blocks}")
    rng = _seed_everything(cfg.seed)
    x = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    samplers = {k: PositiveSampler(y_train[:, k]) for k in schedule.supervised_levels()}
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: dict = {"epochs": [], "best_epoch": None}
    best_score, best_state = -np.inf, None
    steps = (len(x) + cfg.batch_size - 1) // cfg.batch_size
    bar = tqdm(total=cfg.epochs * steps, desc=f"train {schedule.name}", unit="step", disable=not progress)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0, losses = time.perf_counter(), []
        perm = rng.permutation(len(x))
        for s in range(steps):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            positives = {k: sampler(idx, rng) for k, sampler in samplers.items()}
            loss = schedule_loss(model, schedule, x, y_train, idx, positives, rng, cfg.loss,
                                 bf16=cfg.precision == "bf16")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            losses.append(loss.item())
            bar.update(1)
        acc = validation_accuracy(model, x_train, y_train, x_val, y_val)
        score = float(acc[0] + acc[-1])
        history["epochs"].append({"epoch": epoch, "loss": float(np.mean(losses)),
                                  "val_accuracy": acc.tolist(), "seconds": time.perf_counter() - t0})
        bar.set_postfix(epoch=epoch, val_coarse=f"{acc[0]:.3f}", val_fine=f"{acc[-1]:.3f}")
        if score > best_score or not cfg.select_best:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
            history["best_epoch"] = epoch
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return history


def validation_accuracy(model: SteerableModel, x_train: np.ndarray, y_train: np.ndarray,
                        x_val: np.ndarray, y_val: np.ndarray) -> np.ndarray:
    """k-NN accuracy per level of the full embedding, validation queries against the training split."""
    full = model.dims[-1]
    (ref,), (q,) = model.embed_vectors(x_train, [full]), model.embed_vectors(x_val, [full])
    return knn_accuracy(q, y_val, ref, y_train, k=5)
