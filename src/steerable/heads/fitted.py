"""Heads with nothing to train: the raw backbone (plain truncation, a random subset of its dims, its
principal axes) and the closed-form projections, fitted on the training vectors and labels."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..projections import PROJECTIONS, fit_projection
from .base import Head


class IdentityHead(Head):
    """No head: the raw backbone vector. Prefix ``j`` is the renormalised first ``j * block_dim`` dims
    for ``j < num_blocks``, and the full embedding is the whole (normalised) backbone vector.

    It has no parameters and is never trained: the method Flat is this head with an empty schedule.
    """

    kind = "identity"
    trainable = False

    def __init__(self, input_dim: int, num_blocks: int = 4, block_dim: int = 64):
        super().__init__(input_dim, num_blocks, block_dim)
        if input_dim <= (num_blocks - 1) * block_dim:
            raise ValueError(
                f"an identity head of {num_blocks} blocks of {block_dim} needs more than "
                f"{(num_blocks - 1) * block_dim} input dims, got {input_dim}"
            )

    @property
    def dim(self) -> int:
        return self.input_dim

    @property
    def prefix_dims(self) -> list[int]:
        return [self.block_dim * j for j in range(1, self.num_blocks)] + [self.input_dim]

    def set_options(
        self, segments: Sequence[int] | None = None, posterior: dict | None = None, prefix: dict | None = None
    ) -> "Head":
        if segments or posterior or prefix:
            raise ValueError(f"the {self.kind} head takes no segments, posterior or prefix options")
        return self

    def features_and_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise ValueError("the identity head has nothing to train; use it with a method that trains nothing (flat)")

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def embed(self, blocks: torch.Tensor, j: int | torch.Tensor) -> torch.Tensor:
        """The renormalised first ``prefix_dims[j - 1]`` dims, zero-padded to the full width (``j``: an
        int, or a per-example tensor of prefix lengths)."""
        if not isinstance(j, int):
            widths = torch.tensor(self.prefix_dims, device=blocks.device)[j - 1]
            keep = torch.arange(self.input_dim, device=blocks.device)[None, :] < widths[:, None]
            return F.normalize(blocks * keep.to(blocks.dtype), dim=-1)
        if not 1 <= j <= self.num_blocks:
            raise ValueError(f"prefix length must be 1..{self.num_blocks} blocks, got {j}")
        width = self.prefix_dims[j - 1]
        return F.pad(F.normalize(blocks[:, :width], dim=-1), (0, self.input_dim - width))

    def forward(self, x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
        d = self.dim if dim is None else dim
        return self.embed(self.blocks(x), self.blocks_for_dim(d))[:, :d]


class PCAHead(IdentityHead):
    """The raw backbone vector on its principal axes, fitted on the training vectors (not trained).

    The embedding is the centred vector rotated onto the principal components, largest variance
    first, so prefix ``j`` is the renormalised projection onto the first ``j * block_dim`` components
    (PCA-64 for the shortest): the fair short view of the raw backbone, where plain truncation keeps
    whatever the first dims happen to hold.
    """

    kind = "pca"
    mean: torch.Tensor
    components: torch.Tensor

    def __init__(self, input_dim: int, num_blocks: int = 4, block_dim: int = 64):
        super().__init__(input_dim, num_blocks, block_dim)
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("components", torch.eye(input_dim))  # rows: principal axes

    @torch.no_grad()
    def fit(self, x: torch.Tensor, labels: np.ndarray | None = None) -> None:
        """Principal axes of ``x`` (float64 SVD), each signed so that its largest loading is positive."""
        x = x.double()
        mean = x.mean(0)
        _, _, vt = torch.linalg.svd(x - mean, full_matrices=False)
        vt = vt * torch.sign(vt.gather(1, vt.abs().argmax(1, keepdim=True)))
        axes = torch.zeros(self.input_dim, self.input_dim, dtype=torch.float64)
        axes[: len(vt)] = vt  # fewer vectors than dims: the remaining axes stay zero
        self.mean.copy_(mean.float())
        self.components.copy_(axes.float())

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.components.T


class ProjectionHead(PCAHead):
    """A closed-form projection of the backbone, fitted on the training vectors and their labels (not
    trained): the prefix is a coarse view (:mod:`steerable.projections`: ``gep``, ``nuisance``, ``lda``
    at their ``setting``), the rest the principal axes of what it leaves out, so the full vector is the
    backbone's fine view. Prefixes are renormalised truncations, as the PCA head's."""

    kind = "projection"

    def __init__(
        self,
        input_dim: int,
        num_blocks: int = 4,
        block_dim: int = 64,
        projection: str = "gep",
        setting: float | None = None,
    ):
        super().__init__(input_dim, num_blocks, block_dim)
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {projection!r}; choose from {', '.join(PROJECTIONS)}")
        self.projection, self.setting = projection, setting

    def get_config_dict(self) -> dict:
        return super().get_config_dict() | {"projection": self.projection, "setting": self.setting}

    @torch.no_grad()
    def fit(self, x: torch.Tensor, labels: np.ndarray | None = None) -> None:
        mean, components = fit_projection(self.projection, x.double().numpy(), labels, self.block_dim, self.setting)
        self.mean.copy_(torch.from_numpy(mean).float())
        self.components.copy_(torch.from_numpy(components).float())


class RandomSubsetHead(IdentityHead):
    """The raw backbone vector with its dims in a random order, drawn when the head is built (from
    torch's generator, so a seeded run draws the same): prefix ``j`` is a random subset of ``j *
    block_dim`` of the backbone's dims, renormalised. A floor: what any 64 of the backbone's dims give,
    with neither PCA's choice nor a trained head's."""

    kind = "random_subset"
    order: torch.Tensor

    def __init__(self, input_dim: int, num_blocks: int = 4, block_dim: int = 64):
        super().__init__(input_dim, num_blocks, block_dim)
        self.register_buffer("order", torch.randperm(input_dim))

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.order]
