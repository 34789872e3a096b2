"""Products over a leading batch axis (seeds trained together) that round as the 2-D ones do.

Each batch entry of :func:`matmul` and :func:`linear` is, bit for bit, what ``@`` and ``F.linear`` give
on that entry alone, forward and backward (the backward products follow ``torch.mm``'s own choice
between ``grad @ b^T`` and ``(b @ grad^T)^T`` by the operand's layout). Where torch's batched kernel
(``bmm``, ``baddbmm``) rounds as its 2-D one, one batched call computes every entry; where it may
not, the entries run one by one, each in memory of its own (aligned as a tensor computed alone is):
always below 400 multiply-adds (torch's CPU kernel loops over them itself) and for a single row or
column (vector kernels); otherwise as checked once per shape, layout and thread count (MKL's batched
GEMM picks other kernels than its single GEMM for some shapes), on random operands drawn from a
private stream (torch's global random stream, which dropout reads, is never touched). On a GPU the
batched call is used as it is: there, numbers agree within floating-point tolerance, not bit for bit.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

PROBES = 4  # random draws that must agree before a shape runs batched
_checked: dict[tuple, bool] = {}
_probe = torch.Generator().manual_seed(0)


def _like(t: torch.Tensor) -> torch.Tensor:
    """Random numbers laid out as ``t``: its sizes, strides and alignment (of its first element to 64 bytes)."""
    size = t.element_size()
    extent = 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride()))
    base = torch.empty(extent + 64 // size, dtype=t.dtype)
    shift = ((t.data_ptr() - base.data_ptr()) % 64) // size
    out = base.as_strided(t.shape, t.stride(), shift)
    out.copy_(torch.randn(t.shape, generator=_probe, dtype=t.dtype))
    return out


def _batch_rounds_alike(kind: str, batched: Callable, single: Callable, *args: torch.Tensor) -> bool:
    """Whether ``batched(*args)`` equals ``single`` applied entry by entry, for operands laid out as
    ``args`` at this thread count (random draws, remembered)."""
    key = (kind, torch.get_num_threads(), *((t.shape, t.stride(), t.dtype, t.data_ptr() % 64) for t in args))
    if key not in _checked:
        try:
            same = True
            for _ in range(PROBES):
                probe = [_like(t) for t in args]
                whole = batched(*probe)
                same = same and all(
                    torch.equal(whole[s], single(*(_own(t[s]) for t in probe))) for s in range(len(whole))
                )
        except RuntimeError:  # a layout random numbers cannot be written into (overlapping strides)
            same = False
        _checked[key] = same
    return _checked[key]


def _may_batch(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a batched product of these operands may round as the 2-D one: not on the CPU below 400
    multiply-adds (torch's own loop) or for a single row or column (vector kernels), where the
    entries always run one by one."""
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    return m * n * k >= 400 and min(m, n) > 1


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a[s] @ b[s]`` for every entry s (no autograd), each as its 2-D product rounds."""
    if a.device.type != "cpu" or (_may_batch(a, b) and _batch_rounds_alike("bmm", torch.bmm, torch.mm, a, b)):
        return torch.bmm(a, b)
    return torch.stack([_own(x).mm(_own(y)) for x, y in zip(a, b)])


def baddbmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``bias[s] + a[s] @ b[s]`` for every entry s (no autograd), each as ``torch.addmm`` rounds it."""

    def batched(c: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(c[:, None, :], x, y)

    if a.device.type != "cpu" or (
        _may_batch(a, b) and _batch_rounds_alike("baddbmm", batched, torch.addmm, bias, a, b)
    ):
        return batched(bias, a, b)
    return torch.stack([torch.addmm(c, _own(x), _own(y)) for c, x, y in zip(bias, a, b)])


def _own(t: torch.Tensor) -> torch.Tensor:
    """An entry in memory of its own, laid out as it is: aligned as a tensor computed alone would be
    (for some shapes the 2-D kernels' rounding depends on the operands' alignment)."""
    return t.clone()


def _column_major(t: torch.Tensor) -> bool:
    """Whether each entry of ``t`` is laid out column by column (``torch.mm``'s backward test)."""
    return t.stride(-2) == 1 and t.stride(-1) == t.shape[-2]


def _grads(
    g: torch.Tensor, a: torch.Tensor, b: torch.Tensor, a_cols: bool, b_cols: bool, needs: tuple[bool, ...]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The gradients of ``a @ b`` as ``torch.mm``'s backward computes them for each entry."""
    ga = gb = None
    if needs[0]:
        ga = bmm(b, g.mT).mT if a_cols else bmm(g, b.mT)
    if needs[1]:
        gb = bmm(g.mT, a).mT if b_cols else bmm(a.mT, g)
    return ga, gb


class _Matmul(torch.autograd.Function):
    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return bmm(a, b)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        a, b = inputs
        ctx.save_for_backward(a, b)
        ctx.cols = (_column_major(a), _column_major(b))

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        a_cols, b_cols = ctx.cols
        return _grads(g, a, b, a_cols, b_cols, ctx.needs_input_grad)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return baddbmm(bias, x, w.mT)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x, w, _ = inputs
        ctx.save_for_backward(x, w)
        ctx.x_cols = _column_major(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w = ctx.saved_tensors
        gx, gwt = _grads(g, x, w.mT, ctx.x_cols, _column_major(w.mT), ctx.needs_input_grad[:2])
        gb = g.sum(1) if ctx.needs_input_grad[2] else None
        return gx, None if gwt is None else gwt.mT, gb


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` over a leading batch axis (or of 2-D operands), each entry as its own 2-D ``@``."""
    if a.ndim == 2:
        return a @ b
    if a.shape[0] == 1:
        return (a.squeeze(0) @ b.squeeze(0)).unsqueeze(0)
    return _Matmul.apply(a, b)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Each entry's ``F.linear(x[s], weight[s], bias[s])``: (batch, rows, in) -> (batch, rows, out)."""
    return _Linear.apply(x, weight, bias)
