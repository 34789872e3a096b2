"""Batched products over a leading axis round entry by entry as the 2-D products do."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from steerable.batched import linear, matmul


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


SIZES = (1, 2, 5, 13, 32, 150, 512)  # single rows, products under 400 multiply-adds, odd and large


@pytest.mark.parametrize("n_threads", [1, 2])
def test_matmul_entries_equal_their_own_products_forward_and_backward(n_threads, threads):
    """Each entry of ``matmul(a, b^T)`` and both gradients are exactly what ``a[s] @ b[s].T`` gives alone
    (fresh tensors, as a seed trained alone has them), over shapes where torch's batched kernel
    rounds otherwise; and the check never touches torch's global random stream."""
    threads(n_threads)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    for m, n, k in itertools.product(SIZES, SIZES, (1, 5, 13, 64)):
        a = torch.randn(3, m, k, generator=g).requires_grad_()
        b = torch.randn(3, n, k, generator=g).requires_grad_()
        out = matmul(a, b.mT)
        grad = torch.randn(out.shape, generator=g)
        out.backward(grad)
        for s in range(3):
            a1, b1 = a[s].detach().clone().requires_grad_(), b[s].detach().clone().requires_grad_()
            out1 = a1 @ b1.T
            out1.backward(grad[s].clone())
            shape = (m, n, k, s)
            assert torch.equal(out[s], out1), shape
            assert torch.equal(a.grad[s], a1.grad), shape
            assert torch.equal(b.grad[s], b1.grad), shape
    assert torch.equal(torch.rand(3), expected_draw)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_linear_entries_equal_f_linear(n_threads, threads):
    threads(n_threads)
    g = torch.Generator().manual_seed(1)
    for rows, d_in, d_out in [(1, 16, 4), (4, 16, 8), (13, 5, 7), (96, 384, 512), (3, 64, 150)]:
        x = torch.randn(4, rows, d_in, generator=g).requires_grad_()
        w = torch.randn(4, d_out, d_in, generator=g).requires_grad_()
        bias = torch.randn(4, d_out, generator=g).requires_grad_()
        out = linear(x, w, bias)
        grad = torch.randn(out.shape, generator=g)
        out.backward(grad)
        for s in range(4):
            x1, w1, b1 = (t[s].detach().clone().requires_grad_() for t in (x, w, bias))
            out1 = F.linear(x1, w1, b1)
            out1.backward(grad[s].clone())
            for got, want in ((out[s], out1), (x.grad[s], x1.grad), (w.grad[s], w1.grad), (bias.grad[s], b1.grad)):
                assert torch.equal(got, want), (rows, d_in, d_out, s)


def test_one_entry_and_plain_matrices_are_the_2d_product():
    a, b = torch.randn(1, 4, 8), torch.randn(1, 8, 3)
    assert torch.equal(matmul(a, b)[0], a[0] @ b[0])
    assert torch.equal(matmul(a[0], b[0]), a[0] @ b[0])
