"""The methods: every supervision method as a value, and the one registry of names, labels and order.

A method is a :class:`~steerable.schedule.Schedule` built for a number of levels and blocks. V5, MRL,
the ablations and MRL-distill (:mod:`.matryoshka`), the coarse-only prefixes and the classifier floor
(:mod:`.coarse`), the raw backbone's views, the closed-form projections and their hybrids
(:mod:`.fitted`) are all entries of :data:`METHODS`; :func:`preset` builds one by name, :func:`label`
names it for people, :func:`display_order` sorts names as every table and figure lists them, and each
:class:`Method` says whether it trains, its colour and its accuracy reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable

from ..schedule import Schedule
from . import coarse, fitted
from .coarse import (
    ADVERSARIAL_MRL_STRENGTH,
    ADVERSARIAL_STRENGTH,
    BEYOND_RECIPE,
    DIAL_TRAIN_MIX,
    adversarial,
    adversarial_mrl,
    anchored,
    bottleneck,
    coarse_onehot,
    dial,
    heal,
    mrl_supcon,
    separated,
    successive,
)
from .fitted import (
    BLEND_MIX,
    PROJECTION_SETTINGS,
    blend,
    flat,
    flat_pca,
    flat_random,
    proj_anchored,
    proj_mrl,
    projection,
)
from .matryoshka import inverted, mrl, mrl_distill, no_prefix, uhmt, v5
from .parts import dial_name

# Colours of the methods every figure shows the same way (the others take the next free colour).
COLOURS = {"v5": "tab:red", "mrl": "tab:blue", "flat": "tab:gray", "heal": "tab:orange"}


def default_setting(name: str) -> float | None:
    """The setting the bare method ``name`` runs at now (None for a method without one, or without a
    default, such as the dial)."""
    return {
        "adversarial": coarse.ADVERSARIAL_STRENGTH,
        "adversarial_mrl": coarse.ADVERSARIAL_MRL_STRENGTH,
        "blend": fitted.BLEND_MIX,
        **fitted.PROJECTION_SETTINGS,
    }.get(name)  # read where each is set


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
    build: Callable[..., Schedule]  # (num_levels=2, num_blocks=4) -> Schedule
    about: str
    short_label: str = ""  # for tight figure axes; the label when empty
    at: Callable[[float], Callable[..., Schedule]] | None = None  # the builder at a setting (name@x)

    @property
    def short(self) -> str:
        return self.short_label or self.label

    @property
    def trains(self) -> bool:
        """Whether the method trains a head (Flat, the PCA and random views and the projections do not)."""
        return self.build(2, 4).trains

    @property
    def takes_setting(self) -> bool:
        """Whether the method has a setting in its name (``name@x``)."""
        return self.at is not None

    @property
    def needs_setting(self) -> bool:
        """Whether the method runs only at a setting named with it (it has no default: the dial)."""
        return self.takes_setting and default_setting(self.name) is None

    @property
    def colour(self) -> str | None:
        """The colour every figure shows it in, where it has one of its own."""
        return COLOURS.get(self.name)

    @property
    def reference(self) -> str:
        """The MRL its accuracy is held against: MRL trained with its recipe (:func:`mrl_reference`)."""
        return mrl_reference(self.name)


_ENTRIES = (
    Method("flat", "Flat", flat, "the raw backbone, truncated (no training)"),
    Method("flat_pca", "Flat (PCA)", flat_pca, "the raw backbone on its principal axes: a PCA-64 prefix (no training)"),
    Method(
        "flat_random",
        "Flat (random)",
        flat_random,
        "a floor: the raw backbone, a seeded random subset of its dims as the prefix (no training)",
    ),
    Method("mrl", "MRL", mrl, "Matryoshka: every prefix on the finest level"),
    Method("v5", "V5", v5, "hierarchy-aligned: the short prefix on the coarse level, the full vector on the finest"),
    Method("inverted", "Inverted", inverted, "ablation: V5 with the levels swapped"),
    Method("no_prefix", "No-prefix", no_prefix, "ablation: the full vector only"),
    Method("uhmt", "UHMT", uhmt, "ablation: every path on an equal mix of the levels"),
    Method(
        "mrl_supcon",
        "MRL (SupCon recipe)",
        mrl_supcon,
        "MRL in the coarse-only family's loss and recipe (its accuracy reference)",
        "MRL-SupCon",
    ),
    Method("heal", "HEAL", heal, "coarse SupCon on the prefix, hierarchical SupCon on the full vector"),
    Method("separated", "Separated", separated, "HEAL whose prefix gets coarse gradients only"),
    Method(
        "successive",
        "Successive",
        successive,
        "Separated, plus the suffix learns the fine label inside its coarse class",
    ),
    Method(
        "successive_balanced",
        "Successive (balanced)",
        partial(successive, balanced=True),
        "Successive with class-balanced batches",
        "Successive-bal",
    ),
    Method(
        "adversarial",
        "Adversarial",
        adversarial,
        "Separated, plus a reversed within-coarse fine contrast on the prefix (adversarial@STRENGTH)",
        at=lambda v: partial(adversarial, strength=v),
    ),
    Method(
        "adversarial_mrl",
        "Adversarial (MRL recipe)",
        adversarial_mrl,
        "Adversarial's prefix on a model otherwise trained as MRL (adversarial_mrl@STRENGTH)",
        "Adversarial-MRL",
        at=lambda v: partial(adversarial_mrl, strength=v),
    ),
    Method(
        "anchored",
        "Anchored",
        anchored,
        "Adversarial (MRL recipe) whose prefix also keeps the backbone's neighbourhoods (classes never seen)",
    ),
    Method("bottleneck", "Bottleneck", bottleneck, "the prefix is the coarse posterior (rank <= coarse classes)"),
    Method(
        "coarse_onehot",
        "Coarse one-hot",
        coarse_onehot,
        "a floor: the prefix is a coarse classifier's one-hot prediction, the rest MRL",
    ),
    Method(
        "dial",
        "Dial",
        partial(dial, DIAL_TRAIN_MIX),
        "one model, its prefix set after training from MRL-like (0) to the bottleneck (1): dial@VALUE",
        at=lambda v: partial(dial, v),
    ),
    Method(
        "mrl_distill",
        "MRL-distill",
        mrl_distill,
        "MRL whose prefix learns to shortlist for its own full vector (multi-stage search)",
    ),
    Method(
        "gep",
        "GEP projection",
        partial(projection, "gep", None),
        "closed form: coarse separation and variance against fine spread inside a coarse class (gep@LAMBDA)",
        "GEP",
        at=lambda v: partial(projection, "gep", v),
    ),
    Method(
        "nuisance",
        "Nuisance removal",
        partial(projection, "nuisance", None),
        "closed form: PCA after removing the directions fine classes spread along (nuisance@K)",
        "Nuisance",
        at=lambda v: partial(projection, "nuisance", v),
    ),
    Method(
        "lda",
        "Coarse LDA + PCA",
        partial(projection, "lda", None),
        "closed form: coarse discriminant directions weighted W, then PCA (lda@W)",
        "LDA+PCA",
        at=lambda v: partial(projection, "lda", v),
    ),
    Method(
        "proj_mrl",
        "Projection + MRL",
        proj_mrl,
        "hybrid: a fixed projection as the prefix, the other blocks trained as MRL",
        "Proj+MRL",
    ),
    Method(
        "proj_anchored",
        "Projection, anchored",
        proj_anchored,
        "hybrid: a prefix initialised at a projection, trained coarse, held near the backbone",
        "Proj-anchored",
    ),
    Method(
        "blend",
        "Blend",
        partial(blend, None),
        "hybrid: PCA-64 and Adversarial-MRL's prefix mixed after training (blend@A)",
        at=lambda v: partial(blend, v),
    ),
)
METHODS: dict[str, Method] = {m.name: m for m in _ENTRIES}


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
    if entry is None or (value is None and entry.needs_setting) or (value is not None and entry.at is None):
        with_settings = ", ".join(f"{m}@X" for m, e in METHODS.items() if e.at)
        raise ValueError(
            f"unknown method {name!r}; choose from {', '.join(m for m, e in METHODS.items() if not e.needs_setting)} "
            f"(with a setting: {with_settings})"
        )
    if value is None:
        return entry
    assert entry.at is not None  # checked above
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


def trains(name: str) -> bool:
    """Whether method ``name`` trains a head; a name outside the registry (a schedule of one's own) does."""
    try:
        return method(name).trains
    except ValueError:
        return True


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
        return (
            (0, order.index(base), value if value is not None else -1.0, "") if base in METHODS else (1, 0, 0.0, name)
        )

    return sorted(dict.fromkeys(names), key=key)


__all__ = [
    "METHODS",
    "Method",
    "COLOURS",
    "preset",
    "method",
    "canonical",
    "label",
    "short_label",
    "display_order",
    "parse_setting",
    "parse_dial",
    "dial_name",
    "trains",
    "default_setting",
    "mrl_reference",
    # the methods' builders and the settings they run at
    "v5",
    "mrl",
    "inverted",
    "no_prefix",
    "uhmt",
    "mrl_distill",
    "mrl_supcon",
    "heal",
    "separated",
    "successive",
    "adversarial",
    "adversarial_mrl",
    "anchored",
    "bottleneck",
    "coarse_onehot",
    "dial",
    "flat",
    "flat_pca",
    "flat_random",
    "projection",
    "proj_mrl",
    "proj_anchored",
    "blend",
    "ADVERSARIAL_STRENGTH",
    "ADVERSARIAL_MRL_STRENGTH",
    "DIAL_TRAIN_MIX",
    "BEYOND_RECIPE",
    "PROJECTION_SETTINGS",
    "BLEND_MIX",
]
