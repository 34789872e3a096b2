"""The paper's grids of runs: the outline's sweep, the coarse-only (beyond V5) sweep with the dial,
and the confirmation on fresh seeds of every method chosen after seeing the main grid.

How each chosen setting was picked (candidates, split, numbers) is in ``paper/selections.md``.
"""

from __future__ import annotations

from typing import Sequence

from steerable.methods import dial_name, mrl_reference
from steerable.runs import RunSpec, SweepSpec

PAPER_SEEDS = (42, 123, 456, 789, 1024)
MAIN_METHODS = ("v5", "mrl", "flat")
ABLATIONS = ("inverted", "no_prefix", "uhmt")
CAPS = {"max_train": 10_000, "max_test": 2_000}  # the original's caps (seeded subsamples)


def paper_sweep(datasets: Sequence[str], *, quick: bool = False, seeds: Sequence[int] | None = None,
                settings: dict | None = None) -> SweepSpec:
    """The paper's grid: V5, MRL, Flat everywhere; ablations on CLINC and TREC; 5 seeds; caps."""
    base = CAPS | (settings or {})
    if quick:
        ds = [d for d in datasets if d == "clinc150"] or list(datasets)[:1]
        return SweepSpec(ds, MAIN_METHODS, seeds or PAPER_SEEDS[:2], ablations=ABLATIONS,
                         ablation_datasets=ds, settings=base)
    return SweepSpec(datasets, MAIN_METHODS, seeds or PAPER_SEEDS, ablations=ABLATIONS,
                     ablation_datasets=[d for d in ("clinc150", "trec") if d in datasets],
                     settings=base)


BEYOND_METHODS = ("flat", "mrl", "v5", "mrl_supcon", "heal", "separated", "successive_balanced",
                  "adversarial", "adversarial_mrl", "bottleneck")
BEYOND_DATASETS = ("clinc150", "trec", "20newsgroups")
DIAL_DATASETS = ("clinc150", "trec", "20newsgroups")
DIAL_SETTINGS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)

# The coarse-only claims are tested on seeds that no earlier run used for every method picked after
# seeing PAPER_SEEDS runs: the dial at 0.75 (of the candidates with a free block in the prefix, the
# only one that beat HEAL with p < 0.01 on all three data sets on the main grid), the adversarial
# prefix (its strength was picked on seed 42) and Adversarial (MRL recipe) (picked on 20 Newsgroups
# seeds 42, 123 and 456 among ten variants of recipe and terms, after every SupCon-recipe method
# missed the paper MRL's accuracy there). A test on the seeds a choice was made on would be biased by
# it, so the confirmation reruns these methods, HEAL and the MRL references of the accuracy bounds on
# fresh seeds; reports keep the confirmation grid's records apart from the main tables.
CONFIRM_SEEDS = (7, 2718, 16180, 31415, 57721)
CONFIRM_METHODS = ("dial@0.75", "adversarial", "adversarial_mrl")


def confirm_references() -> tuple[str, ...]:
    """HEAL, the paper's MRL and the MRL trained as each of :data:`CONFIRM_METHODS` is."""
    same = sorted({mrl_reference(m) for m in CONFIRM_METHODS} - {"mrl"})
    return ("heal", "mrl", *same)


def confirm_sweep(datasets: Sequence[str], *, quick: bool = False,
                  settings: dict | None = None) -> list[RunSpec]:
    """:func:`confirm_references` and :data:`CONFIRM_METHODS` on CLINC, TREC and 20 Newsgroups, on
    :data:`CONFIRM_SEEDS`."""
    base = CAPS | (settings or {})
    seeds = CONFIRM_SEEDS[:2] if quick else CONFIRM_SEEDS
    main = [d for d in BEYOND_DATASETS if d in datasets][: 1 if quick else None]
    methods = (*confirm_references(), *CONFIRM_METHODS)
    return [RunSpec(ds, m, s, **base) for ds in main for m in methods for s in seeds]


def beyond_sweep(datasets: Sequence[str], *, quick: bool = False, seeds: Sequence[int] | None = None,
                 settings: dict | None = None) -> list[RunSpec]:
    """The coarse-only grid: HEAL, the new methods and the paper's MRL/V5/Flat on CLINC, TREC and 20
    Newsgroups; the dial's settings on the same three. 5 seeds; the paper sweep's caps.

    Dial runs come last, the first setting of each seed first, so that each seed's dial model is
    trained once and the other settings load it from the store's model cache.
    """
    base = CAPS | (settings or {})
    seeds = list(seeds or (PAPER_SEEDS[:2] if quick else PAPER_SEEDS))
    main = [d for d in BEYOND_DATASETS if d in datasets][: 1 if quick else None]
    dial_ds = [d for d in DIAL_DATASETS if d in datasets][: 1 if quick else None]
    values = (0.0, 0.25, 0.5, 1.0) if quick else DIAL_SETTINGS
    runs = [RunSpec(ds, m, s, **base) for ds in main for m in BEYOND_METHODS for s in seeds]
    for v in values:
        runs += [RunSpec(ds, dial_name(v), s, **base) for ds in dial_ds for s in seeds]
    return runs

