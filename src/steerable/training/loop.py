"""Training a head on cached backbone vectors under a :class:`~steerable.schedule.Schedule`."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..metrics import knn_accuracy
from ..model import SteerableModel
from ..schedule import Schedule
from .adamw import FlatAdamW
from .checkpoint import load_checkpoint, save_checkpoint, training_digest
from .losses import LossConfig
from .terms import LOSS_KINDS, Step


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
    precision: str = "fp32"  # "bf16": the head's forward pass under bfloat16 autocast
    lr_schedule: str = "constant"  # or "cosine": decay to 1 % of lr over the run
    sampler: str = "random"  # or "balanced": batches of batch_size / 4 classes x 4 examples
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
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
    def for_schedule(cls, schedule: Schedule, **overrides: Any) -> "TrainConfig":
        """Defaults, then the schedule's recipe, then every override that is not None."""
        return cls(**(dict(schedule.recipe) | {k: v for k, v in overrides.items() if v is not None}))


def recipe_value(schedule: Schedule, key: str) -> Any:
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


def schedule_loss(
    model: SteerableModel,
    schedule: Schedule,
    x: torch.Tensor,
    y: torch.Tensor | np.ndarray,
    idx: np.ndarray,
    positives: dict[int, np.ndarray],
    rng: np.random.Generator,
    cfg: LossConfig,
    bf16: bool = False,
) -> torch.Tensor:
    """The schedule's total loss on one batch of anchors ``idx`` and their per-level positives: one
    forward pass, then each term's loss kind (:data:`~steerable.training.terms.LOSS_KINDS`) in order. ``x`` is on
    the model's device (the labels ``y`` best too); the indices come from numpy's random stream."""
    levels = sorted(positives)
    y = torch.as_tensor(y, device=x.device)
    rows = torch.from_numpy(np.concatenate([idx, *(positives[k] for k in levels)])).to(x.device)
    inputs = x[rows]
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        blocks, fine_logits = model.head.outputs(inputs)
    # losses and normalisation in full precision
    return terms_loss(
        Step(model, blocks.float(), fine_logits, y[rows], len(idx), levels, rng, cfg, schedule.block_keep, inputs),
        schedule,
    )


def terms_loss(step: Step, schedule: Schedule) -> torch.Tensor:
    """The sum of every term's loss contributions on one step, in the schedule's order."""
    total = step.blocks.new_zeros(())
    for term in schedule.terms:
        for part in LOSS_KINDS[term.loss](step, term):
            total = total + part
    return total


def train(
    model: SteerableModel,
    schedule: Schedule,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: TrainConfig,
    *,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Train ``model`` in place; keep the epoch with the best validation k-NN (coarse + fine, full dim).

    A head that is fitted rather than trained (PCA, a projection), or fitted in part (the ``prefix``
    option), is fitted on ``x_train`` and ``y_train`` first. Returns the training
    history: per-epoch loss, validation accuracies, seconds, and the best epoch; empty for a schedule
    with no terms (nothing to train).

    ``checkpoint``: a file written (atomically) after every epoch with everything the next epoch
    depends on (weights, optimiser, random streams, history). A training of the same model, schedule,
    settings and data that finds it continues after its epoch, with the numbers of an uninterrupted
    run; a checkpoint of any other training is ignored and overwritten. Removed when training ends.

    ``device``: where the head trains (default the CPU; ``"cuda"`` on a GPU). The batches are drawn
    on the CPU from the same random stream either way; the model comes back on the CPU. Numbers on
    another device differ from the CPU's in the last bits (other kernels), and a checkpoint resumes
    exactly on the CPU only.
    """
    model.head.fit(torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)), y_train)
    if not schedule.trains:
        model.eval()
        return {}
    check_fits(model, schedule)
    rng = _seed_everything(cfg.seed)
    device = torch.device(device or "cpu")
    model.to(device)
    x = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)).to(device)
    y = torch.from_numpy(np.ascontiguousarray(y_train)).to(device)
    samplers = {k: PositiveSampler(y_train[:, k]) for k in schedule.supervised_levels()}
    steps = (len(x) + cfg.batch_size - 1) // cfg.batch_size
    opt, sched = optimiser([list(model.parameters())], cfg, cfg.epochs * steps)
    balanced = BalancedBatches(y_train[:, -1], cfg.batch_size) if cfg.sampler == "balanced" else None
    selection = Selection(cfg.select_best)
    first = 1
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        key = training_digest(model, schedule, cfg, x_train, y_train)
        resumed = load_checkpoint(checkpoint, key, model, opt, sched, rng)
        if resumed is not None:
            first, selection.history, selection.best_score, selection.best_state = resumed
            if progress:
                tqdm.write(f"resuming from epoch {first} of {cfg.epochs} ({checkpoint})")
    bar = tqdm(
        total=cfg.epochs * steps,
        initial=(first - 1) * steps,
        desc=f"train {schedule.name}",
        unit="step",
        disable=not progress,
    )
    try:
        for epoch in range(first, cfg.epochs + 1):
            model.train()
            t0, losses = time.perf_counter(), []
            perm = rng.permutation(len(x))
            for s in range(steps):
                idx = balanced(rng) if balanced else perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
                positives = {k: sampler(idx, rng) for k, sampler in samplers.items()}
                loss = schedule_loss(model, schedule, x, y, idx, positives, rng, cfg.loss, bf16=cfg.precision == "bf16")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.clip_grad_norm(cfg.grad_clip)
                opt.step()
                if sched is not None:
                    sched.step()
                losses.append(loss.detach())  # no per-step wait for the device
                bar.update(1)
            acc = selection.end_epoch(model, epoch, losses, time.perf_counter() - t0, x_train, y_train, x_val, y_val)
            bar.set_postfix(epoch=epoch, val_coarse=f"{acc[0]:.3f}", val_fine=f"{acc[-1]:.3f}")
            if checkpoint is not None and epoch < cfg.epochs:
                save_checkpoint(
                    checkpoint,
                    key,
                    epoch,
                    model,
                    opt,
                    sched,
                    rng,
                    selection.history,
                    selection.best_score,
                    selection.best_state,
                )
    finally:
        bar.close()
        opt.unpack()  # every parameter owns its memory again, whatever happened
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return selection.finish(model, x, y_train)


def check_fits(model: SteerableModel, schedule: Schedule) -> None:
    """Raise if the schedule is for another number of levels or blocks than the model has."""
    if schedule.num_levels != model.hierarchy.num_levels:
        raise ValueError(
            f"schedule {schedule.name!r} is for {schedule.num_levels} levels, the data has {model.hierarchy.num_levels}"
        )
    if schedule.num_blocks != model.head.num_blocks:
        raise ValueError(
            f"schedule {schedule.name!r} is for {schedule.num_blocks} blocks, the head has {model.head.num_blocks}"
        )


def optimiser(
    groups: Sequence[Sequence[torch.Tensor]], cfg: TrainConfig, total_steps: int
) -> tuple[FlatAdamW, torch.optim.lr_scheduler.LambdaLR | None]:
    """(AdamW, learning-rate scheduler or None) of a training of ``total_steps`` steps, over parameter
    ``groups`` that are each clipped by their own norm (one model's parameters each)."""
    # torch's AdamW arithmetic, each operation one call over every parameter (steerable.training.adamw)
    opt = FlatAdamW([{"params": list(g)} for g in groups], lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = None
    if cfg.lr_schedule == "cosine":  # cosine decay to 1 % of lr over the run
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * min(t, total_steps) / total_steps))
        )
    return opt, sched


class Selection:
    """One training's history and its best epoch so far (by validation k-NN, coarse + fine)."""

    def __init__(self, select_best: bool = True):
        self.select_best = select_best
        self.history: dict = {"epochs": [], "best_epoch": None}
        self.best_score: float = -np.inf
        self.best_state: dict | None = None

    def end_epoch(
        self,
        model: SteerableModel,
        epoch: int,
        losses: list[torch.Tensor],
        seconds: float,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
    ) -> np.ndarray:
        """Log the epoch, keep the model's state if it is the best so far; returns the validation accuracies."""
        acc = validation_accuracy(model, x_train, y_train, x_val, y_val)
        score = float(acc[0] + acc[-1])
        self.history["epochs"].append(
            {
                "epoch": epoch,
                "loss": float(np.mean(torch.stack(losses).double().cpu().numpy())),
                "val_accuracy": acc.tolist(),
                "seconds": seconds,
            }
        )
        if score > self.best_score or not self.select_best:
            self.best_score, self.best_state = score, _copy_state(model.state_dict())
            self.history["best_epoch"] = epoch
        return acc

    def finish(self, model: SteerableModel, x: torch.Tensor, y_train: np.ndarray) -> dict:
        """Load the best state into ``model`` (calibrating a posterior head that needs it), move it to
        the CPU in evaluation mode; returns the history."""
        assert self.best_state is not None, "finish() after at least one epoch"
        model.load_state_dict(self.best_state)
        if model.head.posterior and "train_mix" in model.head.posterior:
            self.history["posterior_scales"] = model.head.calibrate(x, y_train[:, 0])
        model.to("cpu")
        model.eval()
        return self.history


def _copy_state(state: dict) -> dict:
    """A copy of a state dict that owns its tensors (and only them: a weight that is a view of a larger
    tensor is copied alone)."""
    out = OrderedDict((k, v.clone()) for k, v in state.items())
    out._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]  # as load_state_dict reads it
    return out


def validation_accuracy(
    model: SteerableModel, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> np.ndarray:
    """k-NN accuracy per level of the full embedding, validation queries against the training split."""
    full = model.dims[-1]
    (ref,), (q,) = model.embed_vectors(x_train, [full]), model.embed_vectors(x_val, [full])
    return knn_accuracy(q, y_val, ref, y_train, k=5)
