"""The methods: every supervision method as a value, and the one registry of names, labels and order.

A method is a :class:`~steerable.schedule.Schedule` built for a number of levels and blocks. V5, MRL,
the ablations (Inverted, No-prefix, UHMT), the raw backbone (Flat: an identity head, nothing
trained; Flat (PCA): its principal axes), the coarse-only prefixes (HEAL, Separated, Successive,
Adversarial, Bottleneck, the dial), the classifier floor (Coarse one-hot) and MRL-distill are all
entries of :data:`METHODS`; :func:`preset` builds one by name, :func:`label`
names it for people and :func:`display_order` sorts names as every table and figure lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable

from .schedule import Schedule, Term, prefix_level

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


def v5(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Hierarchy-aligned: full -> finest level; a sampled prefix -> the coarse level it serves."""
    nb, L = num_blocks, num_levels
    prefix = tuple(onehot(prefix_level(j, L), L) for j in range(1, nb + 1))
    return Schedule("v5", (_full(onehot(L - 1, L), nb),
                           Term(prefix_probs(nb), prefix, PREFIX_WEIGHT, sample=True)), block_keep(nb))


def mrl(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Matryoshka: every prefix length on the finest level, weighted 0.4, 0.3, 0.2, 0.1."""
    nb, L = num_blocks, num_levels
    fine = onehot(L - 1, L)
    return Schedule("mrl", (_full(fine, nb),
                            Term(prefix_probs(nb), tuple(fine for _ in range(nb)), PREFIX_WEIGHT)),
                    block_keep(nb))


# Chosen settings; how each was chosen (candidates, split, numbers) is recorded in paper/selections.md.
DISTILL_WEIGHT, DISTILL_TEMPERATURE = 3.0, 0.05


def prefix_distillation(num_levels: int, num_blocks: int, weight: float = DISTILL_WEIGHT,
                        temperature: float = DISTILL_TEMPERATURE) -> Term:
    """The 64-d prefix learns to rank the batch as the full vector does (no labels)."""
    return Term(onehot(0, num_blocks), tuple((0.0,) * num_levels for _ in range(num_blocks)), weight,
                loss="distill", temperature=temperature)


def mrl_distill(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """MRL whose 64-d prefix also learns to shortlist for its own full vector: a first stage whose
    top K holds the full vector's top 10 at a far smaller K (``bench/search.py``)."""
    base = mrl(num_levels, num_blocks)
    return Schedule("mrl_distill", base.terms + (prefix_distillation(num_levels, num_blocks),),
                    base.block_keep)


def inverted(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: full -> coarsest level, sampled prefix -> finest level (V5 with the levels swapped)."""
    nb, L = num_blocks, num_levels
    return Schedule("inverted", (_full(onehot(0, L), nb),
                                 Term(prefix_probs(nb), tuple(onehot(L - 1, L) for _ in range(nb)),
                                      PREFIX_WEIGHT, sample=True)), block_keep(nb))


def no_prefix(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: only the full embedding, on the finest level."""
    return Schedule("no_prefix", (_full(onehot(num_levels - 1, num_levels), num_blocks),),
                    block_keep(num_blocks))


def uhmt(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: every path trained on an equal mix of all levels (hierarchy-aware, not aligned)."""
    nb, L = num_blocks, num_levels
    mix = tuple(1.0 / L for _ in range(L))
    return Schedule("uhmt", (_full(mix, nb),
                             Term(prefix_probs(nb), tuple(mix for _ in range(nb)), PREFIX_WEIGHT,
                                  sample=True)), block_keep(nb))


# ------------------------------------------------------------------- coarse-only prefixes
#
# These share one recipe (an MLP-trunk-friendly optimiser setting) and the SupCon loss: coarse SupCon
# + 0.5 CE on the 64-d prefix, hierarchical SupCon (same-coarse negatives weigh 1.3) + 0.5 CE on the
# full vector. They differ in what the prefix may learn from the fine label.

BEYOND_RECIPE = {"epochs": 20, "batch_size": 64, "lr": 1e-3, "lr_schedule": "cosine"}
SUPCON = {"loss": "supcon", "temperature": 0.1, "ce_weight": 0.5}


def _prefix_coarse(L: int, nb: int, fine_weight: float = 0.0) -> Term:
    row = tuple(1.0 if k == 0 else (fine_weight if k == L - 1 else 0.0) for k in range(L))
    return Term(onehot(0, nb), tuple(row for _ in range(nb)), **SUPCON)


def _full_fine(L: int, nb: int, prefix_grad: float = 1.0) -> Term:
    grad = (prefix_grad,) + (1.0,) * (nb - 1) if prefix_grad < 1 else ()
    return Term(onehot(nb - 1, nb), tuple(onehot(L - 1, L) for _ in range(nb)), sibling_weight=1.3,
                grad=grad, **SUPCON)


def _suffix_within(L: int, nb: int) -> Term:
    """SupCon on the suffix (blocks 2..n) whose contrast set is the anchor's coarse class."""
    return Term(onehot(nb - 1, nb), tuple(onehot(L - 1, L) for _ in range(nb)), loss="supcon",
                temperature=0.1, ce_weight=0.0, start=1, within=0)


def mrl_supcon(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """MRL in this family's loss and recipe: the mean over every prefix of SupCon + 0.5 CE on the
    finest level (the fair MRL reference for the methods below)."""
    L, nb = num_levels, num_blocks
    fine = onehot(L - 1, L)
    return Schedule("mrl_supcon", (Term(tuple(1 / nb for _ in range(nb)), tuple(fine for _ in range(nb)),
                                        **SUPCON),), recipe=dict(BEYOND_RECIPE))


def heal(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """HEAL as the seed's authors re-implemented it: coarse prefix + hierarchical-SupCon full vector."""
    L, nb = num_levels, num_blocks
    return Schedule("heal", (_prefix_coarse(L, nb), _full_fine(L, nb)), recipe=dict(BEYOND_RECIPE))


def separated(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """HEAL with the prefix cut off from the fine terms: it receives coarse-level gradients only."""
    L, nb = num_levels, num_blocks
    return Schedule("separated", (_prefix_coarse(L, nb), _full_fine(L, nb, prefix_grad=0.0)),
                    recipe=dict(BEYOND_RECIPE))


def successive(num_levels: int = 2, num_blocks: int = 4, balanced: bool = False) -> Schedule:
    """Successive refinement: Separated, plus the suffix learns the fine label inside its coarse class.

    Prefix and suffix are normalised separately and weigh equally (``segments``); ``balanced`` draws
    class-balanced batches (16 fine classes x 4 examples).
    """
    L, nb = num_levels, num_blocks
    recipe = dict(BEYOND_RECIPE) | ({"sampler": "balanced"} if balanced else {})
    return Schedule("successive_balanced" if balanced else "successive",
                    (_prefix_coarse(L, nb), _full_fine(L, nb, prefix_grad=0.0), _suffix_within(L, nb)),
                    head_options={"segments": [1, nb - 1]}, recipe=recipe)


# Chosen settings of the adversarial prefix; how each was chosen is recorded in paper/selections.md.
# A run's id holds the setting a bare name ran at (steerable.runs.RunSpec), so changing one of these
# never lets an old record stand for the new value.
ADVERSARIAL_STRENGTH = 1.0
ADVERSARIAL_MRL_STRENGTH = 0.1


def default_setting(name: str) -> float | None:
    """The setting the bare method ``name`` runs at now (None for a method without one, or without a
    default, such as the dial)."""
    return {"adversarial": ADVERSARIAL_STRENGTH, "adversarial_mrl": ADVERSARIAL_MRL_STRENGTH,
            "blend": BLEND_MIX, **PROJECTION_SETTINGS}.get(name)


def _named(name: str, value: float) -> str:
    """A method's name at a setting: the bare name at its default, ``name@value`` otherwise."""
    return name if value == default_setting(name) else f"{name}@{value:g}"


def _prefix_against_fine(L: int, nb: int, strength: float) -> Term:
    """Within-coarse SupCon on the finest level, on the prefix, with its gradient reversed (scaled by
    ``-strength``): the prefix is trained to make its neighbours inside a coarse class *not* share
    the fine label."""
    return Term(onehot(0, nb), tuple(onehot(L - 1, L) for _ in range(nb)), loss="supcon",
                temperature=0.1, ce_weight=0.0, within=0, grad=(-strength,) + (1.0,) * (nb - 1))


def adversarial(num_levels: int = 2, num_blocks: int = 4, strength: float | None = None) -> Schedule:
    """Separated, plus an adversary on the prefix: the within-coarse fine contrast with its gradient
    reversed. The prefix stays a free, full-rank 64-d block (no posterior code), but inside a coarse
    class its neighbourhoods stop following the fine label. ``strength``: ADVERSARIAL_STRENGTH when None."""
    strength = ADVERSARIAL_STRENGTH if strength is None else strength
    if not 0 < strength <= 1:
        raise ValueError(f"the adversary's strength must be in (0, 1], got {strength}")
    L, nb = num_levels, num_blocks
    return Schedule(_named("adversarial", strength), (_prefix_coarse(L, nb), _full_fine(L, nb, prefix_grad=0.0),
                                    _prefix_against_fine(L, nb, strength)), recipe=dict(BEYOND_RECIPE))


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
    return Schedule(_named("adversarial_mrl", strength), (full, prefix, suffix, _prefix_against_fine(L, nb, strength)),
                    block_keep(nb))


# Fixed before any run of the method, not chosen on results: the anchor weighs as the terms it joins,
# at the temperature of the prefix distillation above.
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
    anchor = Term(onehot(0, nb), tuple((0.0,) * L for _ in range(nb)), ANCHOR_WEIGHT, loss="distill",
                  temperature=ANCHOR_TEMPERATURE, teacher="backbone")
    return Schedule("anchored", base.terms + (anchor,), base.block_keep)


DIAL_TRAIN_MIX = 0.5


def _posterior_terms(L: int, nb: int, mix: float) -> tuple[Term, ...]:
    """Terms of a model whose first block mixes the coarse posterior (weight ``mix``) and a free
    block that learns the fine label with weight ``1 - mix``."""
    posterior = Term(onehot(0, nb), tuple(onehot(0, L, 1.0)[:L - 1] + (1.0,) for _ in range(nb)),
                     loss="posterior")
    return (_prefix_coarse(L, nb, fine_weight=1.0 - mix), _full_fine(L, nb, prefix_grad=1.0 - mix),
            _suffix_within(L, nb), posterior)


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
    return Schedule(dial_name(value), _posterior_terms(L, nb, DIAL_TRAIN_MIX),
                    recipe=dict(BEYOND_RECIPE) | {"select_best": False},
                    head_options={"segments": [1, nb - 1],
                                  "posterior": {"mix": value, "train_mix": DIAL_TRAIN_MIX}})


def bottleneck(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Coarse-posterior bottleneck: the prefix is the coarse posterior through learned prototypes,
    trained as such (the dial at 1 encodes the same way from a model trained half-and-half). Its
    prefix has rank at most the number of coarse classes."""
    L, nb = num_levels, num_blocks
    return Schedule("bottleneck", _posterior_terms(L, nb, 1.0), recipe=dict(BEYOND_RECIPE),
                    head_options={"segments": [1, nb - 1], "posterior": {"mix": 1.0}})




def flat(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The raw backbone: an identity head (prefixes are renormalised truncations), nothing trained."""
    return Schedule("flat", (), head="identity")


def flat_pca(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The raw backbone on its principal axes, fitted on the training vectors: the prefix is PCA-64,
    the fair short view of the raw backbone (a floor for every steerability claim)."""
    return Schedule("flat_pca", (), head="pca")


# ------------------------------------------------------------------ closed-form projections and hybrids
#
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
        raise ValueError(f"{kind}'s setting must be {'at least 1' if kind == 'nuisance' else 'positive'}, "
                         f"got {setting:g}")
    return Schedule(_named(kind, setting), (), head="projection",
                    head_options={"projection": kind, "setting": float(setting)})


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
    anchor = Term(onehot(0, nb), tuple((0.0,) * L for _ in range(nb)), ANCHOR_WEIGHT, loss="distill",
                  temperature=ANCHOR_TEMPERATURE, teacher="backbone")
    return Schedule("proj_anchored", (full, prefix, suffix, anchor), block_keep(nb),
                    head_options={"prefix": _hybrid_prefix("init")})


def blend(value: float | None = None, num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The raw backbone's PCA-64 and a trained steerable prefix, mixed after training (WiSE-FT style):
    the prefix is ``value * n(trained) + (1 - value) * n(PCA-64)``. The model is trained as
    :func:`adversarial_mrl` at its strength (its free first block is the trained prefix), once for every
    ``value``: 0 is PCA-64's prefix, 1 Adversarial-MRL's. ``value``: BLEND_MIX when None."""
    value = BLEND_MIX if value is None else value
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"the blend must be in [0, 1], got {value:g}")
    base = adversarial_mrl(num_levels, num_blocks)
    return Schedule(_named("blend", value), base.terms, base.block_keep,
                    head_options={"prefix": {"projection": "pca", "mode": "mix", "mix": float(value)}})


def flat_random(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The raw backbone on a seeded random order of its dims: the prefix is a random 64 of them (a floor
    beside PCA-64: what the backbone gives with no choice of dims at all)."""
    return Schedule("flat_random", (), head="random_subset")


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
    return Schedule("coarse_onehot", (classifier, full, suffix), block_keep(nb),
                    head_options={"segments": [1, nb - 1], "posterior": {"mix": 1.0, "hard": True}})


def mrl_reference(name: str, num_levels: int = 2) -> str:
    """The MRL trained the way method ``name`` is: ``mrl_supcon`` for the coarse-only family's recipe
    (SupCon, 20 epochs, batch 64, lr 1e-3, cosine), else the paper's ``mrl``."""
    keys = ("epochs", "batch_size", "lr", "lr_schedule")
    recipe = preset(name, num_levels).recipe
    return "mrl_supcon" if all(recipe.get(k) == BEYOND_RECIPE[k] for k in keys) else "mrl"


# ------------------------------------------------------------------------------------ registry

@dataclass(frozen=True)
class Method:
    """A named method: how to build its schedule, and how people and tables call it."""

    name: str
    label: str
    build: Callable[[int, int], Schedule]  # (num_levels, num_blocks) -> Schedule
    about: str
    short_label: str = ""  # for tight figure axes; the label when empty
    at: Callable[[float], Callable[[int, int], Schedule]] | None = None  # the builder at a setting (name@x)

    @property
    def short(self) -> str:
        return self.short_label or self.label


_ENTRIES = (
    Method("flat", "Flat", flat, "the raw backbone, truncated (no training)"),
    Method("flat_pca", "Flat (PCA)", flat_pca, "the raw backbone on its principal axes: a PCA-64 prefix (no training)"),
    Method("flat_random", "Flat (random)", flat_random,
           "a floor: the raw backbone, a seeded random subset of its dims as the prefix (no training)"),
    Method("mrl", "MRL", mrl, "Matryoshka: every prefix on the finest level"),
    Method("v5", "V5", v5, "hierarchy-aligned: the short prefix on the coarse level, the full vector on the finest"),
    Method("inverted", "Inverted", inverted, "ablation: V5 with the levels swapped"),
    Method("no_prefix", "No-prefix", no_prefix, "ablation: the full vector only"),
    Method("uhmt", "UHMT", uhmt, "ablation: every path on an equal mix of the levels"),
    Method("mrl_supcon", "MRL (SupCon recipe)", mrl_supcon,
           "MRL in the coarse-only family's loss and recipe (its accuracy reference)", "MRL-SupCon"),
    Method("heal", "HEAL", heal, "coarse SupCon on the prefix, hierarchical SupCon on the full vector"),
    Method("separated", "Separated", separated, "HEAL whose prefix gets coarse gradients only"),
    Method("successive", "Successive", successive,
           "Separated, plus the suffix learns the fine label inside its coarse class"),
    Method("successive_balanced", "Successive (balanced)", partial(successive, balanced=True),
           "Successive with class-balanced batches", "Successive-bal"),
    Method("adversarial", "Adversarial", adversarial,
           "Separated, plus a reversed within-coarse fine contrast on the prefix (adversarial@STRENGTH)",
           at=lambda v: partial(adversarial, strength=v)),
    Method("adversarial_mrl", "Adversarial (MRL recipe)", adversarial_mrl,
           "Adversarial's prefix on a model otherwise trained as MRL (adversarial_mrl@STRENGTH)", "Adversarial-MRL",
           at=lambda v: partial(adversarial_mrl, strength=v)),
    Method("anchored", "Anchored", anchored,
           "Adversarial (MRL recipe) whose prefix also keeps the backbone's neighbourhoods (classes never seen)"),
    Method("bottleneck", "Bottleneck", bottleneck, "the prefix is the coarse posterior (rank <= coarse classes)"),
    Method("coarse_onehot", "Coarse one-hot", coarse_onehot,
           "a floor: the prefix is a coarse classifier's one-hot prediction, the rest MRL"),
    Method("dial", "Dial", partial(dial, DIAL_TRAIN_MIX),
           "one model, its prefix set after training from MRL-like (0) to the bottleneck (1): dial@VALUE",
           at=lambda v: partial(dial, v)),
    Method("mrl_distill", "MRL-distill", mrl_distill,
           "MRL whose prefix learns to shortlist for its own full vector (multi-stage search)"),
    Method("gep", "GEP projection", lambda L=2, nb=4: projection("gep", None, L, nb),
           "closed form: coarse separation and variance against fine spread inside a coarse class (gep@LAMBDA)",
           "GEP", at=lambda v: (lambda L=2, nb=4: projection("gep", v, L, nb))),
    Method("nuisance", "Nuisance removal", lambda L=2, nb=4: projection("nuisance", None, L, nb),
           "closed form: PCA after removing the directions fine classes spread along (nuisance@K)",
           "Nuisance", at=lambda v: (lambda L=2, nb=4: projection("nuisance", v, L, nb))),
    Method("lda", "Coarse LDA + PCA", lambda L=2, nb=4: projection("lda", None, L, nb),
           "closed form: coarse discriminant directions weighted W, then PCA (lda@W)", "LDA+PCA",
           at=lambda v: (lambda L=2, nb=4: projection("lda", v, L, nb))),
    Method("proj_mrl", "Projection + MRL", proj_mrl,
           "hybrid: a fixed projection as the prefix, the other blocks trained as MRL", "Proj+MRL"),
    Method("proj_anchored", "Projection, anchored", proj_anchored,
           "hybrid: a prefix initialised at a projection, trained coarse, held near the backbone", "Proj-anchored"),
    Method("blend", "Blend", lambda L=2, nb=4: blend(None, L, nb),
           "hybrid: PCA-64 and Adversarial-MRL's prefix mixed after training (blend@A)",
           at=lambda v: (lambda L=2, nb=4: blend(v, L, nb))),
)
METHODS: dict[str, Method] = {m.name: m for m in _ENTRIES}


def dial_name(value: float) -> str:
    return f"dial@{value:g}"


def parse_setting(name: str) -> tuple[str, float | None]:
    """(method, setting) of a name such as ``adversarial@0.1`` or ``dial@0.5`` (also ``dial0.5``,
    ``dial=0.5``); the setting is None for a bare name."""
    key = name.lower().replace("-", "_")
    base, sep, value = key.partition("@")
    if not sep and key.startswith("dial") and key != "dial":
        base, value, sep = "dial", key[4:].lstrip("=_:"), "@"
    if not sep:
        return key, None
    try:
        return base, float(value)
    except ValueError:
        raise ValueError(f"bad setting in method {name!r}; write it as {base}@0.5") from None


def parse_dial(name: str) -> float | None:
    """The dial value in a method name such as ``dial@0.5``, else None."""
    base, value = parse_setting(name)
    return value if base == "dial" else None


def method(name: str) -> Method:
    """The registry entry of ``name``; ``name@x`` is a method with a setting (the dial's value, the
    adversary's strength) at ``x``."""
    base, value = parse_setting(name)
    entry = METHODS.get(base)
    if entry is None or (value is None and base == "dial") or (value is not None and entry.at is None):
        with_settings = ", ".join(f"{m}@X" for m, e in METHODS.items() if e.at)
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(m for m in METHODS if m != 'dial')} "
                         f"(with a setting: {with_settings})")
    if value is None:
        return entry
    build = entry.at(value)
    return Method(build().name, f"{entry.label} {value:g}", build, entry.about, f"{entry.short} {value:g}")


def preset(name: str, num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """The schedule of method ``name`` (``dial@x``: the dial at ``x``)."""
    return method(name).build(num_levels, num_blocks)


def canonical(name: str) -> str:
    """How runs and records name method ``name``: ``dial0.5`` -> ``dial@0.5``, a setting at its current
    default -> the bare name; an unregistered name is returned as it is."""
    try:
        return preset(name).name
    except ValueError:
        return name


def label(name: str) -> str:
    """How tables and figures name a method; an unregistered name is shown as it is."""
    try:
        return method(name).label
    except ValueError:
        return name


def short_label(name: str) -> str:
    try:
        return method(name).short
    except ValueError:
        return name


def display_order(names: Iterable[str]) -> list[str]:
    """``names`` in registry order (settings by value, at their method's place); unknown names last,
    alphabetically."""
    order = list(METHODS)

    def key(name: str) -> tuple:
        try:
            base, value = parse_setting(name)
        except ValueError:
            base, value = name, None
        return (0, order.index(base), value if value is not None else -1.0, "") if base in METHODS else (1, 0, 0.0, name)

    return sorted(dict.fromkeys(names), key=key)
