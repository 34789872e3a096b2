"""Training a head on cached backbone vectors under a :class:`~steerable.schedule.Schedule`."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..metrics import knn_accuracy
from ..model import SteerableModel
from ..schedule import Schedule
from .adamw import FlatAdamW
from .checkpoint import load_checkpoint, save_checkpoint, training_digest
from .losses import LossConfig
from .stack import Seeds
from .terms import LOSS_KINDS, Step

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


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
    """One model's total loss (a scalar) on one batch of anchors ``idx`` and their per-level positives,
    as a training step computes it (:meth:`Lockstep.step`). ``x`` is on the model's device."""
    y = torch.as_tensor(y, device=x.device)
    levels = sorted(positives)
    rows = torch.from_numpy(np.concatenate([idx, *(positives[k] for k in levels)])).to(x.device)
    step = forward_step(Seeds([model]), schedule, x[rows][None], y[rows][None], len(idx), levels, [rng], cfg, bf16)
    return terms_loss(step, schedule)[0]


def forward_step(
    seeds: Seeds,
    schedule: Schedule,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    anchors: int,
    levels: list[int],
    rngs: list[np.random.Generator],
    cfg: LossConfig,
    bf16: bool = False,
) -> Step:
    """The heads' forward pass on ``inputs`` (seeds, rows, dim): the step the loss kinds read. The
    losses and normalisation run in full precision (``bf16``: the heads' forward under autocast)."""
    blocks, fine_logits = seeds.outputs(inputs, bf16)
    return Step(seeds, blocks, fine_logits, labels, anchors, levels, rngs, cfg, schedule.block_keep, inputs)


def terms_loss(step: Step, schedule: Schedule) -> torch.Tensor:
    """Each seed's sum of every term's loss contributions on one step, in the schedule's order: (seeds,)."""
    total = step.blocks.new_zeros(step.blocks.shape[0])
    for term in schedule.terms:
        for part in LOSS_KINDS[term.loss](step, term):
            total = total + part
    return total


class Lockstep:
    """One training of one or more models that differ only by seed, step by step in lockstep: per
    seed its data, random streams, samplers and best epoch; shared the step (one forward pass, one
    loss over the seed axis, one backward pass), the optimiser (a parameter group per seed) and its
    learning-rate schedule. Every seed's numbers are those of training it alone
    (:mod:`steerable.training.stack`)."""

    def __init__(
        self,
        models: Sequence[SteerableModel],
        schedule: Schedule,
        data: Sequence[tuple[np.ndarray, ...]],
        cfgs: Sequence[TrainConfig],
        device: torch.device,
    ):
        self.models, self.schedule, self.data, self.cfg = list(models), schedule, list(data), cfgs[0]
        self.rngs = [np.random.default_rng(c.seed) for c in cfgs]
        generators = []
        if len(models) == 1:  # the head's own forward pass draws its dropout from torch's stream
            torch.manual_seed(cfgs[0].seed)
        else:  # each seed's stream: torch's after torch.manual_seed(seed)
            generators = [torch.Generator(device).manual_seed(c.seed) for c in cfgs]
        on_device: dict[int, torch.Tensor] = {}  # seeds that share their training data share its copy

        def to_device(a: np.ndarray, dtype: DTypeLike | None = None) -> torch.Tensor:
            if id(a) not in on_device:
                on_device[id(a)] = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(device)
            return on_device[id(a)]

        self.xs = [to_device(d[0], np.float32) for d in data]
        self.ys = [to_device(d[1]) for d in data]
        self.shared = all(x is self.xs[0] for x in self.xs) and all(y is self.ys[0] for y in self.ys)
        self.levels = schedule.supervised_levels()
        self.samplers = [{k: PositiveSampler(d[1][:, k]) for k in self.levels} for d in data]
        self.balanced = [
            BalancedBatches(d[1][:, -1], self.cfg.batch_size) if self.cfg.sampler == "balanced" else None for d in data
        ]
        self.device = device
        for m in models:
            m.to(device)
        self.seeds = Seeds(models, generators)
        self.steps = (len(self.xs[0]) + self.cfg.batch_size - 1) // self.cfg.batch_size
        # one optimiser over every seed's parameters, a parameter group per seed (clipped by its own norm)
        self.opt, self.sched = optimiser(self.seeds.parameters(), self.cfg, self.cfg.epochs * self.steps)
        self.selections = [Selection(c.select_best) for c in cfgs]

    def epoch(self, epoch: int, bar: tqdm) -> list[np.ndarray]:
        """Train one epoch, then validate and select per seed; returns each seed's validation accuracies."""
        for m in self.models:
            m.train()
        t0 = time.perf_counter()
        losses = []
        perms = [rng.permutation(len(x)) for rng, x in zip(self.rngs, self.xs)]
        for s in range(self.steps):
            losses.append(self.step(s, perms))
            bar.update(1)
        seconds = time.perf_counter() - t0
        per_seed = torch.stack(losses).T if losses else torch.zeros(len(self.models), 0)
        return [
            sel.end_epoch(m, epoch, list(loss), seconds, *d)
            for sel, m, loss, d in zip(self.selections, self.models, per_seed, self.data)
        ]

    def step(self, s: int, perms: list[np.ndarray]) -> torch.Tensor:
        """One optimiser step of every seed; returns each seed's loss (seeds,), detached."""
        cfg, bs = self.cfg, self.cfg.batch_size
        rows, anchors = [], 0
        for i, rng in enumerate(self.rngs):  # each seed draws from its own stream, in its solo order
            balanced = self.balanced[i]
            idx = balanced(rng) if balanced else perms[i][s * bs : (s + 1) * bs]
            positives = [self.samplers[i][k](idx, rng) for k in self.levels]
            anchors = len(idx)
            rows.append(np.concatenate([idx, *positives]))
        at = torch.from_numpy(np.stack(rows)).to(self.device)
        if self.shared:
            inputs, labels = self.xs[0][at], self.ys[0][at]
        else:
            inputs = torch.stack([x[r] for x, r in zip(self.xs, at)])
            labels = torch.stack([y[r] for y, r in zip(self.ys, at)])
        bf16 = cfg.precision == "bf16"
        step = forward_step(self.seeds, self.schedule, inputs, labels, anchors, self.levels, self.rngs, cfg.loss, bf16)
        loss = terms_loss(step, self.schedule)
        self.opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.seeds.hand_out_grads(step.classified, set().union(*step.classified))
        was_packed = self.opt.packed
        self.opt.clip_grad_norm(cfg.grad_clip)
        self.opt.step()
        if self.opt.packed and not was_packed:  # the seeds' weights moved into the optimiser's buffer
            self.seeds.follow()
        if self.sched is not None:
            self.sched.step()
        return loss.detach()  # no per-step wait for the device

    def close(self) -> None:
        self.opt.unpack()
        self.seeds.release()


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
    run = Lockstep([model], schedule, [(x_train, y_train, x_val, y_val)], [cfg], torch.device(device or "cpu"))
    rng, selection, steps = run.rngs[0], run.selections[0], run.steps
    first = 1
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        key = training_digest(model, schedule, cfg, x_train, y_train)
        resumed = load_checkpoint(checkpoint, key, model, run.opt, run.sched, rng)
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
            (acc,) = run.epoch(epoch, bar)
            bar.set_postfix(epoch=epoch, val_coarse=f"{acc[0]:.3f}", val_fine=f"{acc[-1]:.3f}")
            if checkpoint is not None and epoch < cfg.epochs:
                save_checkpoint(
                    checkpoint,
                    key,
                    epoch,
                    model,
                    run.opt,
                    run.sched,
                    rng,
                    selection.history,
                    selection.best_score,
                    selection.best_state,
                )
    finally:
        bar.close()
        run.close()  # every parameter owns its memory again, whatever happened
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return selection.finish(model, run.xs[0], y_train)


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
