"""FlatAdamW: torch's AdamW and clipping, bit for bit, over flat buffers."""

import pytest
import torch

from steerable.training.adamw import FlatAdamW


def _params(seed: int, shapes) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


SHAPES = [(7, 5), (5,), (13,), (3, 4, 2), (1,), (33, 17)]  # odd sizes: every vector-loop tail


@pytest.mark.parametrize("groups", [1, 3])
def test_flat_steps_equal_torch_adamw_with_clipping_and_a_schedule(groups):
    ref = [_params(i, SHAPES) for i in range(groups)]
    flat = [[torch.nn.Parameter(p.detach().clone()) for p in ps] for ps in ref]
    torch_opt = torch.optim.AdamW([{"params": ps} for ps in ref], lr=3e-3, weight_decay=0.05, foreach=False)
    opt = FlatAdamW([{"params": ps} for ps in flat], lr=3e-3, weight_decay=0.05)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + t)) for o in (torch_opt, opt)]
    g = torch.Generator().manual_seed(0)
    for step in range(30):
        for ps, qs in zip(ref, flat):
            for p, q in zip(ps, qs):
                p.grad = torch.randn(p.shape, generator=g) * (10.0 if step % 7 == 0 else 0.1)
                q.grad = p.grad.clone()
        for ps in ref:
            torch.nn.utils.clip_grad_norm_(ps, 1.0, foreach=False)
        opt.clip_grad_norm(1.0)
        torch_opt.step()
        opt.step()
        for s in scheds:
            s.step()
        assert opt.packed
        assert all(torch.equal(p, q) for ps, qs in zip(ref, flat) for p, q in zip(ps, qs))
    for ps, qs in zip(ref, flat):
        for p, q in zip(ps, qs):
            assert torch.equal(p, q)
            for key in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(torch_opt.state[p][key], opt.state[q][key]), key
    opt.unpack()
    assert len({q.untyped_storage().data_ptr() for qs in flat for q in qs}) == groups * len(SHAPES)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_one_pass_over_every_group_equals_torch_adamw_for_1000_steps(n_threads, threads):
    """Groups of the same shapes (seeds trained together) run each operation once over all of them,
    a cache-sized stretch at a time (a tensor larger than the stretch crosses its edges), and clip
    each group by its own norm in one pass: torch's AdamW and clipping, bit for bit, for 1,000 steps."""
    threads(n_threads)
    shapes = [*SHAPES, (450, 400)]  # three groups: more than one stretch of the buffers
    ref = [_params(i, shapes) for i in range(3)]
    flat = [[torch.nn.Parameter(p.detach().clone()) for p in ps] for ps in ref]
    torch_opt = torch.optim.AdamW([{"params": ps} for ps in ref], lr=1e-3, weight_decay=0.01, foreach=False)
    opt = FlatAdamW([{"params": ps} for ps in flat], lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(3)
    for step in range(1000):
        for ps, qs in zip(ref, flat):
            scale = 10.0 if step % 5 == 0 else 1e-3
            for p, q in zip(ps, qs):
                p.grad = torch.randn(p.shape, generator=g) * scale
                q.grad = p.grad.clone()
        for ps in ref:
            torch.nn.utils.clip_grad_norm_(ps, 1.0, foreach=True)
        opt.clip_grad_norm(1.0)
        torch_opt.step()
        opt.step()
    assert opt.packed and opt._flat is not None and opt._flat.even
    for ps, qs in zip(ref, flat):
        for p, q in zip(ps, qs):
            assert torch.equal(p, q)
            for key in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(torch_opt.state[p][key], opt.state[q][key]), key


def test_parameters_without_gradients_are_left_alone_then_torch_takes_over():
    """A parameter no loss reaches is not packed (torch never updates it); once a packed parameter
    misses a gradient, the steps are torch's own, on the same state."""
    ref, flat = _params(1, SHAPES), _params(1, SHAPES)
    torch_opt = torch.optim.AdamW(ref, lr=1e-2, weight_decay=0.1, foreach=True)
    opt = FlatAdamW([{"params": flat}], lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    for step in range(12):
        skip = {2} if step < 8 else {2, 4}  # parameter 2 never trains; parameter 4 stops at step 8
        for i, (p, q) in enumerate(zip(ref, flat)):
            p.grad = q.grad = None
            if i not in skip:
                p.grad = torch.randn(p.shape, generator=g)
                q.grad = p.grad.clone()
        torch.nn.utils.clip_grad_norm_(ref, 0.5, foreach=True)
        opt.clip_grad_norm(0.5)
        torch_opt.step()
        opt.step()
        assert opt.packed
        for p, q in zip(ref, flat):
            assert torch.equal(p, q)
    assert 2 not in [i for i, p in enumerate(flat) if opt.state.get(p)]


def test_state_survives_a_checkpoint_round_trip():
    """State loaded before the first step is packed with the parameters, and the steps go on as torch's."""
    a, b = _params(2, SHAPES), _params(2, SHAPES)
    first = FlatAdamW([{"params": a}], lr=1e-2, weight_decay=0.01)
    g = torch.Generator().manual_seed(2)
    grads = [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(6)]
    for step in range(3):
        for p, gr in zip(a, grads[step]):
            p.grad = gr.clone()
        first.step()
    state = first.state_dict()
    saved = {i: {k: v.clone() for k, v in s.items()} for i, s in state["state"].items()}
    for p, q in zip(a, b):
        q.data.copy_(p.detach())
    second = FlatAdamW([{"params": b}], lr=1e-2, weight_decay=0.01)
    second.load_state_dict({"state": saved, "param_groups": state["param_groups"]})
    for step in range(3, 6):
        for p, q, gr in zip(a, b, grads[step]):
            p.grad, q.grad = gr.clone(), gr.clone()
        first.step()
        second.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)
    with pytest.raises(RuntimeError, match="before its first step"):
        second.load_state_dict({"state": saved, "param_groups": state["param_groups"]})
