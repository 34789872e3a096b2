"""The loss kinds a schedule term names: :data:`LOSS_KINDS` maps each name a
:class:`~steerable.schedule.Term` may carry (``seed``, ``supcon``, ``posterior``, ``distill``; the
names are the schedule's, :data:`steerable.schedule.LOSS_NAMES`) to a small function that turns one
training :class:`Step` into that term's loss contributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..schedule import LOSS_NAMES
from .losses import LossConfig, block_loss, posterior_nll, similarity_distillation, supcon

if TYPE_CHECKING:  # annotations only
    from ..heads import Head
    from ..model import SteerableModel
    from ..schedule import Term


@dataclass
class Step:
    """One training step after the head's forward pass: what every loss kind reads.

    Rows are the batch's anchors, then one group of positives per supervised level (in
    :attr:`levels` order), each group as long as the anchors.
    """

    model: "SteerableModel"
    blocks: torch.Tensor  # (rows, num_blocks, block_dim), float32
    fine_logits: torch.Tensor | None  # the head's fine posterior logits, if it has that option
    labels: torch.Tensor  # (rows, levels)
    anchors: int
    levels: list[int]
    rng: np.random.Generator
    config: LossConfig
    block_keep: tuple[float, ...]
    inputs: torch.Tensor | None = None  # (rows, backbone dim): the head's input, for a backbone teacher

    def group(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Rows of positive group ``i`` (0 = the first supervised level's)."""
        return x[self.anchors * (i + 1) : self.anchors * (i + 2)]


def scale_grad(blocks: torch.Tensor, scale: tuple[float, ...]) -> torch.Tensor:
    """Same values; the gradient reaching block i is multiplied by ``scale[i]``."""
    if not scale or all(g == 1.0 for g in scale):
        return blocks
    g = torch.tensor(scale, dtype=blocks.dtype, device=blocks.device)[None, :, None]
    return blocks * g + blocks.detach() * (1 - g)


def span_embed(head: Head, blocks: torch.Tensor, j: int | torch.Tensor, start: int = 0) -> torch.Tensor:
    """Unit-length embedding of blocks ``start .. j-1`` (zero elsewhere, full width)."""
    if start == 0:
        return head.embed(blocks, j)
    b, n, d = blocks.shape
    jt = torch.full((b,), j, device=blocks.device) if isinstance(j, int) else j
    at = torch.arange(n, device=blocks.device)[None, :]
    keep = (at < jt[:, None]) & (at >= start)
    return F.normalize((blocks * keep[..., None].to(blocks.dtype)).reshape(b, n * d), dim=-1)


class PrefixPath(NamedTuple):
    """One prefix path of a term: its length ``j`` in blocks (an int, or a tensor of one per anchor),
    each anchor's weight per level (anchors, levels), the path's probability, and the levels some
    anchor weights above zero (known on the host, so skipping a level never waits on the device)."""

    j: int | torch.Tensor
    weights: torch.Tensor
    prob: float
    levels: frozenset[int]


def _term_paths(step: Step, term: "Term") -> tuple[torch.Tensor, list[PrefixPath]]:
    """The term's view of the blocks (gradient scales, block dropout) and its prefix paths: one
    sampled path, or every length with a probability above zero."""
    nb, B = term.num_blocks, step.anchors
    tb = scale_grad(step.blocks, term.grad)
    device = tb.device
    if term.block_dropout and step.block_keep:
        keep = step.rng.random((len(tb), nb)) < np.asarray(step.block_keep)
        tb = tb * torch.from_numpy(keep.astype(np.float32)).to(device)[..., None]
    table = np.asarray(term.levels, dtype=np.float32)  # (nb, L); the blocks are float32 too

    def path(j: np.ndarray | int, weights: np.ndarray, prob: float) -> PrefixPath:
        levels = frozenset(np.flatnonzero(np.atleast_2d(weights > 0).any(0)).tolist())
        w = torch.from_numpy(weights).to(device)
        return PrefixPath(
            j if isinstance(j, int) else torch.from_numpy(j).to(device),
            w if w.ndim == 2 else w.expand(B, -1),
            prob,
            levels,
        )

    if term.sample:
        j = step.rng.choice(nb, size=B, p=np.asarray(term.probs)) + 1
        return tb, [path(j, table[j - 1], 1.0)]
    return tb, [path(j, table[j - 1], p) for j, p in enumerate(term.probs, start=1) if p > 0]


def _contrastive(step: Step, term: "Term", per_example: Callable) -> Iterator[torch.Tensor]:
    """Each path and supervised level: ``per_example(e, e_pos, i, k)`` weighted by the level table."""
    head = step.model.head
    tb, paths = _term_paths(step, term)
    anchors = tb[: step.anchors]
    for path in paths:
        e = span_embed(head, anchors, path.j, term.start)
        for i, k in enumerate(step.levels):
            if k not in path.levels:
                continue
            e_pos = span_embed(head, step.group(tb, i), path.j, term.start)
            yield term.weight * path.prob * (path.weights[:, k] * per_example(e, e_pos, i, k)).mean()


def seed_term(step: Step, term: "Term") -> Iterator[torch.Tensor]:
    """InfoNCE + margin + cross-entropy on each path's prefix, against the level's positives."""
    y = step.labels[: step.anchors]

    def per_example(e: torch.Tensor, e_pos: torch.Tensor, i: int, k: int) -> torch.Tensor:
        return block_loss(e, e_pos, y[:, k], step.model.classifiers[k](e), step.config)

    yield from _contrastive(step, term, per_example)


def supcon_term(step: Step, term: "Term") -> Iterator[torch.Tensor]:
    """Supervised contrastive loss over the anchors and the level's positives (+ cross-entropy)."""
    B, cfg = step.anchors, step.config
    y = step.labels[:B]
    temperature = term.temperature if term.temperature is not None else cfg.temperature
    ce_weight = term.ce_weight if term.ce_weight is not None else cfg.ce_weight

    def per_example(e: torch.Tensor, e_pos: torch.Tensor, i: int, k: int) -> torch.Tensor:
        lab = torch.cat([y, step.group(step.labels, i)])
        out = supcon(
            torch.cat([e, e_pos]),
            lab[:, k],
            temperature,
            within=lab[:, term.within] if term.within is not None else None,
            siblings=lab[:, k - 1] if k > 0 else None,
            sibling_weight=term.sibling_weight,
        )[:B]
        if ce_weight:
            out = out + ce_weight * F.cross_entropy(step.model.classifiers[k](e), y[:, k], reduction="none")
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
            to_level = step.model.level_map(k).to(step.labels.device)
            nll = posterior_nll(step.fine_logits[:B].float(), to_level, step.labels[:B, k])
            yield term.weight * weights[k] * nll.mean()


def distill_term(step: Step, term: "Term") -> Iterator[torch.Tensor]:
    """Each path's prefix learns the in-batch neighbour ranking of its teacher: the whole, intact full
    vector, or the backbone's own vector (what the head was given)."""
    head, B = step.model.head, step.anchors
    tb, paths = _term_paths(step, term)
    if term.teacher == "backbone":
        if step.inputs is None:
            raise ValueError("a distill term with the backbone as teacher needs the batch's inputs")
        teacher = F.normalize(step.inputs.detach().float(), dim=-1)
    else:
        teacher = head.embed(step.blocks.detach(), term.num_blocks)
    temperature = term.temperature if term.temperature is not None else step.config.temperature
    for path in paths:  # every row of the batch; positives share their anchor's length
        rows_j = path.j if isinstance(path.j, int) else path.j.repeat(len(tb) // B)
        e = span_embed(head, tb, rows_j, term.start)
        yield term.weight * path.prob * similarity_distillation(e, teacher, temperature)[:B].mean()


LOSS_KINDS: dict[str, Callable[[Step, "Term"], Iterator[torch.Tensor]]] = {
    "seed": seed_term,
    "supcon": supcon_term,
    "posterior": posterior_term,
    "distill": distill_term,
}
assert tuple(LOSS_KINDS) == LOSS_NAMES, "every loss name of a schedule has its kind, and only those"
