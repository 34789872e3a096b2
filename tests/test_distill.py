"""Prefix distillation: the 64-d prefix learns to rank the batch as its own full vector does, so a
short shortlist holds the full vector's nearest neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerable.losses import similarity_distillation
from steerable.methods import preset
from steerable.schedule import Schedule, Term

from conftest import train_synthetic_preset


def _unit(x):
    return torch.nn.functional.normalize(x, dim=-1)


def test_distillation_is_zero_for_the_teachers_own_ranking_and_trains_only_the_student():
    g = torch.Generator().manual_seed(0)
    teacher = _unit(torch.randn(12, 8, generator=g))
    assert torch.allclose(similarity_distillation(teacher, teacher, 0.1), torch.zeros(12), atol=1e-5)
    student = _unit(torch.randn(12, 4, generator=g)).requires_grad_()
    teacher = teacher.clone().requires_grad_()
    loss = similarity_distillation(student, teacher, 0.1)
    assert (loss > 0).all()
    loss.sum().backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


def _shortlist_recall(name: str, K: int = 10) -> float:
    """Share of the full vector's top 10 (held-out third vs the rest) inside the prefix's top K."""
    (p_doc, f_doc), (p_q, f_q), _, _ = train_synthetic_preset(name, epochs=8, lr=1e-3)
    truth = np.argsort(-(f_q @ f_doc.T), axis=1)[:, :10]
    short = np.argsort(-(p_q @ p_doc.T), axis=1)[:, :K]
    return float(np.mean([len(set(t) & set(s)) / 10 for t, s in zip(truth, short)]))


def test_a_distilled_prefix_shortlists_its_full_vectors_neighbours_better_than_mrls():
    mrl, distilled = _shortlist_recall("mrl"), _shortlist_recall("mrl_distill")
    assert distilled > mrl + 0.04  # top 10 of the prefix vs top 10 of the full vector (0.82 vs 0.76)


def test_the_distillation_term_round_trips_and_needs_no_labels():
    s = preset("mrl_distill")
    assert Schedule.from_dict(s.to_dict()) == s
    term = s.terms[-1]
    assert term.loss == "distill" and term.probs[0] == 1.0 and not any(w for r in term.levels for w in r)
    with pytest.raises(ValueError, match="unknown loss"):
        Term((1.0,), ((0.0,),), loss="distil")
