"""Training a head on cached backbone vectors under a :class:`~steerable.schedule.Schedule`."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .evaluate import knn_accuracy
from .losses import LossConfig, block_loss, posterior_nll, similarity_distillation, supcon
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
    def for_schedule(cls, schedule: Schedule | None, **overrides) -> "TrainConfig":
        """Defaults, then the schedule's recipe, then every override that is not None."""
        recipe = dict(schedule.recipe) if schedule is not None else {}
        return cls(**(recipe | {k: v for k, v in overrides.items() if v is not None}))


def recipe_value(schedule: Schedule | None, key: str):
    """A training setting as a method would run it: its recipe's value, else the default."""
    recipe = schedule.recipe if schedule is not None else {}
    return recipe.get(key, TrainConfig.__dataclass_fields__[key].default)


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


def _scale_grad(blocks: torch.Tensor, scale: tuple[float, ...]) -> torch.Tensor:
    """Same values; the gradient reaching block i is multiplied by ``scale[i]``."""
    if not scale or all(g == 1.0 for g in scale):
        return blocks
    g = torch.tensor(scale, dtype=blocks.dtype)[None, :, None]
    return blocks * g + blocks.detach() * (1 - g)


def span_embed(head, blocks: torch.Tensor, j, start: int = 0) -> torch.Tensor:
    """Unit-length embedding of blocks ``start .. j-1`` (zero elsewhere, full width)."""
    if start == 0:
        return head.embed(blocks, j)
    b, n, d = blocks.shape
    jt = torch.full((b,), j) if isinstance(j, int) else j
    keep = (torch.arange(n)[None, :] < jt[:, None]) & (torch.arange(n)[None, :] >= start)
    return torch.nn.functional.normalize((blocks * keep[..., None].to(blocks.dtype)).reshape(b, n * d), dim=-1)


def schedule_loss(model: SteerableModel, schedule: Schedule, x: torch.Tensor, y: np.ndarray,
                  idx: np.ndarray, positives: dict[int, np.ndarray], rng: np.random.Generator,
                  cfg: LossConfig, bf16: bool = False) -> torch.Tensor:
    """The schedule's total loss on one batch of anchors ``idx`` and their per-level positives."""
    head, nb = model.head, schedule.num_blocks
    levels = sorted(positives)
    rows = np.concatenate([idx, *(positives[k] for k in levels)])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        blocks, fine_logits = head.outputs(x[torch.from_numpy(rows)])
    blocks = blocks.float()  # losses and normalisation in full precision
    B = len(idx)
    y_rows = torch.from_numpy(y[rows])
    y_t = y_rows[:B]
    total = blocks.new_zeros(())
    for term in schedule.terms:
        if term.loss == "posterior":
            if fine_logits is None:
                raise ValueError(f"schedule {schedule.name!r} has a posterior term but the head has no "
                                 "posterior option")
            weights = torch.tensor(term.levels[0])
            for k in levels:
                if weights[k] > 0:
                    nll = posterior_nll(fine_logits[:B].float(), model.level_map(k), y_t[:, k])
                    total = total + term.weight * weights[k] * nll.mean()
            continue
        tb = _scale_grad(blocks, term.grad)
        if term.block_dropout and schedule.block_keep:
            keep = rng.random((len(rows), nb)) < np.asarray(schedule.block_keep)
            tb = tb * torch.from_numpy(keep.astype(np.float32))[..., None]
        anchor_blocks = tb[:B]
        pos_blocks = {k: tb[B * (i + 1):B * (i + 2)] for i, k in enumerate(levels)}
        table = torch.tensor(term.levels, dtype=blocks.dtype)  # (nb, L)
        if term.sample:
            j = rng.choice(nb, size=B, p=np.asarray(term.probs)) + 1
            paths = [(torch.from_numpy(j), table[torch.from_numpy(j - 1)], 1.0)]
        else:
            paths = [(j, table[j - 1].expand(B, -1), p)
                     for j, p in enumerate(term.probs, start=1) if p > 0]
        temperature = term.temperature if term.temperature is not None else cfg.temperature
        ce_weight = term.ce_weight if term.ce_weight is not None else cfg.ce_weight
        if term.loss == "distill":  # every row of the batch; the teacher is the whole, intact vector
            teacher = head.embed(blocks.detach(), nb)
            for j, _, p in paths:
                rows_j = j if isinstance(j, int) else j.repeat(len(rows) // B)  # positives share j
                e = span_embed(head, tb, rows_j, term.start)
                total = total + term.weight * p * similarity_distillation(e, teacher, temperature)[:B].mean()
            continue
        for j, weights, p in paths:
            e = span_embed(head, anchor_blocks, j, term.start)
            for i, k in enumerate(levels):
                w = weights[:, k]
                if not bool((w > 0).any()):
                    continue
                e_pos = span_embed(head, pos_blocks[k], j, term.start)
                if term.loss == "seed":
                    per_example = block_loss(e, e_pos, y_t[:, k], model.classifiers[k](e), cfg)
                else:  # supcon over the anchors and their level-k positives
                    lab = torch.cat([y_t, y_rows[B * (i + 1):B * (i + 2)]])
                    per_example = supcon(
                        torch.cat([e, e_pos]), lab[:, k], temperature,
                        within=lab[:, term.within] if term.within is not None else None,
                        siblings=lab[:, k - 1] if k > 0 else None, sibling_weight=term.sibling_weight,
                    )[:B]
                    if ce_weight:
                        per_example = per_example + ce_weight * torch.nn.functional.cross_entropy(
                            model.classifiers[k](e), y_t[:, k], reduction="none")
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
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
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
