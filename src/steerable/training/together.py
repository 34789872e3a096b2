"""Several seeds of one training, trained together: one batched matrix product per layer for all seeds.

Runs that differ only by seed (same schedule, recipe and head) are trained in lockstep by
:func:`train_group`. Each seed keeps its own model, initialisation, batch order, positives, random
loss draws, dropout stream, gradient clipping and best epoch; what is shared is the work: the head's
linear layers are stacked into one ``(seeds, out, in)`` weight each and run as one batched product
for all seeds (``torch.baddbmm``), the losses are summed into one backward pass, and one optimiser
step updates every seed (:class:`steerable.training.adamw.FlatAdamW`, a parameter group per seed: each
operation is one call over every seed's parameters, packed into one buffer seed after seed, of which
the stacked weights are then strided views).

The result of every seed is the result of training it alone with :func:`steerable.training.train`, bit
for bit on the CPU at any thread count (``tests/test_grouped.py`` compares every weight with
``torch.equal``; ``bench/train_grouped.py`` does on CLINC): each seed's slice of a batched product
is the product its own ``F.linear`` makes (forward and gradients), the layer norms, dropout and
losses run per seed, and the optimiser's and clipping's arithmetic is element-wise or per seed. A
caveat of the method: a parameter that gets no gradient at all in one seed's step but one in
another's would be updated (weight decay, moments) where the solo run skips it; the stacked layers
feed every seed's loss in every step of the schedules here, and everything else stays per seed.

Supported heads: :data:`GROUPED_HEADS` (the MLP and linear heads, with or without the posterior
option), in full precision, without checkpoints; :func:`why_not_together` says why a set of trainings
cannot (None where it can), and the runs layer trains those one by one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..heads import Head, MLPHead
from ..model import SteerableModel
from ..schedule import Schedule
from .loop import BalancedBatches, PositiveSampler, Selection, TrainConfig, check_fits, optimiser, terms_loss
from .terms import Step

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

GROUPED_HEADS = ("mlp", "linear")


def why_not_together(models: list[SteerableModel], cfgs: list[TrainConfig], train_sizes: list[int]) -> str | None:
    """None if these trainings can run as one group, else why not (one line)."""
    heads = {m.head.kind for m in models}
    if len(heads) > 1 or not heads <= set(GROUPED_HEADS):
        return f"grouped training supports the {' and '.join(GROUPED_HEADS)} heads, not {sorted(heads)}"
    if any(m.head.prefix for m in models):
        return "grouped training does not support the prefix option"
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


class _TorchStream:
    """A seed's own torch random stream: the global generator's state after ``torch.manual_seed(seed)``,
    swapped in around each draw, so each seed's dropout masks are the ones its solo training draws."""

    def __init__(self, seed: int, device: torch.device):
        self.device = device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            self.state = self._get()

    def _get(self) -> torch.Tensor:
        return torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else torch.get_rng_state()

    def _set(self, state: torch.Tensor) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)
        else:
            torch.set_rng_state(state)

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        saved = self._get()
        self._set(self.state)
        out = F.dropout(x, p, training=True)
        self.state = self._get()
        self._set(saved)
        return out


class _BatchedLinear(torch.autograd.Function):
    """``F.linear`` per seed as batched products, forward and backward: each seed's slice gets the very
    products its own ``F.linear`` makes (the weight's gradient straight in the weight's layout,
    ``g^T x``, as ``addmm``'s backward computes it for a transposed weight, so nothing is copied)."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(b[:, None, :], x, w.transpose(1, 2))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0], inputs[1])

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        x, w = ctx.saved_tensors
        gx = torch.bmm(g, w) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(g.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        gb = g.sum(1) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


class _StackedLinears:
    """The linear layers of every seed's head as stacked leaf tensors ``(seeds, out, in)`` and
    ``(seeds, out)`` that the batched products read; each seed's own layer holds views of its slice
    as its parameters, so the optimiser, clipping and the seed's model (validation, best state) work
    on the seed's parameters as in a solo run, and their updates land in the stacked tensors.
    :meth:`release` gives every layer back weights of its own."""

    def __init__(self, heads: Sequence[Head]):
        head = heads[0]
        names = {"linear": ["proj"], "mlp": ["trunk.0", "trunk.4", "proj"]}[head.kind]
        if head.posterior:
            names.append("fine_classifier")
        self.layers = {name: [_linear(h, name) for h in heads] for name in names}
        self.stacked: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, layers in self.layers.items():
            w = torch.stack([layer.weight.detach() for layer in layers]).requires_grad_()
            b = torch.stack([layer.bias.detach() for layer in layers]).requires_grad_()
            self.stacked[name] = (w, b)
            for s, layer in enumerate(layers):
                layer.weight, layer.bias = nn.Parameter(w.detach()[s]), nn.Parameter(b.detach()[s])

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Each seed's ``layer(x[s])`` as one batched product: (seeds, rows, in) -> (seeds, rows, out)."""
        return _BatchedLinear.apply(x, *self.stacked[name])

    def hand_out_grads(self) -> None:
        """Give each seed's layer its slice of the stacked gradients (views, nothing copied), as the
        gradients of its own parameters; the stacked tensors' are let go for the next step's."""
        for name, layers in self.layers.items():
            w, b = self.stacked[name]
            gw, gb = w.grad, b.grad
            if gw is not None and gb is not None:
                for s, layer in enumerate(layers):
                    layer.weight.grad, layer.bias.grad = gw[s], gb[s]
            w.grad = b.grad = None

    def follow(self) -> None:
        """Point the stacked tensors at the memory the seeds' own layers hold now (after the optimiser
        packed their parameters into one buffer, seed after seed): each stacked tensor becomes a view
        with one seed's slice every so many elements."""
        for name, layers in self.layers.items():
            for leaf, attr in zip(self.stacked[name], ("weight", "bias")):
                own = [getattr(layer, attr) for layer in layers]
                first = own[0]
                gap = own[1].storage_offset() - first.storage_offset() if len(own) > 1 else first.numel()
                if any(
                    p.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
                    or p.storage_offset() != first.storage_offset() + s * gap
                    or not p.is_contiguous()
                    for s, p in enumerate(own)
                ):
                    raise RuntimeError(f"the seeds' {name}.{attr} are not evenly spaced in one buffer")
                leaf.data = first.detach().as_strided(leaf.shape, (gap, *first.stride()), first.storage_offset())

    def release(self) -> None:
        for layers in self.layers.values():
            for layer in layers:
                layer.weight = nn.Parameter(layer.weight.detach().clone())
                layer.bias = nn.Parameter(layer.bias.detach().clone())


def _linear(head: Head, name: str) -> nn.Linear:
    layer = head.get_submodule(name)
    assert isinstance(layer, nn.Linear), f"{name} of a {head.kind} head is a {type(layer).__name__}"
    return layer


def _per_seed(modules: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    return torch.stack([m(x[s]) for s, m in enumerate(modules)])


def features_and_blocks(
    heads: Sequence[Head], linears: _StackedLinears, x: torch.Tensor, streams: list[_TorchStream]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every seed's ``head.features_and_blocks(x[s])`` in training mode: (seeds, rows, features) and
    (seeds, rows, blocks, block_dim)."""
    head = heads[0]
    if head.kind == "linear":
        feats = x
    else:  # mlp: Linear, LayerNorm, GELU, Dropout, Linear, LayerNorm, GELU; then the read-out
        assert isinstance(head, MLPHead)
        z = F.gelu(_per_seed([h.get_submodule("trunk.1") for h in heads], linears("trunk.0", x)))
        if head.dropout > 0:
            z = torch.stack([stream.dropout(z[s], head.dropout) for s, stream in enumerate(streams)])
        feats = F.gelu(_per_seed([h.get_submodule("trunk.5") for h in heads], linears("trunk.4", z)))
    out = linears("proj", feats)
    return feats, out.reshape(len(heads), x.shape[1], head.num_blocks, head.block_dim)


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

    On a GPU (``device="cuda"``) each seed draws its solo run's dropout masks too, but batched products
    may round differently from single ones there: equal within floating-point tolerance, not bit for bit.
    """
    if not models:
        return []
    why = why_not_together(models, cfgs, [len(d[0]) for d in data])
    if why:
        raise ValueError(why)
    for m in models:
        check_fits(m, schedule)
    if not schedule.trains:
        return [{} for _ in models]
    group = _Group(models, schedule, data, cfgs, torch.device(device or "cpu"))
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
        group.opt.unpack()
        group.linears.release()  # every model owns its weights again, whatever happened
    return [sel.finish(m, x, d[1]) for sel, m, x, d in zip(group.selections, models, group.xs, data)]


class _Group:
    """The state of a grouped training: per seed its data, random streams, samplers and selection;
    shared the stacked layers, the optimiser and its schedule."""

    def __init__(
        self,
        models: list[SteerableModel],
        schedule: Schedule,
        data: list[tuple[np.ndarray, ...]],
        cfgs: list[TrainConfig],
        device: torch.device,
    ):
        self.models, self.schedule, self.data, self.cfgs, self.cfg = models, schedule, data, cfgs, cfgs[0]
        self.rngs = [np.random.default_rng(c.seed) for c in cfgs]
        self.streams = [_TorchStream(c.seed, device) for c in cfgs]
        on_device: dict[int, torch.Tensor] = {}  # seeds that share their training data share its copy

        def to_device(a: np.ndarray, dtype: DTypeLike | None = None) -> torch.Tensor:
            if id(a) not in on_device:
                on_device[id(a)] = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(device)
            return on_device[id(a)]

        self.xs = [to_device(d[0], np.float32) for d in data]
        self.ys = [to_device(d[1]) for d in data]
        self.levels = schedule.supervised_levels()
        self.samplers = [{k: PositiveSampler(d[1][:, k]) for k in self.levels} for d in data]
        self.balanced = [
            BalancedBatches(d[1][:, -1], self.cfg.batch_size) if self.cfg.sampler == "balanced" else None for d in data
        ]
        self.device = device
        for m in models:
            m.to(device)
        self.heads = [m.head for m in models]
        self.linears = _StackedLinears(self.heads)
        self.params = [list(m.parameters()) for m in models]
        self.steps = (len(self.xs[0]) + self.cfg.batch_size - 1) // self.cfg.batch_size
        # one optimiser over every seed's parameters, a parameter group per seed (clipped by its own norm):
        # each element's arithmetic is its solo run's
        self.opt, self.sched = optimiser(self.params, self.cfg, self.cfg.epochs * self.steps)
        self.selections = [Selection(c.select_best) for c in cfgs]

    def epoch(self, epoch: int, bar: tqdm) -> list[np.ndarray]:
        """Train one epoch, then validate and select per seed; returns each seed's validation accuracies."""
        for m in self.models:
            m.train()
        t0 = time.perf_counter()
        losses: list[list[torch.Tensor]] = [[] for _ in self.models]
        perms = [rng.permutation(len(x)) for rng, x in zip(self.rngs, self.xs)]
        for s in range(self.steps):
            for i, loss in enumerate(self.step(s, perms)):
                losses[i].append(loss)
            bar.update(1)
        seconds = time.perf_counter() - t0
        return [
            sel.end_epoch(m, epoch, loss, seconds, *d)
            for sel, m, loss, d in zip(self.selections, self.models, losses, self.data)
        ]

    def step(self, s: int, perms: list[np.ndarray]) -> list[torch.Tensor]:
        """One optimiser step of every seed; returns each seed's loss (detached)."""
        cfg, bs = self.cfg, self.cfg.batch_size
        rows, anchors = [], []
        for i, rng in enumerate(self.rngs):  # each seed draws from its own stream, in its solo order
            balanced = self.balanced[i]
            idx = balanced(rng) if balanced else perms[i][s * bs : (s + 1) * bs]
            positives = [self.samplers[i][k](idx, rng) for k in self.levels]
            anchors.append(len(idx))
            rows.append(torch.from_numpy(np.concatenate([idx, *positives])).to(self.device))
        inputs = torch.stack([x[r] for x, r in zip(self.xs, rows)])
        feats, blocks = features_and_blocks(self.heads, self.linears, inputs, self.streams)
        logits = self.linears("fine_classifier", feats) if self.heads[0].posterior else None
        total, losses = blocks.new_zeros(()), []
        for i, (m, rng) in enumerate(zip(self.models, self.rngs)):
            b, fine_logits = m.head.finish(blocks[i], None if logits is None else logits[i])
            loss = terms_loss(
                Step(
                    m,
                    b,
                    fine_logits,
                    self.ys[i][rows[i]],
                    anchors[i],
                    self.levels,
                    rng,
                    cfg.loss,
                    self.schedule.block_keep,
                    inputs[i],
                ),
                self.schedule,
            )
            losses.append(loss.detach())
            total = total + loss
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.linears.hand_out_grads()
        was_packed = self.opt.packed
        self.opt.clip_grad_norm(cfg.grad_clip)
        self.opt.step()
        if self.opt.packed and not was_packed:  # the seeds' weights moved into the optimiser's buffer
            self.linears.follow()
        if self.sched is not None:
            self.sched.step()
        return losses
