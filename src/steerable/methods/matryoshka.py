"""The paper's methods: V5 (hierarchy-aligned prefix supervision), MRL (Matryoshka), its ablations
(Inverted, No-prefix, UHMT) and MRL-distill; the original code's loss and recipe."""

from __future__ import annotations

from ..schedule import Schedule, Term, prefix_level
from .parts import PREFIX_WEIGHT, _full, block_keep, onehot, prefix_probs


def v5(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Hierarchy-aligned: full -> finest level; a sampled prefix -> the coarse level it serves."""
    nb, L = num_blocks, num_levels
    prefix = tuple(onehot(prefix_level(j, L), L) for j in range(1, nb + 1))
    return Schedule(
        "v5", (_full(onehot(L - 1, L), nb), Term(prefix_probs(nb), prefix, PREFIX_WEIGHT, sample=True)), block_keep(nb)
    )


def mrl(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Matryoshka: every prefix length on the finest level, weighted 0.4, 0.3, 0.2, 0.1."""
    nb, L = num_blocks, num_levels
    fine = onehot(L - 1, L)
    return Schedule(
        "mrl", (_full(fine, nb), Term(prefix_probs(nb), tuple(fine for _ in range(nb)), PREFIX_WEIGHT)), block_keep(nb)
    )


# Chosen settings; how each was chosen (candidates, split, numbers) is recorded in paper/selections.md.
DISTILL_WEIGHT, DISTILL_TEMPERATURE = 3.0, 0.05


def prefix_distillation(
    num_levels: int,
    num_blocks: int,
    weight: float = DISTILL_WEIGHT,
    temperature: float = DISTILL_TEMPERATURE,
    sign_slope: float | None = None,
) -> Term:
    """The 64-d prefix learns to rank the batch as the full vector does (no labels); with
    ``sign_slope``, its soft signs do (for a first stage in sign bits)."""
    return Term(
        onehot(0, num_blocks),
        tuple((0.0,) * num_levels for _ in range(num_blocks)),
        weight,
        loss="distill",
        temperature=temperature,
        sign_slope=sign_slope,
    )


def mrl_distill(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """MRL whose 64-d prefix also learns to shortlist for its own full vector: a first stage whose
    top K holds the full vector's top 10 at a far smaller K (``bench/search.py``)."""
    base = mrl(num_levels, num_blocks)
    return Schedule("mrl_distill", base.terms + (prefix_distillation(num_levels, num_blocks),), base.block_keep)


def inverted(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: full -> coarsest level, sampled prefix -> finest level (V5 with the levels swapped)."""
    nb, L = num_blocks, num_levels
    return Schedule(
        "inverted",
        (
            _full(onehot(0, L), nb),
            Term(prefix_probs(nb), tuple(onehot(L - 1, L) for _ in range(nb)), PREFIX_WEIGHT, sample=True),
        ),
        block_keep(nb),
    )


def no_prefix(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: only the full embedding, on the finest level."""
    return Schedule("no_prefix", (_full(onehot(num_levels - 1, num_levels), num_blocks),), block_keep(num_blocks))


def uhmt(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: every path trained on an equal mix of all levels (hierarchy-aware, not aligned)."""
    nb, L = num_blocks, num_levels
    mix = tuple(1.0 / L for _ in range(L))
    return Schedule(
        "uhmt",
        (_full(mix, nb), Term(prefix_probs(nb), tuple(mix for _ in range(nb)), PREFIX_WEIGHT, sample=True)),
        block_keep(nb),
    )
