"""Training a head on cached backbone vectors under a :class:`~steerable.schedule.Schedule`."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .losses import LOSS_KINDS, LossConfig, Step
from .metrics import knn_accuracy
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
    lr_schedule: str = "constant"  # or "cosine": decay to 1 % of lr over the run
    sampler: str = "random"  # or "balanced": batches of batch_size / 4 classes x 4 examples
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.sampler not in ("random", "balanced"):
            raise ValueError(f"sampler must be 'random' or 'balanced', got {self.sampler!r}")
        if isinstance(self.loss, dict):
            self.loss = LossConfig(**self.loss)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_schedule(cls, schedule: Schedule, **overrides) -> "TrainConfig":
        """Defaults, then the schedule's recipe, then every override that is not None."""
        return cls(**(dict(schedule.recipe) | {k: v for k, v in overrides.items() if v is not None}))


def recipe_value(schedule: Schedule, key: str):
    """A training setting as a method would run it: its recipe's value, else the default."""
    return schedule.recipe.get(key, TrainConfig.__dataclass_fields__[key].default)


class BalancedBatches:
    """Class-balanced batches: ``batch_size // per_class`` classes, ``per_class`` examples each."""

    def __init__(self, labels: np.ndarray, batch_size: int, per_class: int = 4):
        self.sampler = PositiveSampler(labels)
        self.classes = np.flatnonzero(self.sampler.counts)
        self.n_classes = max(1, min(len(self.classes), batch_size // per_class))
        self.per_class = per_class

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        s = self.sampler
        chosen = rng.choice(self.classes, self.n_classes, replace=False)
        n = s.counts[chosen][:, None]
        pick = (rng.random((len(chosen), self.per_class)) * n).astype(np.int64)
        return s.order[(s.starts[chosen][:, None] + pick).ravel()]


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
    """The schedule's total loss on one batch of anchors ``idx`` and their per-level positives: one
    forward pass, then each term's loss kind (:data:`~steerable.losses.LOSS_KINDS`) in order."""
    levels = sorted(positives)
    rows = np.concatenate([idx, *(positives[k] for k in levels)])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        blocks, fine_logits = model.head.outputs(x[torch.from_numpy(rows)])
    step = Step(model, blocks.float(), fine_logits, torch.from_numpy(y[rows]), len(idx), levels, rng, cfg,
                schedule.block_keep)  # losses and normalisation in full precision
    total = step.blocks.new_zeros(())
    for term in schedule.terms:
        for part in LOSS_KINDS[term.loss](step, term):
            total = total + part
    return total


def train(model: SteerableModel, schedule: Schedule, x_train: np.ndarray, y_train: np.ndarray,
          x_val: np.ndarray, y_val: np.ndarray, cfg: TrainConfig, *, progress: bool = True) -> dict:
    """Train ``model`` in place; keep the epoch with the best validation k-NN (coarse + fine, full dim).

    A head that is fitted rather than trained (PCA) is fitted on ``x_train`` first. Returns the training
    history: per-epoch loss, validation accuracies, seconds, and the best epoch; empty for a schedule
    with no terms (nothing to train).
    """
    model.head.fit(torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)))
    if not schedule.trains:
        model.eval()
        return {}
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
    # foreach: one call per operation for all tensors; the same arithmetic as the per-tensor loop
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    history: dict = {"epochs": [], "best_epoch": None}
    best_score, best_state = -np.inf, None
    steps = (len(x) + cfg.batch_size - 1) // cfg.batch_size
    total_steps = cfg.epochs * steps
    sched = None
    if cfg.lr_schedule == "cosine":  # cosine decay to 1 % of lr over the run
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * min(t, total_steps) / total_steps)))
    balanced = BalancedBatches(y_train[:, -1], cfg.batch_size) if cfg.sampler == "balanced" else None
    bar = tqdm(total=cfg.epochs * steps, desc=f"train {schedule.name}", unit="step", disable=not progress)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0, losses = time.perf_counter(), []
        perm = rng.permutation(len(x))
        for s in range(steps):
            idx = balanced(rng) if balanced else perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            positives = {k: sampler(idx, rng) for k, sampler in samplers.items()}
            loss = schedule_loss(model, schedule, x, y_train, idx, positives, rng, cfg.loss,
                                 bf16=cfg.precision == "bf16")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
            opt.step()
            if sched is not None:
                sched.step()
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
    if model.head.posterior and "train_mix" in model.head.posterior:
        history["posterior_scales"] = model.head.calibrate(x, y_train[:, 0])
    model.eval()
    return history


def validation_accuracy(model: SteerableModel, x_train: np.ndarray, y_train: np.ndarray,
                        x_val: np.ndarray, y_val: np.ndarray) -> np.ndarray:
    """k-NN accuracy per level of the full embedding, validation queries against the training split."""
    full = model.dims[-1]
    (ref,), (q,) = model.embed_vectors(x_train, [full]), model.embed_vectors(x_val, [full])
    return knn_accuracy(q, y_val, ref, y_train, k=5)
