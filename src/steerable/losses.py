"""Per-example losses of one level on one embedding (as the original code computed them).

``block_loss = InfoNCE(e, e+; tau) + 0.5 * Margin(e, y; 0.2) + CE(classifier(e), y)``, returned per
example so that schedules can weight examples by their own prefix length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossConfig:
    temperature: float = 0.07
    margin: float = 0.2
    margin_weight: float = 0.5
    ce_weight: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-example InfoNCE: each anchor against its positive, other anchors' positives as negatives."""
    logits = anchor @ positive.T / temperature
    return F.cross_entropy(logits, torch.arange(len(anchor), device=anchor.device), reduction="none")


def margin_loss(anchor: torch.Tensor, positive: torch.Tensor, labels: torch.Tensor,
                margin: float) -> torch.Tensor:
    """Per-example mean of ReLU(s_neg - s_pos + margin) over in-batch anchors with another label."""
    s_pos = (anchor * positive).sum(-1, keepdim=True)
    s_neg = anchor @ anchor.T
    neg = (labels[:, None] != labels[None, :]).to(anchor.dtype)
    hinge = F.relu(s_neg - s_pos + margin) * neg
    return hinge.sum(-1) / neg.sum(-1).clamp_min(1.0)


def block_loss(anchor: torch.Tensor, positive: torch.Tensor, labels: torch.Tensor,
               logits: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """InfoNCE + margin + cross-entropy, per example."""
    loss = info_nce(anchor, positive, cfg.temperature)
    if cfg.margin_weight:
        loss = loss + cfg.margin_weight * margin_loss(anchor, positive, labels, cfg.margin)
    if cfg.ce_weight:
        loss = loss + cfg.ce_weight * F.cross_entropy(logits, labels, reduction="none")
    return loss
