"""Trainable heads: pooled backbone vector -> ``num_blocks`` blocks of ``block_dim`` dims.

Every head returns raw blocks ``(batch, num_blocks, block_dim)``; :meth:`Head.embed` turns the first
``j`` blocks into a unit-length prefix embedding of ``j * block_dim`` dims. Heads whose
``prefix_is_truncation`` is True define the prefix as the renormalised first dims of the full
embedding; the fractal head, as coded in the original, applies a final LayerNorm to the full
embedding only, so its prefix is not a truncation of its full vector.

Three options work with any trainable head (each is saved in the head's config):

- ``segments``: block counts, e.g. ``(1, 3)``. Each segment is L2-normalised on its own and the
  segments weigh equally in the embedding, so the prefix cannot drown the suffix (or vice versa).
- ``posterior``: ``{"parents": [...], "mix": d}``. A fine classifier on the head's features gives
  a posterior; summed over each coarse class's children (``parents[f]`` is the coarse class of fine
  class ``f``) and mapped through learned coarse prototypes, it becomes the first block. With
  ``mix`` = 1 the first block is that coarse-posterior bottleneck alone (rank at most the number of
  coarse classes); with ``mix`` = 0 it is the free read-out; in between,
  ``d * n(post) / s_post + (1 - d) * n(free) / s_free``, where ``scales`` = (s_post, s_free) are
  the within-coarse-class spreads (median distance to the class mean) of the two parts on the
  training data (:meth:`Head.calibrate`), so that at ``d`` = 0.5 both parts vary equally inside a
  coarse class. ``train_mix`` (if given) is the mix used while training; ``mix`` can then be changed
  after training (the steerability dial).
- ``prefix``: ``{"projection": name, "setting": x, "mode": m}``. The first block comes from a
  closed-form projection of the backbone (:mod:`steerable.projections`), fitted on the training
  vectors and labels before training (:meth:`Head.fit`). ``fixed``: the block is that projection's
  prefix and is never trained; ``init``: a linear map of the backbone initialised at it, then trained;
  ``mix`` (with ``"mix": a``): the block is trained freely, and encoding uses ``a * n(free) + (1 - a)
  * n(projection)``, so ``a`` can be changed after training.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..batched import matmul
from ..projections import PROJECTIONS, fit_projection

PREFIX_MODES = ("fixed", "init", "mix")


class Head(nn.Module):
    """Base class: subclasses implement :meth:`blocks`; the prefix logic lives here."""

    kind: str = ""
    prefix_is_truncation: bool = True
    trainable: bool = True  # False: a head with nothing to train (it may be fitted, see fit)
    # what the options add (set_options), as their types
    prefix_mean: torch.Tensor
    prefix_components: torch.Tensor
    prefix_map: nn.Linear
    parents: torch.Tensor
    prototypes: nn.Parameter
    fine_classifier: nn.Linear

    @property
    def feature_dim(self) -> int:
        """Width of the features the posterior classifier reads."""
        return 0

    def __init__(self, input_dim: int, num_blocks: int = 4, block_dim: int = 64):
        super().__init__()
        if num_blocks < 2:
            raise ValueError(f"num_blocks must be at least 2, got {num_blocks}")
        if block_dim < 1:
            raise ValueError(f"block_dim must be positive, got {block_dim}")
        self.input_dim, self.num_blocks, self.block_dim = input_dim, num_blocks, block_dim
        self.segments: tuple[int, ...] | None = None
        self.posterior: dict | None = None
        self.prefix: dict | None = None

    def fit(self, x: torch.Tensor, labels: np.ndarray | None = None) -> None:
        """Set what the head computes from the training vectors (and their labels, (n, levels)), before
        any training: the fitted heads' maps and the ``prefix`` option's projection; a no-op otherwise."""
        if self.prefix:
            mean, components = fit_projection(
                self.prefix["projection"], x.double().numpy(), labels, self.block_dim, self.prefix.get("setting")
            )
            with torch.no_grad():
                self.prefix_mean.copy_(torch.from_numpy(mean).float())
                self.prefix_components.copy_(torch.from_numpy(components[: self.block_dim]).float())
                if self.prefix["mode"] == "init":
                    self.prefix_map.weight.copy_(self.prefix_components)
                    self.prefix_map.bias.copy_(-self.prefix_components @ self.prefix_mean)

    def set_options(
        self, segments: Sequence[int] | None = None, posterior: dict | None = None, prefix: dict | None = None
    ) -> "Head":
        """Turn on the ``segments``, ``posterior`` and/or ``prefix`` options (module docstring); returns self."""
        if prefix:
            self._set_prefix(prefix)
            if posterior:
                raise ValueError("a head takes the posterior or the prefix option, not both")
        if segments:
            segments = tuple(int(n) for n in segments)
            if sum(segments) != self.num_blocks or min(segments) < 1:
                raise ValueError(f"segments {list(segments)} must be positive and sum to {self.num_blocks} blocks")
            self.segments = segments
        if posterior:
            parents = torch.as_tensor(posterior["parents"], dtype=torch.long)
            self.posterior = {"parents": parents.tolist()}
            for key in ("mix", "train_mix"):
                if key in posterior or key == "mix":
                    v = float(posterior.get(key, 1.0))
                    if not 0.0 <= v <= 1.0:
                        raise ValueError(f"posterior {key} must be in [0, 1], got {v}")
                    self.posterior[key] = v
            self.posterior["scales"] = [float(v) for v in posterior.get("scales", (1.0, 1.0))]
            if posterior.get("hard"):
                self.posterior["hard"] = True
            n_coarse = int(parents.max()) + 1
            self.register_buffer("parents", parents, persistent=False)
            self.fine_classifier = nn.Linear(self.feature_dim, len(parents))
            self.prototypes = nn.Parameter(torch.randn(n_coarse, self.block_dim) / self.block_dim**0.5)
        return self

    def _set_prefix(self, prefix: dict) -> None:
        mode = prefix.get("mode", "fixed")
        if mode not in PREFIX_MODES:
            raise ValueError(f"prefix mode must be one of {', '.join(PREFIX_MODES)}, got {mode!r}")
        if prefix.get("projection") not in PROJECTIONS:
            raise ValueError(
                f"prefix projection must be one of {', '.join(PROJECTIONS)}, got {prefix.get('projection')!r}"
            )
        self.prefix = {"projection": prefix["projection"], "mode": mode}
        if prefix.get("setting") is not None:
            self.prefix["setting"] = float(prefix["setting"])
        if mode == "mix":
            mix = float(prefix.get("mix", 1.0))
            if not 0.0 <= mix <= 1.0:
                raise ValueError(f"prefix mix must be in [0, 1], got {mix}")
            self.prefix["mix"] = mix
        self.register_buffer("prefix_mean", torch.zeros(self.input_dim))
        self.register_buffer("prefix_components", torch.zeros(self.block_dim, self.input_dim))
        if mode == "init":
            self.prefix_map = nn.Linear(self.input_dim, self.block_dim)

    def with_prefix(self, x: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """``blocks`` with the ``prefix`` option applied to the first (``x``: the head's input)."""
        assert self.prefix is not None
        mode = self.prefix["mode"]
        if mode == "init":
            first = self.prefix_map(x)
        else:
            first = (x - self.prefix_mean) @ self.prefix_components.T
            if mode == "mix" and not self.training:  # trained on the free block; mixed when encoding
                mix = self.prefix["mix"]
                first = mix * F.normalize(blocks[:, 0], dim=-1) + (1 - mix) * F.normalize(first, dim=-1)
            elif mode == "mix":
                first = blocks[:, 0]
        return torch.cat([first[:, None].to(blocks.dtype), blocks[:, 1:]], dim=1)

    @property
    def dim(self) -> int:
        return self.num_blocks * self.block_dim

    @property
    def prefix_dims(self) -> list[int]:
        return [self.block_dim * j for j in range(1, self.num_blocks + 1)]

    def get_config_dict(self) -> dict:
        out = {
            "kind": self.kind,
            "input_dim": self.input_dim,
            "num_blocks": self.num_blocks,
            "block_dim": self.block_dim,
        }
        if self.segments:
            out["segments"] = list(self.segments)
        if self.posterior:
            out["posterior"] = dict(self.posterior)
        if self.prefix:
            out["prefix"] = dict(self.prefix)
        return out

    def features_and_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, raw blocks) of the architecture; subclasses implement this."""
        raise NotImplementedError

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(blocks, fine logits of the posterior classifier or None)."""
        feats, blocks = self.features_and_blocks(x)
        if self.prefix:
            blocks = self.with_prefix(x, blocks)
        return self.finish(blocks, self.fine_classifier(feats) if self.posterior else None)

    def finish(
        self, blocks: torch.Tensor, logits: torch.Tensor | None, prototypes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(blocks, logits) with the posterior option applied: the first block becomes (or mixes in)
        the coarse posterior of the fine ``logits``. Without the option, ``blocks`` as they are.

        Any leading dimensions (seeds trained together: ``(seeds, rows, blocks, dim)``) pass through;
        ``prototypes`` (default: the head's own) may then be stacked, one set per seed."""
        if not self.posterior:
            return blocks, None
        assert logits is not None  # a head with the posterior option gives them
        post = self._coarse_posterior(logits, prototypes)
        mix = self.posterior["mix"]
        if self.training:
            mix = self.posterior.get("train_mix", mix)
        if mix == 1.0:
            first = post
        else:
            s_post, s_free = (1.0, 1.0) if self.training else self.posterior["scales"]
            first = mix / s_post * post + (1 - mix) / s_free * F.normalize(blocks[..., 0, :].float(), dim=-1)
        return torch.cat([first[..., None, :].to(blocks.dtype), blocks[..., 1:, :]], dim=-2), logits

    def _coarse_posterior(self, logits: torch.Tensor, prototypes: torch.Tensor | None = None) -> torch.Tensor:
        """n(p_c @ prototypes): the coarse posterior of the fine ``logits`` through the coarse prototypes."""
        prototypes = self.prototypes if prototypes is None else prototypes
        n_coarse = prototypes.shape[-2]
        p = torch.softmax(logits.float(), dim=-1)
        coarse = torch.zeros(*p.shape[:-1], n_coarse, dtype=p.dtype, device=p.device)
        coarse = coarse.index_add(-1, self.parents, p)  # p_c = sum of the children's probabilities
        if (self.posterior or {}).get("hard"):  # the predicted coarse class alone, one-hot
            coarse = F.one_hot(coarse.argmax(-1), n_coarse).to(p.dtype)
        return F.normalize(matmul(coarse, prototypes.float()), dim=-1)

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, coarse: np.ndarray, batch_size: int = 8192) -> list[float]:
        """Set ``posterior["scales"]``: the median distance of n(post) and n(free) from their
        coarse-class means on ``x`` (the training vectors). Returns the scales."""
        was = self.training
        self.eval()
        assert self.posterior is not None
        parts: list[list[torch.Tensor]] = [[], []]
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size]
            feats, blocks = self.features_and_blocks(xb)
            parts[0].append(self._coarse_posterior(self.fine_classifier(feats)))
            parts[1].append(F.normalize(blocks[:, 0].float(), dim=-1))
        y = torch.from_numpy(np.asarray(coarse, dtype=np.int64)).to(x.device)
        scales = []
        for chunks in parts:
            v = torch.cat(chunks)
            means = torch.zeros(int(y.max()) + 1, v.shape[1], device=v.device).index_add(0, y, v)
            means = means / torch.bincount(y, minlength=len(means)).clamp_min(1)[:, None].float()
            scales.append(max(float((v - means[y]).norm(dim=1).median()), 1e-6))
        self.posterior["scales"] = scales
        self.train(was)
        return scales

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def compose(self, blocks: torch.Tensor) -> torch.Tensor:
        """Blocks with each segment scaled to norm sqrt(1 / #segments) (identity without segments)."""
        if not self.segments:
            return blocks
        parts, start = [], 0
        for n in self.segments:
            seg = blocks[..., start : start + n, :]
            norm = seg.flatten(-2).norm(dim=-1).clamp_min(1e-12)[..., None, None]
            parts.append(seg / norm)
            start += n
        return torch.cat(parts, dim=-2) / len(self.segments) ** 0.5

    def full(self, flat: torch.Tensor) -> torch.Tensor:
        """The full embedding from concatenated (possibly zero-masked) blocks, before normalising."""
        return flat

    def embed(self, blocks: torch.Tensor, j: int | torch.Tensor) -> torch.Tensor:
        """Unit-length embedding from the first ``j`` blocks, zero-padded to the full width.

        ``j`` is an int or a per-example tensor of prefix lengths in blocks (1..num_blocks). Leading
        dimensions pass through: blocks ``(..., num_blocks, block_dim)``, a tensor ``j`` of shape ``(...)``.
        """
        blocks = self.compose(blocks)
        *lead, n, d = blocks.shape
        if isinstance(j, int):
            if not 1 <= j <= n:
                raise ValueError(f"prefix length must be 1..{n} blocks, got {j}")
            if j == n:
                return F.normalize(self.full(blocks.reshape(*lead, n * d)), dim=-1)
            prefix = F.normalize(blocks[..., :j, :].reshape(*lead, j * d), dim=-1)
            return F.pad(prefix, (0, (n - j) * d))
        keep = (torch.arange(n, device=blocks.device) < j[..., None]).to(blocks.dtype)
        prefix = F.normalize((blocks * keep[..., None]).reshape(*lead, n * d), dim=-1)
        if self.prefix_is_truncation:
            return prefix
        full = F.normalize(self.full(blocks.reshape(*lead, n * d)), dim=-1)
        return torch.where((j == n)[..., None], full, prefix)

    def forward(self, x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
        """Unit-length embedding of ``dim`` dims (one of :attr:`prefix_dims`; default: full)."""
        j = self.num_blocks if dim is None else self.blocks_for_dim(dim)
        return self.embed(self.blocks(x), j)[:, : self.prefix_dims[j - 1]]

    def blocks_for_dim(self, dim: int) -> int:
        if dim not in self.prefix_dims:
            raise ValueError(f"dim must be one of {self.prefix_dims}, got {dim}")
        return self.prefix_dims.index(dim) + 1


class Classifier(nn.Module):
    """LayerNorm + Linear on a zero-padded, unit-length prefix embedding: one per supervised level."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm, self.linear = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(e))
