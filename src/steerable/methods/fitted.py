"""The raw backbone's views (Flat: truncated; Flat (PCA); Flat (random): a random subset of its dims), the
closed-form projections (gep, nuisance, lda) and the hybrids whose prefix comes from a projection
(proj_mrl, proj_anchored, blend)."""

from __future__ import annotations

from ..schedule import Schedule, Term
from .coarse import ANCHOR_TEMPERATURE, ANCHOR_WEIGHT, adversarial_mrl
from .matryoshka import mrl
from .parts import FULL_WEIGHT, PREFIX_WEIGHT, block_keep, named, onehot, prefix_probs


def flat(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The raw backbone: an identity head (prefixes are renormalised truncations), nothing trained."""
    return Schedule("flat", (), head="identity")


def flat_pca(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The raw backbone on its principal axes, fitted on the training vectors: the prefix is PCA-64,
    the fair short view of the raw backbone (a floor for every steerability claim)."""
    return Schedule("flat_pca", (), head="pca")


def flat_random(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The raw backbone on a seeded random order of its dims: the prefix is a random 64 of them (a floor
    beside PCA-64: what the backbone gives with no choice of dims at all)."""
    return Schedule("flat_random", (), head="random_subset")


# A projection head's prefix is fitted in closed form on the training vectors and labels
# (steerable.projections); its setting is chosen on validation with episodic held-out classes
# (paper/selections.md). The hybrids keep a trained head's fine accuracy: the prefix comes from a
# projection (fixed, a starting point held near the backbone, or mixed with a trained prefix).
PROJECTION_SETTINGS = {"gep": 1.0, "nuisance": 16.0, "lda": 1.0}  # chosen on validation (paper/selections.md)
HYBRID_PROJECTION = ("nuisance", 16.0)  # the projection the hybrids start from, chosen (paper/selections.md)
BLEND_MIX = 0.25  # the blend's share of the trained prefix, chosen (paper/selections.md)


def projection(kind: str, setting: float | None = None, num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """A closed-form projection head (nothing trained): the prefix is projection ``kind`` at ``setting``
    (its chosen value when None) of the backbone, the rest the backbone's remaining principal axes."""
    setting = PROJECTION_SETTINGS[kind] if setting is None else setting
    if kind == "gep" and setting < 0:
        raise ValueError(f"gep's λ must be at least 0, got {setting:g}")
    if kind in ("nuisance", "lda") and (setting < 1 if kind == "nuisance" else setting <= 0):
        raise ValueError(
            f"{kind}'s setting must be {'at least 1' if kind == 'nuisance' else 'positive'}, got {setting:g}"
        )
    return Schedule(
        named(kind, setting, PROJECTION_SETTINGS[kind]),
        (),
        head="projection",
        head_options={"projection": kind, "setting": float(setting)},
    )


def _hybrid_prefix(mode: str) -> dict:
    kind, setting = HYBRID_PROJECTION
    return {"projection": kind, "setting": setting, "mode": mode}


def proj_mrl(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The prefix is a fixed projection of the backbone (never trained); the other blocks are trained as
    MRL trains them, every prefix length on the finest level (the fixed block takes part, as it is)."""
    base = mrl(num_levels, num_blocks)
    return Schedule("proj_mrl", base.terms, base.block_keep, head_options={"prefix": _hybrid_prefix("fixed")})


def proj_anchored(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The prefix is a linear map of the backbone initialised at a projection and trained on the coarse
    level, held near the backbone's neighbourhoods by the anchor (a distill term with the backbone as
    teacher, as :func:`anchored` has); the full vector learns the finest level with the prefix cut off
    from it, the suffix every suffix length on the finest level (the paper's loss and recipe)."""
    L, nb = num_levels, num_blocks
    fine = tuple(onehot(L - 1, L) for _ in range(nb))
    full = Term(onehot(nb - 1, nb), fine, FULL_WEIGHT, block_dropout=True, grad=(0.0,) + (1.0,) * (nb - 1))
    prefix = Term(onehot(0, nb), tuple(onehot(0, L) for _ in range(nb)), PREFIX_WEIGHT)
    suffix = Term((0.0,) + prefix_probs(nb - 1), fine, PREFIX_WEIGHT, sample=True, start=1)
    anchor = Term(
        onehot(0, nb),
        tuple((0.0,) * L for _ in range(nb)),
        ANCHOR_WEIGHT,
        loss="distill",
        temperature=ANCHOR_TEMPERATURE,
        teacher="backbone",
    )
    return Schedule(
        "proj_anchored", (full, prefix, suffix, anchor), block_keep(nb), head_options={"prefix": _hybrid_prefix("init")}
    )


def blend(value: float | None = None, num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The raw backbone's PCA-64 and a trained steerable prefix, mixed after training (WiSE-FT style):
    the prefix is ``value * n(trained) + (1 - value) * n(PCA-64)``. The model is trained as
    :func:`adversarial_mrl` at its strength (its free first block is the trained prefix), once for every
    ``value``: 0 is PCA-64's prefix, 1 Adversarial-MRL's. ``value``: BLEND_MIX when None."""
    value = BLEND_MIX if value is None else value
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"the blend must be in [0, 1], got {value:g}")
    base = adversarial_mrl(num_levels, num_blocks)
    return Schedule(
        named("blend", value, BLEND_MIX),
        base.terms,
        base.block_keep,
        head_options={"prefix": {"projection": "pca", "mode": "mix", "mix": float(value)}},
    )
