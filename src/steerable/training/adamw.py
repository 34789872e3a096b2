"""AdamW and gradient clipping over parameters packed into one flat buffer: torch's arithmetic, fewer calls.

On the CPU, torch's foreach AdamW runs each of its element-wise operations once per parameter tensor
(18 tensors for the MLP head and its classifiers: about 150 calls a step), and at the recipe's batch
sizes those calls, more than the arithmetic, are the optimiser's time. :class:`FlatAdamW` packs the
parameters that train into one buffer on its first step (each parameter's data becomes a view of it),
keeps their gradients and both moments in buffers of the same layout, and runs each operation once per
parameter group over the group's stretch of the buffers, or once over every group where the groups'
settings are the same (seeds trained together, one group each). Every element goes through torch's
operations, in torch's order, with torch's scalars, so the weights are those of ``torch.optim.AdamW``
bit for bit (``tests/test_optim.py``).

:meth:`FlatAdamW.clip_grad_norm` clips each parameter group by its own norm, as
``torch.nn.utils.clip_grad_norm_`` over that group's parameters does: the norm is torch's, the scaling
one multiplication over the group's gradients; where every group packs tensors of the same sizes, one
norm call over all of them, each group's norm of its norms along a row, and one multiplication.

The flat path needs every packed parameter to have a gradient in every step and no other parameter to
have one (parameters that no loss reaches, such as the classifier of a level a method never trains,
are simply not packed). From the first step where that fails, the optimiser takes torch's own steps on
the same state for the rest of the training: torch skips a parameter without a gradient, so the step
counts that the flat path shares part ways.
"""

from __future__ import annotations

from functools import cached_property
from typing import Iterable

import torch

# elements per pass of each of AdamW's operations: its buffers' stretches (2 MiB each) stay in cache
# from one operation to the next; element-wise arithmetic does not depend on where a pass starts
CHUNK = 1 << 19


class FlatAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` (decoupled weight decay; no amsgrad, maximize or capturable) with each
    step's operations run over flat buffers. Call :meth:`unpack` when training ends, so that every
    parameter owns its memory again (a saved model must not share storage between tensors)."""

    def __init__(self, params: Iterable, lr: float, weight_decay: float):
        super().__init__(params, lr=lr, weight_decay=weight_decay, foreach=True)
        self._flat: _Flat | None = None
        self._lockstep = True  # the flat path is still exact
        self._ready: bool | None = None  # this step's gradients gathered into the flat buffer (None: not yet asked)

    @torch.no_grad()
    def clip_grad_norm(self, max_norm: float) -> None:
        """Scale each parameter group's gradients so that their norm is at most ``max_norm``, as
        ``torch.nn.utils.clip_grad_norm_(group params, max_norm, foreach=True)`` does."""
        if not self._gather():
            for group in self.param_groups:
                torch.nn.utils.clip_grad_norm_(group["params"], max_norm, foreach=True)
            return
        flat = self._flat
        assert flat is not None  # a flat step has its buffers
        if flat.even:  # every group alike (seeds trained together): each tensor's norm in every group at once
            groups, n = len(flat.stretches), flat.stretches[0].stop
            norms = [
                torch.linalg.vector_norm(flat.grad.as_strided((groups, size), (n, 1), at), 2.0, dim=1)
                for at, size in flat.layout
            ]
            total = torch.linalg.vector_norm(torch.stack(norms, dim=1), 2.0, dim=1)  # each group's norm of norms
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
            flat.grad.view(groups, n).mul_(coef[:, None])
            return
        for views, stretch in zip(flat.grad_views, flat.stretches):
            total = torch.nn.utils.get_total_norm(views, 2.0, error_if_nonfinite=False, foreach=True)
            flat.grad[stretch].mul_(torch.clamp(max_norm / (total + 1e-6), max=1.0))

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]  # takes no closure (raises on one)
        if closure is not None:
            raise ValueError("FlatAdamW takes no closure")
        ready, self._ready = self._gather(), None
        if not ready:
            return super().step()
        f = self._flat
        assert f is not None  # a flat step has its buffers
        f.steps.add_(torch.tensor(1.0), alpha=1.0)
        t = f.steps[0].item()  # every packed parameter's count (torch reads each one's like this)
        for group, whole in self._passes(f):
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            bias_correction1, bias_correction2 = 1 - beta1**t, 1 - beta2**t
            for at in range(whole.start, whole.stop, CHUNK):  # a stretch at a time, while it is in cache
                stretch = slice(at, min(at + CHUNK, whole.stop))
                p, g, m, v, d = (b[stretch] for b in (f.param, f.grad, f.exp_avg, f.exp_avg_sq, f.scratch))
                if wd != 0:
                    p.mul_(1 - lr * wd)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2)
                v.addcmul_(g, g, value=1 - beta2)
                torch.sqrt(v, out=d)
                d.div_(bias_correction2**0.5)
                d.add_(eps)
                p.addcdiv_(m, d, value=(lr / bias_correction1) * -1)
        return None

    def _passes(self, f: "_Flat") -> list[tuple[dict, slice]]:
        """(settings, stretch of the buffers) of each pass of a step: one over every group where the
        groups' settings are the same (they are floats, so equal settings give equal arithmetic)."""
        keys = ("lr", "betas", "eps", "weight_decay")
        first = self.param_groups[0]
        if all(all(g[k] == first[k] for k in keys) for g in self.param_groups):
            return [(first, slice(f.stretches[0].start, f.stretches[-1].stop))]
        return list(zip(self.param_groups, f.stretches))

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self._ready = None  # the next gradients are gathered anew

    def unpack(self) -> None:
        """Give every packed parameter (and its optimiser state) memory of its own."""
        if self._flat is None:
            return
        for p in self._flat.params:
            p.data = p.data.clone()
            self.state[p] = {k: v.clone() for k, v in self.state[p].items()}
        self._flat, self._lockstep = None, False

    def load_state_dict(self, state_dict: dict) -> None:
        if self._flat is not None:
            raise RuntimeError("load the optimiser's state before its first step")
        super().load_state_dict(state_dict)

    @property
    def packed(self) -> bool:
        return self._flat is not None

    def _gather(self) -> bool:
        """Whether this step runs flat; if so, every gradient is copied into the flat gradient buffer
        (once a step; the first step packs the parameters)."""
        if self._ready is not None:
            return self._ready
        if self._lockstep and self._flat is None:
            self._flat = _Flat.pack(self)
            self._lockstep = self._flat is not None
        f = self._flat
        if f is None:
            self._lockstep = False
        elif self._lockstep and not (
            all(p.grad is not None for p in f.params) and all(p.grad is None for p in f.others)
        ):
            self._lockstep = False
        if self._lockstep and f is not None:
            torch.cat([p.grad.reshape(-1) for p in f.params if p.grad is not None], out=f.grad)
        self._ready = self._lockstep
        return self._ready


class _Flat:
    """The packed parameters (each group's with a gradient, in order) and the buffers of their layout."""

    def __init__(
        self, params: list[torch.Tensor], others: list[torch.Tensor], param: torch.Tensor, steps: torch.Tensor
    ):
        self.params, self.others, self.param = params, others, param
        self.steps = steps  # one step counter per parameter (torch's state), all equal while in lockstep
        self.stretches: list[slice] = []  # each parameter group's part of the buffers
        self.grad, self.exp_avg, self.exp_avg_sq, self.scratch = (torch.empty_like(param) for _ in range(4))
        self.grad_views: list[list[torch.Tensor]] = []

    @cached_property
    def even(self) -> bool:
        """Whether every group packs tensors of the same sizes (the seeds of one model), one after another."""
        shapes = [[v.shape for v in views] for views in self.grad_views]
        n = self.stretches[0].stop
        return (
            len(shapes) > 1
            and all(s == shapes[0] for s in shapes)
            and all(st.start == g * n for g, st in enumerate(self.stretches))
        )

    @cached_property
    def layout(self) -> list[tuple[int, int]]:
        """(offset, size) of each tensor of the first group in the buffers."""
        return [(int(v.storage_offset() - self.grad.storage_offset()), v.numel()) for v in self.grad_views[0]]

    @classmethod
    def pack(cls, opt: FlatAdamW) -> "_Flat | None":
        """Pack the parameters that have a gradient now, or None where the flat path would not be
        torch's: sparse or mixed-device gradients, or step counts that already differ."""
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        others = [p for g in opt.param_groups for p in g["params"] if p.grad is None]
        if not params or any(
            p.grad.is_sparse or p.dtype != params[0].dtype or p.device != params[0].device for p in params
        ):
            return None
        counts = {float(opt.state[p]["step"]) if opt.state.get(p) else 0.0 for p in params}
        if len(counts) > 1 or any(opt.state.get(p) for p in others):
            return None
        sizes = [p.numel() for p in params]
        param = torch.empty(sum(sizes), dtype=params[0].dtype, device=params[0].device)
        steps = torch.full((len(params),), counts.pop(), dtype=torch.float32)
        flat = cls(params, others, param, steps)
        flat.exp_avg.zero_()
        flat.exp_avg_sq.zero_()
        at, i = 0, 0
        for group in opt.param_groups:
            start, views = at, []
            for p in group["params"]:
                if p.grad is None:
                    continue
                n, shape = p.numel(), p.shape
                state = opt.state[p]
                for key, buf in (("exp_avg", flat.exp_avg), ("exp_avg_sq", flat.exp_avg_sq)):
                    if key in state:
                        buf[at : at + n].copy_(state[key].reshape(-1))
                    state[key] = buf[at : at + n].view(shape)
                state["step"] = steps[i]
                param[at : at + n].copy_(p.detach().reshape(-1))
                p.data = param[at : at + n].view(shape)
                views.append(flat.grad[at : at + n].view(shape))
                at, i = at + n, i + 1
            flat.stretches.append(slice(start, at))
            flat.grad_views.append(views)
        return flat
