"""Loss functions, per example: they work on embeddings and labels, so that schedules can weight examples by
their own prefix length. ``block_loss = InfoNCE(e, e+; tau) + 0.5 * Margin(e, y; 0.2) + CE(classifier(e),
y)`` is the original code's; the terms of a schedule call them (:mod:`steerable.training.terms`).

Every function takes leading dimensions before the batch (seeds trained together: ``(seeds, rows, dim)``)
and computes each leading index exactly as it would alone: in-batch similarities are batched products
(:func:`steerable.batched.matmul`), reductions run along the last dimension, cross-entropy over the
stacked rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..batched import matmul


@dataclass(frozen=True)
class LossConfig:
    temperature: float = 0.07
    margin: float = 0.2
    margin_weight: float = 0.5
    ce_weight: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def cross_entropy_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy of ``logits (..., classes)`` against ``targets (...)``."""
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return flat.reshape(targets.shape)


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-example InfoNCE: each anchor against its positive, other anchors' positives as negatives."""
    logits = matmul(anchor, positive.mT) / temperature
    n = anchor.shape[-2]
    return cross_entropy_rows(logits, torch.arange(n, device=anchor.device).expand(logits.shape[:-1]))


def margin_loss(anchor: torch.Tensor, positive: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-example mean of ReLU(s_neg - s_pos + margin) over in-batch anchors with another label."""
    s_pos = (anchor * positive).sum(-1, keepdim=True)
    s_neg = matmul(anchor, anchor.mT)
    neg = (labels[..., :, None] != labels[..., None, :]).to(anchor.dtype)
    hinge = F.relu(s_neg - s_pos + margin) * neg
    return hinge.sum(-1) / neg.sum(-1).clamp_min(1.0)


def block_loss(
    anchor: torch.Tensor, positive: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, cfg: LossConfig
) -> torch.Tensor:
    """InfoNCE + margin + cross-entropy, per example."""
    loss = info_nce(anchor, positive, cfg.temperature)
    if cfg.margin_weight:
        loss = loss + cfg.margin_weight * margin_loss(anchor, positive, labels, cfg.margin)
    if cfg.ce_weight:
        loss = loss + cfg.ce_weight * cross_entropy_rows(logits, labels)
    return loss


def supcon(
    emb: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    *,
    within: torch.Tensor | None = None,
    siblings: torch.Tensor | None = None,
    sibling_weight: float = 1.0,
) -> torch.Tensor:
    """Per-example supervised contrastive loss (Khosla et al., 2020) over the rows of ``emb``.

    Every other row with the anchor's label is a positive; the denominator holds every other row,
    or, with ``within``, only rows that share the anchor's ``within`` label (contrast inside the
    parent class). With ``siblings`` (labels one level up), negatives that share the anchor's sibling
    label count ``sibling_weight`` times in the denominator (hierarchical SupCon). Anchors with no
    positive in the batch get zero loss.
    """
    n = emb.shape[-2]
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    logits = matmul(emb, emb.mT) / temperature
    allowed = ~eye
    if within is not None:
        allowed = allowed & (within[..., :, None] == within[..., None, :])
    pos = allowed & (labels[..., :, None] == labels[..., None, :])
    log_w = torch.zeros_like(logits)
    if siblings is not None and sibling_weight != 1.0:
        hard = allowed & ~pos & (siblings[..., :, None] == siblings[..., None, :])
        log_w = log_w.masked_fill(hard, float(torch.log(torch.tensor(sibling_weight))))
    denom = torch.logsumexp((logits + log_w).masked_fill(~allowed, float("-inf")), dim=-1)
    npos = pos.sum(-1)
    pos_logits = (logits * pos).sum(-1) / npos.clamp_min(1)
    return torch.where(npos > 0, denom - pos_logits, torch.zeros_like(denom))


def posterior_nll(fine_logits: torch.Tensor, to_level: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example NLL of ``labels`` under the fine posterior summed into classes of a coarser level.

    ``to_level[f]`` is the class (at that level) of fine class ``f``; the identity map gives plain
    cross-entropy on the fine classes.
    """
    log_p = torch.log_softmax(fine_logits, dim=-1)
    # log sum_{f in c} p_f for each example's own class c only: a logsumexp over its members, (n, F)
    own = to_level == labels[..., None]
    return -torch.logsumexp(log_p.masked_fill(~own, float("-inf")), dim=-1)


def similarity_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-example KL(teacher || student) between in-batch neighbour distributions.

    Row i's distribution is the softmax over its similarities to the other rows (itself excluded);
    the teacher's side is taken as given (detached). Trains the student embedding to rank the batch
    as the teacher does, e.g. a short prefix to shortlist for its own full vector.
    """
    n = student.shape[-2]
    eye = torch.eye(n, dtype=torch.bool, device=student.device)
    teacher = teacher.detach()
    log_p = torch.log_softmax((matmul(teacher, teacher.mT) / temperature).masked_fill(eye, float("-inf")), dim=-1)
    log_q = torch.log_softmax((matmul(student, student.mT) / temperature).masked_fill(eye, float("-inf")), dim=-1)
    return (log_p.exp() * (log_p - log_q)).masked_fill(eye, 0.0).sum(-1)
