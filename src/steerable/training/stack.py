"""The models of one training step, one per seed, as the step reads them: :class:`Seeds`.

A step trains one model, or several that differ only by seed (same head, schedule and settings) in
lockstep. The loss kinds (:mod:`steerable.training.terms`) work over a leading seed axis, so the
step's tensors are ``(seeds, rows, ...)`` either way. One seed runs its head's own forward pass. With
several, each parameter the step multiplies by (the head's linear layers, the prefix option's map
and projection, the posterior's classifier and prototypes, every level classifier's linear layer)
is a stacked leaf ``(seeds, ...)``, read by one batched product for all seeds; each seed's module
holds views of its slice as its parameters, so its optimiser state, its clipping and its model
(validation, the best epoch's state) are its own, and an update of either lands in both. The layer
norms run per seed (a batched layer norm does not round as a single one does).

Every seed's numbers are those of training it alone, bit for bit on the CPU at any thread count:
each seed's slice of a batched product is the product its own ``F.linear`` or ``@`` makes, forward
and backward (:mod:`steerable.batched`); reductions run along the last dimension, cross-entropy over
stacked rows; element-wise arithmetic is element-wise; each seed's dropout comes from a generator
seeded as its solo run seeds torch. ``tests/test_grouped.py`` compares every weight with
``torch.equal``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..batched import linear, matmul
from ..heads import Head, MLPHead
from ..model import SteerableModel

STACKED_HEADS = ("mlp", "linear")  # heads whose forward pass runs stacked for several seeds


class _Stacked:
    """Named parameters (and buffers) of every seed's model as stacked tensors ``(seeds, ...)``; each
    seed's module holds views of its slice in their place. Parameters become leaves that take the
    step's gradient (handed out to the seeds by :meth:`hand_out_grads`); :meth:`release` gives every
    module tensors of its own again."""

    def __init__(self, models: Sequence[SteerableModel], names: Sequence[str]):
        self.models = models
        self.tensors: dict[str, torch.Tensor] = {}
        for name in names:
            owner, attr = name.rsplit(".", 1)
            own = [getattr(m.get_submodule(owner), attr) for m in models]
            trains = isinstance(own[0], nn.Parameter)
            stacked = torch.stack([t.detach() for t in own]).requires_grad_(trains)
            self.tensors[name] = stacked
            for s, m in enumerate(models):
                module, view = m.get_submodule(owner), stacked.detach()[s]
                if trains:
                    setattr(module, attr, nn.Parameter(view))
                else:
                    module._buffers[attr] = view

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def owned(self, name: str) -> list[torch.Tensor]:
        owner, attr = name.rsplit(".", 1)
        return [getattr(m.get_submodule(owner), attr) for m in self.models]

    def hand_out_grads(self, skip: Sequence[set[str]]) -> None:
        """Give each seed's parameters their slice of the stacked gradients (views, nothing copied),
        except the names in ``skip[seed]`` (no gradient, as in the seed's solo step); the stacked
        tensors' are let go for the next step's."""
        for name, leaf in self.tensors.items():
            if not leaf.requires_grad:
                continue
            slices = leaf.grad.unbind(0) if leaf.grad is not None else [None] * len(self.models)
            for s, (p, g) in enumerate(zip(self.owned(name), slices)):
                p.grad = None if name in skip[s] else g
            leaf.grad = None

    def follow(self) -> None:
        """Point the stacked parameters at the memory the seeds' own parameters hold now (after the
        optimiser packed them into one buffer, seed after seed): each stacked tensor becomes a view
        with one seed's slice every so many elements."""
        for name, leaf in self.tensors.items():
            if not leaf.requires_grad:
                continue
            own = self.owned(name)
            first = own[0]
            gap = own[1].storage_offset() - first.storage_offset() if len(own) > 1 else first.numel()
            if any(
                p.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()
                or p.storage_offset() != first.storage_offset() + s * gap
                or not p.is_contiguous()
                for s, p in enumerate(own)
            ):
                raise RuntimeError(f"the seeds' {name} are not evenly spaced in one buffer")
            leaf.data = first.detach().as_strided(leaf.shape, (gap, *first.stride()), first.storage_offset())

    def release(self) -> None:
        for name, leaf in self.tensors.items():
            owner, attr = name.rsplit(".", 1)
            for m in self.models:
                module = m.get_submodule(owner)
                own = getattr(module, attr).detach().clone()
                if leaf.requires_grad:
                    setattr(module, attr, nn.Parameter(own))
                else:
                    module._buffers[attr] = own


def _linears(head: Head) -> list[str]:
    """The names (in the model) of the head's linear layers that run stacked."""
    names = {"linear": ["proj"], "mlp": ["trunk.0", "trunk.4", "proj"]}[head.kind]
    if head.prefix and head.prefix["mode"] == "init":
        names.append("prefix_map")
    if head.posterior:
        names.append("fine_classifier")
    return [f"head.{n}" for n in names]


class Seeds:
    """The models of one training step (:class:`~steerable.training.terms.Models`): one, or several
    that differ only by seed (heads of :data:`STACKED_HEADS`), read stacked.

    ``generators``: each seed's torch random stream for dropout (several seeds; one seed's forward
    pass draws from torch's global stream, as a module does)."""

    def __init__(self, models: Sequence[SteerableModel], generators: Sequence[torch.Generator] = ()):
        self.models, self.generators = list(models), list(generators)
        self.stacked: _Stacked | None = None
        self.layers: list[str] = []
        if len(self.models) > 1:
            head = self.head
            if head.kind not in STACKED_HEADS:
                raise ValueError(f"seeds train together with the {' and '.join(STACKED_HEADS)} heads, not {head.kind}")
            if len(self.generators) != len(self.models):
                raise ValueError("seeds trained together need a dropout generator each")
            self.layers = _linears(head) + [f"classifiers.{k}.linear" for k in range(len(self.models[0].classifiers))]
            names = [f"{n}.{p}" for n in self.layers for p in ("weight", "bias")]
            if head.posterior:
                names.append("head.prototypes")
            if head.prefix and head.prefix["mode"] != "init":
                names += ["head.prefix_mean", "head.prefix_components"]
            self.stacked = _Stacked(self.models, names)

    def __len__(self) -> int:
        return len(self.models)

    @property
    def head(self) -> Head:
        return self.models[0].head

    def level_map(self, level: int) -> torch.Tensor:
        return self.models[0].level_map(level)

    def parameters(self) -> list[list[nn.Parameter]]:
        """Each seed's parameters (an optimiser's parameter group each)."""
        return [list(m.parameters()) for m in self.models]

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Each seed's ``layer(x[s])`` as one batched product: (seeds, rows, in) -> (seeds, rows, out)."""
        assert self.stacked is not None
        return linear(x, self.stacked[f"{name}.weight"], self.stacked[f"{name}.bias"])

    def outputs(self, x: torch.Tensor, bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every seed's ``head.outputs(x[s])`` in training mode: blocks ``(seeds, rows, blocks, dim)`` in
        float32 and the posterior option's fine logits (or None)."""
        if self.stacked is None:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                blocks, logits = self.head.outputs(x.squeeze(0))
            return blocks.float().unsqueeze(0), None if logits is None else logits.unsqueeze(0)
        head, stacked = self.head, self.stacked
        if head.kind == "linear":
            feats = x
        else:  # mlp: Linear, LayerNorm, GELU, Dropout, Linear, LayerNorm, GELU; then the read-out
            assert isinstance(head, MLPHead)
            z = F.gelu(self._per_seed("head.trunk.1", self.linear("head.trunk.0", x)))
            if head.dropout > 0:  # F.dropout's arithmetic, each seed's mask from its own stream
                p = head.dropout
                noise = torch.empty_like(z)
                for s, g in enumerate(self.generators):
                    noise[s].bernoulli_(1 - p, generator=g)
                z = z * noise.div_(1 - p)
            feats = F.gelu(self._per_seed("head.trunk.5", self.linear("head.trunk.4", z)))
        blocks = self.linear("head.proj", feats)
        blocks = blocks.reshape(*blocks.shape[:2], head.num_blocks, head.block_dim)
        if head.prefix:
            mode = head.prefix["mode"]
            if mode == "init":
                first = self.linear("head.prefix_map", x)
            elif mode == "fixed":
                first = matmul(x - stacked["head.prefix_mean"][:, None], stacked["head.prefix_components"].mT)
            else:  # mix: trained on the free block, mixed only when encoding
                first = blocks[:, :, 0]
            blocks = torch.cat([first[:, :, None].to(blocks.dtype), blocks[:, :, 1:]], dim=2)
        logits = self.linear("head.fine_classifier", feats) if head.posterior else None
        prototypes = stacked["head.prototypes"] if head.posterior else None
        return head.finish(blocks, logits, prototypes)

    def classify(self, level: int, e: torch.Tensor) -> torch.Tensor:
        """Each seed's level classifier on its rows of ``e`` (seeds, rows, dim)."""
        if self.stacked is None:
            return self.models[0].classifiers[level](e.squeeze(0)).unsqueeze(0)
        return self.linear(f"classifiers.{level}.linear", self._per_seed(f"classifiers.{level}.norm", e))

    def _per_seed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.get_submodule(name)(xs) for m, xs in zip(self.models, x.unbind(0))])

    def hand_out_grads(self, classified: Sequence[set[int]], levels_read: set[int]) -> None:
        """After the backward pass: each seed's gradients as its solo step has them. A level classifier
        that the step read for some seeds but whose loss gave a seed no weight gets no gradient in
        that seed (its solo step would not have read it)."""
        skipped = [levels_read - mine for mine in classified]
        if self.stacked is not None:
            names = [{f"classifiers.{k}.linear.{p}" for k in skip for p in ("weight", "bias")} for skip in skipped]
            self.stacked.hand_out_grads(names)
        for m, skip in zip(self.models, skipped):
            for k in skip:
                for p in m.classifiers[k].parameters():
                    p.grad = None

    def follow(self) -> None:
        if self.stacked is not None:
            self.stacked.follow()

    def release(self) -> None:
        """Give every model weights of its own again (after training)."""
        if self.stacked is not None:
            self.stacked.release()
            self.stacked = None
