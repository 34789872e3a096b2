"""The loss kinds a schedule term names: :data:`LOSS_KINDS` maps each name a
:class:`~steerable.schedule.Term` may carry (``seed``, ``supcon``, ``posterior``, ``distill``; the
names are the schedule's, :data:`steerable.schedule.LOSS_NAMES`) to a small function that turns one
training :class:`Step` into that term's loss contributions: one per seed of the step, shape ``(seeds,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..schedule import LOSS_NAMES
from .losses import LossConfig, block_loss, cross_entropy_rows, posterior_nll, similarity_distillation, supcon

if TYPE_CHECKING:  # annotations only
    from ..heads import Head
    from ..schedule import Term


class Models(Protocol):
    """What the loss kinds read of the models a step trains (one per seed; :class:`~steerable.training.stack.Seeds`)."""

    @property
    def head(self) -> "Head": ...  # the first seed's: what every seed's head computes from its blocks

    def classify(self, level: int, e: torch.Tensor) -> torch.Tensor: ...  # (seeds, rows, dim) -> logits

    def level_map(self, level: int) -> torch.Tensor: ...


@dataclass
class Step:
    """One training step after the heads' forward pass, for one or more seeds trained together: what
    every loss kind reads. Tensors lead with the seed axis; every seed draws from its own ``rngs``.

    Rows are the batch's anchors, then one group of positives per supervised level (in
    :attr:`levels` order), each group as long as the anchors.
    """

    models: Models
    blocks: torch.Tensor  # (seeds, rows, num_blocks, block_dim), float32
    fine_logits: torch.Tensor | None  # (seeds, rows, fine classes): the posterior option's logits, if any
    labels: torch.Tensor  # (seeds, rows, levels)
    anchors: int
    levels: list[int]
    rngs: list[np.random.Generator]  # one per seed
    config: LossConfig
    block_keep: tuple[float, ...]
    inputs: torch.Tensor | None = None  # (seeds, rows, backbone dim): the head's input, for a backbone teacher
    # per seed, the levels whose classifier its loss read (a seed whose paths gave a level no weight
    # in this step gets no gradient for that classifier, as when it trains alone)
    classified: list[set[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.classified = [set() for _ in self.rngs]

    def group(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Rows of positive group ``i`` (0 = the first supervised level's)."""
        return x[:, self.anchors * (i + 1) : self.anchors * (i + 2)]

    def classify(self, level: int, e: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """The level's classifier logits of ``e`` for every seed; ``seeds``: the ones whose loss uses them."""
        for s in seeds:
            self.classified[s].add(level)
        return self.models.classify(level, e)


def scale_grad(blocks: torch.Tensor, scale: tuple[float, ...]) -> torch.Tensor:
    """Same values; the gradient reaching block i (dimension -2) is multiplied by ``scale[i]``."""
    if not scale or all(g == 1.0 for g in scale):
        return blocks
    g = torch.tensor(scale, dtype=blocks.dtype, device=blocks.device)[:, None]
    return blocks * g + blocks.detach() * (1 - g)


def span_embed(head: Head, blocks: torch.Tensor, j: int | torch.Tensor, start: int = 0) -> torch.Tensor:
    """Unit-length embedding of blocks ``start .. j-1`` (zero elsewhere, full width); leading
    dimensions pass through, as in :meth:`Head.embed`."""
    if start == 0:
        return head.embed(blocks, j)
    *lead, n, d = blocks.shape
    at = torch.arange(n, device=blocks.device)
    jt = torch.full((*lead, 1), j, device=blocks.device) if isinstance(j, int) else j[..., None]
    keep = (at < jt) & (at >= start)
    return F.normalize((blocks * keep[..., None].to(blocks.dtype)).reshape(*lead, n * d), dim=-1)


class PrefixPath(NamedTuple):
    """One prefix path of a term: its length ``j`` in blocks (an int, or a tensor of one per seed and
    anchor), each anchor's weight per level (seeds, anchors, levels), the path's probability, and per
    seed the levels some anchor weights above zero (known on the host, so skipping a level never
    waits on the device)."""

    j: int | torch.Tensor
    weights: torch.Tensor
    prob: float
    levels: list[frozenset[int]]

    def seeds_using(self, level: int) -> list[int]:
        return [s for s, used in enumerate(self.levels) if level in used]


def _term_paths(step: Step, term: "Term") -> tuple[torch.Tensor, list[PrefixPath]]:
    """The term's view of the blocks (gradient scales, block dropout) and its prefix paths: one
    sampled path, or every length with a probability above zero. Each seed draws from its own stream."""
    nb, B, seeds = term.num_blocks, step.anchors, len(step.rngs)
    tb = scale_grad(step.blocks, term.grad)
    device = tb.device
    if term.block_dropout and step.block_keep:
        rows = tb.shape[1]
        keep = np.stack([rng.random((rows, nb)) < np.asarray(step.block_keep) for rng in step.rngs])
        tb = tb * torch.from_numpy(keep.astype(np.float32)).to(device)[..., None]
    table = np.asarray(term.levels, dtype=np.float32)  # (nb, L); the blocks are float32 too

    def path(j: np.ndarray | int, weights: np.ndarray, prob: float) -> PrefixPath:
        if weights.ndim == 1:  # one length for every anchor of every seed
            used = frozenset(np.flatnonzero(weights > 0).tolist())
            levels = [used] * seeds
            w = torch.from_numpy(weights).to(device).expand(seeds, B, -1)
        else:  # (seeds, anchors, L)
            levels = [frozenset(np.flatnonzero((w > 0).any(0)).tolist()) for w in weights]
            w = torch.from_numpy(weights).to(device)
        return PrefixPath(j if isinstance(j, int) else torch.from_numpy(j).to(device), w, prob, levels)

    if term.sample:
        j = np.stack([rng.choice(nb, size=B, p=np.asarray(term.probs)) for rng in step.rngs]) + 1
        return tb, [path(j, table[j - 1], 1.0)]
    return tb, [path(j, table[j - 1], p) for j, p in enumerate(term.probs, start=1) if p > 0]


def _contrastive(step: Step, term: "Term", per_example: Callable) -> Iterator[torch.Tensor]:
    """Each path and supervised level: ``per_example(e, e_pos, i, k, seeds)`` weighted by the level
    table, per seed; a level no seed's anchors weight is skipped."""
    head = step.models.head
    tb, paths = _term_paths(step, term)
    anchors = tb[:, : step.anchors]
    for path in paths:
        e = span_embed(head, anchors, path.j, term.start)
        for i, k in enumerate(step.levels):
            seeds = path.seeds_using(k)
            if not seeds:
                continue
            e_pos = span_embed(head, step.group(tb, i), path.j, term.start)
            yield term.weight * path.prob * (path.weights[..., k] * per_example(e, e_pos, i, k, seeds)).mean(-1)


def seed_term(step: Step, term: "Term") -> Iterator[torch.Tensor]:
    """InfoNCE + margin + cross-entropy on each path's prefix, against the level's positives."""
    y = step.labels[:, : step.anchors]

    def per_example(e: torch.Tensor, e_pos: torch.Tensor, i: int, k: int, seeds: list[int]) -> torch.Tensor:
        return block_loss(e, e_pos, y[..., k], step.classify(k, e, seeds), step.config)

    yield from _contrastive(step, term, per_example)


def supcon_term(step: Step, term: "Term") -> Iterator[torch.Tensor]:
    """Supervised contrastive loss over the anchors and the level's positives (+ cross-entropy)."""
    B, cfg = step.anchors, step.config
    y = step.labels[:, :B]
    temperature = term.temperature if term.temperature is not None else cfg.temperature
    ce_weight = term.ce_weight if term.ce_weight is not None else cfg.ce_weight

    def per_example(e: torch.Tensor, e_pos: torch.Tensor, i: int, k: int, seeds: list[int]) -> torch.Tensor:
        lab = torch.cat([y, step.group(step.labels, i)], dim=1)
        out = supcon(
            torch.cat([e, e_pos], dim=1),
            lab[..., k],
            temperature,
            within=lab[..., term.within] if term.within is not None else None,
            siblings=lab[..., k - 1] if k > 0 else None,
            sibling_weight=term.sibling_weight,
        )[:, :B]
        if ce_weight:
            out = out + ce_weight * cross_entropy_rows(step.classify(k, e, seeds), y[..., k])
        return out

    yield from _contrastive(step, term, per_example)


def posterior_term(step: Step, term: "Term") -> Iterator[torch.Tensor]:
    """NLL of each weighted level under the head's fine posterior summed up the hierarchy."""
    if step.fine_logits is None:
        raise ValueError("a posterior term needs a head with the posterior option")
    B = step.anchors
    weights = torch.tensor(term.levels[0])
    for k in step.levels:
        if weights[k] > 0:
            to_level = step.models.level_map(k).to(step.labels.device)
            nll = posterior_nll(step.fine_logits[:, :B].float(), to_level, step.labels[:, :B, k])
            yield term.weight * weights[k] * nll.mean(-1)


def distill_term(step: Step, term: "Term") -> Iterator[torch.Tensor]:
    """Each path's prefix learns the in-batch neighbour ranking of its teacher: the whole, intact full
    vector, or the backbone's own vector (what the head was given). With ``sign_slope`` the prefix
    ranks as soft signs, ``tanh(slope * sqrt(d) * e)`` made unit-length (a unit vector's coordinates
    are about 1 / sqrt(d) in size): what a first stage in sign bits ranks by, made differentiable."""
    head, B = step.models.head, step.anchors
    tb, paths = _term_paths(step, term)
    if term.teacher == "backbone":
        if step.inputs is None:
            raise ValueError("a distill term with the backbone as teacher needs the batch's inputs")
        teacher = F.normalize(step.inputs.detach().float(), dim=-1)
    else:
        teacher = head.embed(step.blocks.detach(), term.num_blocks)
    temperature = term.temperature if term.temperature is not None else step.config.temperature
    for path in paths:  # every row of the batch; positives share their anchor's length
        rows_j = path.j if isinstance(path.j, int) else path.j.repeat(1, tb.shape[1] // B)
        e = span_embed(head, tb, rows_j, term.start)
        if term.sign_slope is not None:
            e = F.normalize(torch.tanh((term.sign_slope * e.shape[-1] ** 0.5) * e), dim=-1)
        yield term.weight * path.prob * similarity_distillation(e, teacher, temperature)[:, :B].mean(-1)


LOSS_KINDS: dict[str, Callable[[Step, "Term"], Iterator[torch.Tensor]]] = {
    "seed": seed_term,
    "supcon": supcon_term,
    "posterior": posterior_term,
    "distill": distill_term,
}
assert tuple(LOSS_KINDS) == LOSS_NAMES, "every loss name of a schedule has its kind, and only those"
