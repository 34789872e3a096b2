"""Trainable heads: an MLP trunk with a linear read-out (the default), a single linear projection (the
paper text's), and the original code's weight-shared transformer block (the fractal head)."""

from __future__ import annotations

import torch
from torch import nn

from .base import Head


class _SharedBlock(nn.Module):
    """Pre-LN transformer block applied to a single token.

    With one token, softmax attention weights are all 1, so multi-head self-attention is exactly
    ``out_proj(v_proj(x))``; the query/key projections of the original (which get no gradient on a
    one-token input) are left out.
    """

    def __init__(self, h: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.v_proj, self.out_proj = nn.Linear(h, h), nn.Linear(h, h)
        self.ffn = nn.Sequential(nn.Linear(h, 4 * h), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * h, h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.out_proj(self.v_proj(self.ln1(x)))
        return x + self.ffn(self.ln2(x))


class FractalHead(Head):
    """The original code's head: one weight-shared block applied ``num_blocks`` times.

    After step s a separate LayerNorm + Linear reads out block s; the full embedding is
    LayerNorm(concat(blocks)), prefixes are the raw concatenation of the first blocks.
    """

    kind = "fractal"
    prefix_is_truncation = False

    def __init__(self, input_dim: int, num_blocks: int = 4, block_dim: int = 64, dropout: float = 0.1):
        super().__init__(input_dim, num_blocks, block_dim)
        h = input_dim
        self.dropout = dropout
        self.input_proj = nn.Linear(h, h)
        self.block = _SharedBlock(h, dropout)
        self.readout_norms = nn.ModuleList(nn.LayerNorm(h) for _ in range(num_blocks))
        self.readouts = nn.ModuleList(nn.Linear(h, block_dim) for _ in range(num_blocks))
        self.final_norm = nn.LayerNorm(num_blocks * block_dim)

    def get_config_dict(self) -> dict:
        return super().get_config_dict() | {"dropout": self.dropout}

    @property
    def feature_dim(self) -> int:
        return self.input_dim

    def features_and_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = x = self.input_proj(x)
        out = []
        for s in range(self.num_blocks):
            x = self.block(x) + (0.1 / (1 + 0.3 * s)) * x0
            out.append(self.readouts[s](self.readout_norms[s](x)))
        return x, torch.stack(out, dim=1)

    def full(self, flat: torch.Tensor) -> torch.Tensor:
        return self.final_norm(flat)


class LinearHead(Head):
    """The paper text's head: one linear projection; every prefix is a truncation of the full vector."""

    kind = "linear"

    def __init__(self, input_dim: int, num_blocks: int = 4, block_dim: int = 64):
        super().__init__(input_dim, num_blocks, block_dim)
        self.proj = nn.Linear(input_dim, num_blocks * block_dim)

    @property
    def feature_dim(self) -> int:
        return self.input_dim

    def features_and_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, self.proj(x).reshape(-1, self.num_blocks, self.block_dim)


class MLPHead(Head):
    """A plain MLP trunk (Linear-LN-GELU-Dropout-Linear-LN-GELU) and a linear read-out."""

    kind = "mlp"

    def __init__(
        self, input_dim: int, num_blocks: int = 4, block_dim: int = 64, hidden_dim: int = 512, dropout: float = 0.1
    ):
        super().__init__(input_dim, num_blocks, block_dim)
        self.hidden_dim, self.dropout = hidden_dim, dropout
        self.trunk = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.GELU(),
        )
        self.proj = nn.Linear(hidden_dim, num_blocks * block_dim)

    def get_config_dict(self) -> dict:
        return super().get_config_dict() | {"hidden_dim": self.hidden_dim, "dropout": self.dropout}

    @property
    def feature_dim(self) -> int:
        return self.hidden_dim

    def features_and_blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return h, self.proj(h).reshape(-1, self.num_blocks, self.block_dim)
