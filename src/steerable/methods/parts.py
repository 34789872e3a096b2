"""What the methods' schedules are built from: prefix-length distributions, block-dropout keep
probabilities, one-hot level rows, the full-vector term, and how a method with a setting is named."""

from __future__ import annotations

from ..schedule import Term

FULL_WEIGHT, PREFIX_WEIGHT = 1.0, 0.6


def prefix_probs(num_blocks: int) -> tuple[float, ...]:
    """Linearly decreasing prefix-length distribution: (0.4, 0.3, 0.2, 0.1) for four blocks."""
    total = num_blocks * (num_blocks + 1) / 2
    return tuple((num_blocks - i) / total for i in range(num_blocks))


def block_keep(num_blocks: int) -> tuple[float, ...]:
    """Block-dropout keep probabilities: (0.95, 0.9, 0.8, 0.7) for four blocks as in the original."""
    if num_blocks == 4:
        return (0.95, 0.9, 0.8, 0.7)
    return tuple(round(0.95 - 0.25 * i / (num_blocks - 1), 4) for i in range(num_blocks))


def onehot(i: int, n: int, w: float = 1.0) -> tuple[float, ...]:
    return tuple(w if k == i else 0.0 for k in range(n))


def _full(levels: tuple[float, ...], nb: int) -> Term:
    return Term(onehot(nb - 1, nb), tuple(levels for _ in range(nb)), FULL_WEIGHT, block_dropout=True)


def named(name: str, value: float, default: float | None) -> str:
    """A method's name at a setting: the bare name at its ``default``, ``name@value`` otherwise."""
    return name if value == default else f"{name}@{value:g}"


def dial_name(value: float) -> str:
    return f"dial@{value:g}"
