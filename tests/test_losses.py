"""steerable.losses: the per-example losses by hand, and the loss kinds' gradients per block."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steerable.schedule import Schedule, Term
from steerable.training import TrainConfig
from steerable.training.loop import PositiveSampler, schedule_loss
from steerable.training.losses import posterior_nll, similarity_distillation, supcon

from conftest import synthetic_model


def _unit(x):
    return torch.nn.functional.normalize(x, dim=-1)


def test_supcon_matches_a_hand_computed_value():
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=-1)
    y = torch.tensor([0, 0, 1])
    loss = supcon(e, y, temperature=1.0)
    s = (e @ e.T).numpy()
    want0 = -(s[0, 1] - math.log(math.exp(s[0, 1]) + math.exp(s[0, 2])))
    assert loss[0].item() == pytest.approx(want0, rel=1e-5)
    assert loss[2].item() == 0.0  # no positive in the batch


def test_supcon_within_drops_other_parents_from_the_denominator_and_siblings_weigh_more():
    e = torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    fine = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    coarse = fine // 2
    plain = supcon(e, fine, 0.5)
    within = supcon(e, fine, 0.5, within=coarse)
    assert (within < plain).all()  # fewer terms in every denominator
    hard = supcon(e, fine, 0.5, siblings=coarse, sibling_weight=1.3)
    assert (hard > plain).all()


def test_posterior_nll_sums_children_and_reduces_to_cross_entropy():
    logits = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 5])
    ident = torch.arange(6)
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(posterior_nll(logits, ident, y), ce, atol=1e-6)
    parents = torch.tensor([0, 0, 0, 1, 1, 1])
    p = logits.softmax(-1)
    want = -torch.log(torch.stack([p[:, :3].sum(1), p[:, 3:].sum(1)], 1))[torch.arange(5), y // 3]
    assert torch.allclose(posterior_nll(logits, parents, y // 3), want, atol=1e-6)


def test_posterior_nll_gives_the_every_class_form_bit_for_bit():
    """Only each example's own class is summed (an (n, F) logsumexp, not (n, classes, F) for every
    class); its loss and gradients are the same numbers, on the identity map and on coarser ones."""

    def every_class(logits, to_level, labels):  # the sum into every class, then the label's picked
        log_p = torch.log_softmax(logits, dim=-1)
        classes = torch.arange(int(to_level.max()) + 1)
        masked = log_p[:, None, :].masked_fill(to_level[None, None, :] != classes[None, :, None], float("-inf"))
        return -torch.logsumexp(masked, dim=-1).gather(1, labels[:, None]).squeeze(1)

    g = torch.Generator().manual_seed(3)
    for n, f, k in ((64, 150, 150), (64, 150, 10), (7, 2, 2), (192, 77, 5), (64, 219, 70)):
        to_level = torch.cat([torch.arange(k), torch.randint(0, k, (f - k,), generator=g)])  # k == f: identity
        logits = (5 * torch.randn(n, f, generator=g)).requires_grad_()
        y = to_level[torch.randint(0, f, (n,), generator=g)]
        fast, slow = posterior_nll(logits, to_level, y), every_class(logits, to_level, y)
        assert torch.equal(fast, slow)
        w = torch.rand(n, generator=g)
        assert torch.equal(
            torch.autograd.grad((fast * w).sum(), logits)[0], torch.autograd.grad((slow * w).sum(), logits)[0]
        )


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


def test_a_backbone_teacher_is_the_heads_normalised_input():
    model, x, y = synthetic_model()
    idx, rng = np.arange(32), np.random.default_rng(0)
    term = Term((1, 0, 0, 0), ((0, 0),) * 4, loss="distill", temperature=0.1, teacher="backbone")
    got = schedule_loss(model, Schedule("t", (term,)), torch.from_numpy(x), y, idx, {}, rng, TrainConfig().loss)
    prefix = model.head.embed(model.head.outputs(torch.from_numpy(x[idx]))[0], 1)
    want = similarity_distillation(prefix, _unit(torch.from_numpy(x[idx])), 0.1).mean()
    assert torch.allclose(got, want, atol=1e-6)
    own = Term((1, 0, 0, 0), ((0, 0),) * 4, loss="distill", temperature=0.1)
    assert not torch.allclose(
        got, schedule_loss(model, Schedule("t", (own,)), torch.from_numpy(x), y, idx, {}, rng, TrainConfig().loss)
    )


def test_a_sign_aware_distill_term_ranks_the_prefixs_soft_signs():
    """``sign_slope``: the student is tanh(slope * sqrt(d) * prefix), made unit-length; a steep slope
    ranks as the sign bits do."""
    model, x, y = synthetic_model()
    idx, rng = np.arange(32), np.random.default_rng(0)
    term = Term((1, 0, 0, 0), ((0, 0),) * 4, loss="distill", temperature=0.1, sign_slope=2.0)
    got = schedule_loss(model, Schedule("t", (term,)), torch.from_numpy(x), y, idx, {}, rng, TrainConfig().loss)
    blocks = model.head.outputs(torch.from_numpy(x[idx]))[0]
    prefix, full = model.head.embed(blocks, 1), model.head.embed(blocks, 4)
    soft = _unit(torch.tanh(2.0 * prefix.shape[-1] ** 0.5 * prefix))
    assert torch.allclose(got, similarity_distillation(soft, full, 0.1).mean(), atol=1e-6)
    plain = Term((1, 0, 0, 0), ((0, 0),) * 4, loss="distill", temperature=0.1)
    assert not torch.allclose(
        got, schedule_loss(model, Schedule("t", (plain,)), torch.from_numpy(x), y, idx, {}, rng, TrainConfig().loss)
    )
    steep = _unit(torch.tanh(1e4 * prefix))
    assert torch.allclose(steep, _unit(torch.sign(prefix)), atol=1e-4)  # the limit: the sign bits' ranking


def test_grad_scale_zero_keeps_a_terms_gradient_off_the_first_block():
    model, x, y = synthetic_model()
    fine_full = Term((0, 0, 0, 1), ((0, 1),) * 4, loss="supcon", temperature=0.1, ce_weight=0.0, grad=(0, 1, 1, 1))
    sch = Schedule("t", (fine_full,))
    idx = np.arange(64)
    rng = np.random.default_rng(0)
    pos = {1: PositiveSampler(y[:, 1])(idx, rng)}
    schedule_loss(model, sch, torch.from_numpy(x), y, idx, pos, rng, TrainConfig().loss).backward()
    g = model.head.proj.weight.grad
    assert g[:8].abs().max() == 0 and g[8:].abs().max() > 0


def test_a_negative_grad_scale_reverses_the_gradient_on_that_block_only():
    def grad(scale):
        model, x, y = synthetic_model()
        term = Term((0, 0, 0, 1), ((0, 1),) * 4, loss="supcon", temperature=0.1, ce_weight=0.0, grad=(scale, 1, 1, 1))
        idx, rng = np.arange(64), np.random.default_rng(0)
        pos = {1: PositiveSampler(y[:, 1])(idx, rng)}
        schedule_loss(
            model, Schedule("t", (term,)), torch.from_numpy(x), y, idx, pos, rng, TrainConfig().loss
        ).backward()
        return model.head.proj.weight.grad

    plain, reversed_ = grad(1.0), grad(-0.5)
    assert plain[:8].abs().max() > 0
    assert torch.allclose(reversed_[:8], -0.5 * plain[:8], atol=1e-6)  # block 1: scaled and flipped
    assert torch.allclose(reversed_[8:], plain[8:], atol=1e-6)  # the other blocks: untouched


@pytest.mark.parametrize("name", ["v5", "mrl", "uhmt", "inverted", "mrl_distill", "anchored"])
def test_building_a_loss_never_reads_a_value_back_from_the_tensors(name):
    """Which levels a prefix path trains is decided on the host: on a GPU, reading a tensor's value
    back (``bool``, ``item``) would wait for the device on every step."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from steerable.methods import preset

    class ReadBacks(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += func is torch.ops.aten._local_scalar_dense.default
            return func(*args, **(kwargs or {}))

    model, x, y = synthetic_model()
    sch = preset(name)
    idx, rng = np.arange(32), np.random.default_rng(0)
    pos = {k: PositiveSampler(y[:, k])(idx, rng) for k in sch.supervised_levels()}
    with ReadBacks() as reads:
        loss = schedule_loss(model, sch, torch.from_numpy(x), y, idx, pos, rng, TrainConfig().loss)
    assert reads.count == 0
    assert loss.requires_grad and torch.isfinite(loss)
