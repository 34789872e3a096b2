"""Coarse-only prefixes: HEAL and the methods that limit what the prefix may learn from the fine label
(Separated, Successive, Adversarial, Anchored, the coarse-posterior Bottleneck and the dial), MRL in
their recipe, and the classifier floor (Coarse one-hot)."""

from __future__ import annotations

from typing import Any

from ..schedule import Schedule, Term
from .matryoshka import DISTILL_TEMPERATURE
from .parts import FULL_WEIGHT, PREFIX_WEIGHT, block_keep, dial_name, named, onehot, prefix_probs

# These share one recipe (an MLP-trunk-friendly optimiser setting) and the SupCon loss: coarse SupCon
# + 0.5 CE on the 64-d prefix, hierarchical SupCon (same-coarse negatives weigh 1.3) + 0.5 CE on the
# full vector. They differ in what the prefix may learn from the fine label.

BEYOND_RECIPE: dict[str, Any] = {"epochs": 20, "batch_size": 64, "lr": 1e-3, "lr_schedule": "cosine"}
SUPCON: dict[str, Any] = {"loss": "supcon", "temperature": 0.1, "ce_weight": 0.5}


def _prefix_coarse(L: int, nb: int, fine_weight: float = 0.0) -> Term:
    row = tuple(1.0 if k == 0 else (fine_weight if k == L - 1 else 0.0) for k in range(L))
    return Term(onehot(0, nb), tuple(row for _ in range(nb)), **SUPCON)


def _full_fine(L: int, nb: int, prefix_grad: float = 1.0) -> Term:
    grad = (prefix_grad,) + (1.0,) * (nb - 1) if prefix_grad < 1 else ()
    return Term(onehot(nb - 1, nb), tuple(onehot(L - 1, L) for _ in range(nb)), sibling_weight=1.3, grad=grad, **SUPCON)


def _suffix_within(L: int, nb: int) -> Term:
    """SupCon on the suffix (blocks 2..n) whose contrast set is the anchor's coarse class."""
    return Term(
        onehot(nb - 1, nb),
        tuple(onehot(L - 1, L) for _ in range(nb)),
        loss="supcon",
        temperature=0.1,
        ce_weight=0.0,
        start=1,
        within=0,
    )


def mrl_supcon(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """MRL in this family's loss and recipe: the mean over every prefix of SupCon + 0.5 CE on the
    finest level (the fair MRL reference for the methods below)."""
    L, nb = num_levels, num_blocks
    fine = onehot(L - 1, L)
    return Schedule(
        "mrl_supcon",
        (Term(tuple(1 / nb for _ in range(nb)), tuple(fine for _ in range(nb)), **SUPCON),),
        recipe=dict(BEYOND_RECIPE),
    )


def heal(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """HEAL as the seed's authors re-implemented it: coarse prefix + hierarchical-SupCon full vector."""
    L, nb = num_levels, num_blocks
    return Schedule("heal", (_prefix_coarse(L, nb), _full_fine(L, nb)), recipe=dict(BEYOND_RECIPE))


def separated(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """HEAL with the prefix cut off from the fine terms: it receives coarse-level gradients only."""
    L, nb = num_levels, num_blocks
    return Schedule(
        "separated", (_prefix_coarse(L, nb), _full_fine(L, nb, prefix_grad=0.0)), recipe=dict(BEYOND_RECIPE)
    )


def successive(num_levels: int = 2, num_blocks: int = 4, balanced: bool = False) -> Schedule:
    """Successive refinement: Separated, plus the suffix learns the fine label inside its coarse class.

    Prefix and suffix are normalised separately and weigh equally (``segments``); ``balanced`` draws
    class-balanced batches (16 fine classes x 4 examples).
    """
    L, nb = num_levels, num_blocks
    recipe = dict(BEYOND_RECIPE) | ({"sampler": "balanced"} if balanced else {})
    return Schedule(
        "successive_balanced" if balanced else "successive",
        (_prefix_coarse(L, nb), _full_fine(L, nb, prefix_grad=0.0), _suffix_within(L, nb)),
        head_options={"segments": [1, nb - 1]},
        recipe=recipe,
    )


# Chosen settings of the adversarial prefix; how each was chosen is recorded in paper/selections.md.
# A run's id holds the setting a bare name ran at (steerable.runs.RunSpec), so changing one of these
# never lets an old record stand for the new value.
ADVERSARIAL_STRENGTH = 1.0
ADVERSARIAL_MRL_STRENGTH = 0.1


def _prefix_against_fine(L: int, nb: int, strength: float) -> Term:
    """Within-coarse SupCon on the finest level, on the prefix, with its gradient reversed (scaled by
    ``-strength``): the prefix is trained to make its neighbours inside a coarse class *not* share
    the fine label."""
    return Term(
        onehot(0, nb),
        tuple(onehot(L - 1, L) for _ in range(nb)),
        loss="supcon",
        temperature=0.1,
        ce_weight=0.0,
        within=0,
        grad=(-strength,) + (1.0,) * (nb - 1),
    )


def adversarial(num_levels: int = 2, num_blocks: int = 4, strength: float | None = None) -> Schedule:
    """Separated, plus an adversary on the prefix: the within-coarse fine contrast with its gradient
    reversed. The prefix stays a free, full-rank 64-d block (no posterior code), but inside a coarse
    class its neighbourhoods stop following the fine label. ``strength``: ADVERSARIAL_STRENGTH when None."""
    strength = ADVERSARIAL_STRENGTH if strength is None else strength
    if not 0 < strength <= 1:
        raise ValueError(f"the adversary's strength must be in (0, 1], got {strength}")
    L, nb = num_levels, num_blocks
    return Schedule(
        named("adversarial", strength, ADVERSARIAL_STRENGTH),
        (_prefix_coarse(L, nb), _full_fine(L, nb, prefix_grad=0.0), _prefix_against_fine(L, nb, strength)),
        recipe=dict(BEYOND_RECIPE),
    )


def adversarial_mrl(num_levels: int = 2, num_blocks: int = 4, strength: float | None = None) -> Schedule:
    """Adversarial in the paper's loss and recipe, with a Matryoshka suffix.

    The 64-d prefix learns the coarse level only (the seed loss) plus the same reversed within-coarse
    fine contrast as :func:`adversarial`; the full vector learns the finest level with the prefix cut
    off from it; and the suffix learns the finest level at every suffix length (blocks 2..j, weighted
    as MRL weighs its prefixes). Everything else is as MRL trains (the seed loss, 5 epochs, batch 32,
    lr 1e-4), so its accuracy is bounded by the paper's MRL rather than by the SupCon recipe's.
    ``strength``: ADVERSARIAL_MRL_STRENGTH when None.
    """
    strength = ADVERSARIAL_MRL_STRENGTH if strength is None else strength
    if not 0 < strength <= 1:
        raise ValueError(f"the adversary's strength must be in (0, 1], got {strength}")
    L, nb = num_levels, num_blocks
    fine = tuple(onehot(L - 1, L) for _ in range(nb))
    full = Term(onehot(nb - 1, nb), fine, FULL_WEIGHT, block_dropout=True, grad=(0.0,) + (1.0,) * (nb - 1))
    prefix = Term(onehot(0, nb), tuple(onehot(0, L) for _ in range(nb)), PREFIX_WEIGHT)
    suffix = Term((0.0,) + prefix_probs(nb - 1), fine, PREFIX_WEIGHT, sample=True, start=1)
    return Schedule(
        named("adversarial_mrl", strength, ADVERSARIAL_MRL_STRENGTH),
        (full, prefix, suffix, _prefix_against_fine(L, nb, strength)),
        block_keep(nb),
    )


# Fixed before any run of the method, not chosen on results: the anchor weighs as the terms it joins,
# at the temperature of the prefix distillation.
ANCHOR_WEIGHT, ANCHOR_TEMPERATURE = 1.0, DISTILL_TEMPERATURE


def anchored(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Adversarial (MRL recipe) whose 64-d prefix is also anchored to the backbone: it learns to rank
    each batch as the backbone's own vectors do (a distill term with the backbone as teacher).

    The coarse term and the adversary pull the prefix towards the coarse label of the classes trained
    on; the anchor keeps the backbone's neighbourhoods, which are what holds for classes never seen in
    training (a trained prefix otherwise folds them into seen ones). At these weights the anchor
    wins: the prefix groups new classes better than MRL's or V5's but is about as steerable as V5's.
    Everything else is as :func:`adversarial_mrl` at its strength.
    """
    L, nb = num_levels, num_blocks
    base = adversarial_mrl(L, nb)
    anchor = Term(
        onehot(0, nb),
        tuple((0.0,) * L for _ in range(nb)),
        ANCHOR_WEIGHT,
        loss="distill",
        temperature=ANCHOR_TEMPERATURE,
        teacher="backbone",
    )
    return Schedule("anchored", base.terms + (anchor,), base.block_keep)


DIAL_TRAIN_MIX = 0.5


def _posterior_terms(L: int, nb: int, mix: float) -> tuple[Term, ...]:
    """Terms of a model whose first block mixes the coarse posterior (weight ``mix``) and a free
    block that learns the fine label with weight ``1 - mix``."""
    posterior = Term(onehot(0, nb), tuple(onehot(0, L, 1.0)[: L - 1] + (1.0,) for _ in range(nb)), loss="posterior")
    return (
        _prefix_coarse(L, nb, fine_weight=1.0 - mix),
        _full_fine(L, nb, prefix_grad=1.0 - mix),
        _suffix_within(L, nb),
        posterior,
    )


def dial(value: float, num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The steerability dial at ``value`` in [0, 1]: how coarse-only the 64-d prefix is.

    One model is trained for every setting (its first block mixes the coarse-posterior block and a
    free block that also learns the fine label, half and half); the dial then sets the mix used to
    encode: ``value * n(post) / s_post + (1 - value) * n(free) / s_free`` (see
    :mod:`steerable.heads`), so it can be changed after training without retraining. 0: an MRL-like
    prefix that keeps fine information (good multi-stage shortlist); 1: the coarse-posterior
    bottleneck (a pure coarse code). The suffix learns the fine label inside its coarse class.
    """
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"the dial must be in [0, 1], got {value}")
    L, nb = num_levels, num_blocks
    return Schedule(
        dial_name(value),
        _posterior_terms(L, nb, DIAL_TRAIN_MIX),
        recipe=dict(BEYOND_RECIPE) | {"select_best": False},
        head_options={"segments": [1, nb - 1], "posterior": {"mix": value, "train_mix": DIAL_TRAIN_MIX}},
    )


def bottleneck(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Coarse-posterior bottleneck: the prefix is the coarse posterior through learned prototypes,
    trained as such (the dial at 1 encodes the same way from a model trained half-and-half). Its
    prefix has rank at most the number of coarse classes."""
    L, nb = num_levels, num_blocks
    return Schedule(
        "bottleneck",
        _posterior_terms(L, nb, 1.0),
        recipe=dict(BEYOND_RECIPE),
        head_options={"segments": [1, nb - 1], "posterior": {"mix": 1.0}},
    )


def coarse_onehot(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """A floor built from a classifier: the 64-d prefix is the one-hot of a trained coarse classifier's
    prediction (its predicted coarse class's fixed prototype), the rest is trained as MRL.

    The classifier is the head's fine posterior, summed up to the coarse level and trained on both
    levels' labels; the suffix learns the finest level at every suffix length and the full vector
    the finest level, in the paper's loss and recipe. What a prefix that is a coarse classifier
    scores, for any steerability claim to be compared with.
    """
    L, nb = num_levels, num_blocks
    fine = tuple(onehot(L - 1, L) for _ in range(nb))
    classifier = Term(onehot(0, nb), tuple((1.0,) * L for _ in range(nb)), loss="posterior")
    full = Term(onehot(nb - 1, nb), fine, FULL_WEIGHT, block_dropout=True)
    suffix = Term((0.0,) + prefix_probs(nb - 1), fine, PREFIX_WEIGHT, sample=True, start=1)
    return Schedule(
        "coarse_onehot",
        (classifier, full, suffix),
        block_keep(nb),
        head_options={"segments": [1, nb - 1], "posterior": {"mix": 1.0, "hard": True}},
    )
