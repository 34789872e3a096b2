"""Selection steps: every setting chosen by looking at results is chosen here, on the validation split
of the selection data sets only, and the choice is recorded with its candidates and scores.

``python -m paper select NAME`` runs each candidate (and the accuracy reference) measured on the
validation split (``RunSpec(split="validation")``: the test split plays no part), applies the stated
objective, and writes ``paper/selections/NAME.json``. The confirmation data sets of
``paper/claims.json`` are refused: no selection reads them.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, cast

import numpy as np

from steerable.atomic import atomic_write_json
from steerable.methods import canonical
from steerable.runs import ResultsStore, RunRecord, RunSpec, run_sweep
from steerable.runs.sweep import DEFAULT_GROUP

from .claims import load_claims
from .grids import BLEND_CANDIDATES, CAPS, PROJECTION_CANDIDATES, coarse_held_out

SELECTIONS_DIR = Path(__file__).with_name("selections")
OBJECTIVE = (
    "the highest mean validation S (standard protocol) over the data sets and seeds, among the "
    "candidates whose mean validation FullFine is no more than {margin} pt below the reference's on "
    "every data set"
)


@dataclass(frozen=True)
class Selection:
    """What is chosen (a setting of ``steerable.methods``), among which candidates, against which
    accuracy reference."""

    setting: str
    candidates: tuple[str, ...]
    reference: str
    seeds: tuple[int, ...] = (42, 123)
    margin: float = 0.005
    datasets: tuple[str, ...] = field(default_factory=lambda: tuple(load_claims()["selection_datasets"]))


EPISODIC_OBJECTIVE = (
    "per group, the highest mean episodic open-set coarse k-NN accuracy at the shortest prefix "
    "(validation texts of coarse classes held out of training, drawn per seed) over the data sets "
    "and seeds, among the candidates whose mean validation S (standard protocol, on the seen "
    "classes) is above the reference's and whose mean fine-label probe on the prefix is below the "
    "reference's on every data set; where no candidate is, the highest mean episodic accuracy"
)
EPISODE_SEEDS = (1, 2, 3)  # other seeds than any test grid's: the episodes are not the test's held-out draws


@dataclass(frozen=True)
class EpisodicSelection:
    """A choice made for classes never seen in training: each group of ``groups`` (what is chosen, e.g. one
    projection's setting) picks one of its candidates by :data:`EPISODIC_OBJECTIVE`, on validation runs
    that hold whole coarse classes out of training (``coarse:K``, K as the open-set grid's), against the
    ``reference`` method's runs on the same episodes. The test split, and so the test's held-out
    classes, is never read."""

    setting: str
    groups: dict
    reference: str = "heal"
    seeds: tuple[int, ...] = EPISODE_SEEDS
    datasets: tuple[str, ...] = field(default_factory=lambda: tuple(load_claims()["selection_datasets"]))

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(m for ms in self.groups.values() for m in ms)


# Candidates name their settings explicitly: a bare name would change meaning with the default.
SELECTIONS: dict[str, Selection | EpisodicSelection] = {
    "adversarial_strength": Selection(
        "ADVERSARIAL_STRENGTH (preset adversarial)",
        ("adversarial@0.1", "adversarial@0.3", "adversarial@1"),
        "mrl_supcon",
    ),
    "adversarial_mrl_strength": Selection(
        "the strength of preset adversarial_mrl",
        ("adversarial_mrl@0.1", "adversarial_mrl@0.3", "adversarial_mrl@1"),
        "mrl",
    ),
    "dial_setting": Selection(
        "the dial setting recommended in the README",
        ("dial@0.1", "dial@0.25", "dial@0.5", "dial@0.75", "dial@1"),
        "mrl_supcon",
    ),
    "projection_settings": EpisodicSelection("PROJECTION_SETTINGS (presets gep, nuisance, lda)", PROJECTION_CANDIDATES),
    "hybrid_projection": EpisodicSelection(
        "HYBRID_PROJECTION (the prefix the hybrids proj_mrl and proj_anchored start from)",
        {"projection": ("gep", "nuisance", "lda")},
    ),  # each at the setting projection_settings chose
    "blend_mix": EpisodicSelection("BLEND_MIX (preset blend)", {"blend": BLEND_CANDIDATES}),
}


def selection_runs(
    sel: Selection | EpisodicSelection, settings: dict | None = None, data_dir: str | None = None
) -> list[RunSpec]:
    confirmation = set(load_claims()["confirmation_datasets"])
    if confirmation & set(sel.datasets):
        raise ValueError(f"a selection may not read the confirmation data sets ({', '.join(sorted(confirmation))})")
    base = CAPS | (settings or {}) | {"split": "validation"}

    def held(ds: str) -> dict:
        return {"unseen": f"coarse:{coarse_held_out(ds, data_dir)}"} if isinstance(sel, EpisodicSelection) else {}

    return [
        RunSpec(ds, m, s, **base, **held(ds))
        for ds in sel.datasets
        for m in (*sel.candidates, sel.reference)
        for s in sel.seeds
    ]


def choose(sel: Selection, records: Sequence[RunRecord]) -> dict:
    """The selection's outcome from its validation runs: every candidate's scores, the eligible ones,
    the chosen one."""
    by = {(r.dataset, canonical(r.method), r.seed): r.metrics["standard"] for r in records if r.split == "validation"}

    def mean(ds: str, m: str, metric: str) -> float | None:
        key = canonical(m)  # records name a setting at its default bare
        vals = [by[(ds, key, s)].metric(metric) for s in sel.seeds if (ds, key, s) in by]
        return float(np.mean(vals)) if len(vals) == len(sel.seeds) else None

    found = {
        m: {ds: {"S": mean(ds, m, "steerability_score"), "FullFine": mean(ds, m, "full_fine")} for ds in sel.datasets}
        for m in (*sel.candidates, sel.reference)
    }
    missing = sorted(m for m, d in found.items() for v in d.values() if None in v.values())
    if missing:
        raise ValueError(f"selection runs missing for {', '.join(dict.fromkeys(missing))}")
    scores = cast(dict[str, dict[str, dict[str, float]]], found)  # none is missing
    eligible = [
        m
        for m in sel.candidates
        if all(scores[m][ds]["FullFine"] >= scores[sel.reference][ds]["FullFine"] - sel.margin for ds in sel.datasets)
    ]
    mean_s = {m: float(np.mean([scores[m][ds]["S"] for ds in sel.datasets])) for m in sel.candidates}
    chosen = max(eligible, key=lambda m: mean_s[m]) if eligible else None
    return {
        "setting": sel.setting,
        "split": "validation",
        "datasets": list(sel.datasets),
        "seeds": list(sel.seeds),
        "objective": OBJECTIVE.format(margin=100 * sel.margin),
        "reference": sel.reference,
        "candidates": list(sel.candidates),
        "scores": scores,
        "mean_S": mean_s,
        "eligible": eligible,
        "chosen": chosen,
    }


def choose_episodic(sel: EpisodicSelection, records: Sequence[RunRecord]) -> dict:
    """An episodic selection's outcome: every candidate's and the reference's scores per data set (mean
    over seeds: validation S and fine probe on the seen classes, episodic accuracy on the held-out ones),
    the eligible candidates and the choice of each group."""
    by = {(r.dataset, canonical(r.method), r.seed): r for r in records if r.split == "validation" and r.unseen}

    def mean(ds: str, m: str, read) -> float | None:
        recs = [by.get((ds, canonical(m), s)) for s in sel.seeds]
        return float(np.mean([read(r) for r in recs])) if all(recs) else None

    def scores(ds: str, m: str) -> dict:
        fine = lambda r: r.level_names[-1]  # noqa: E731
        return {
            "S": mean(ds, m, lambda r: r.metrics["standard"].steerability_score),
            "probe": mean(ds, m, lambda r: r.probe.accuracy[fine(r)]),
            "episodic": mean(ds, m, lambda r: r.open_set.at(r.level_names[0], 0)),
        }

    table = {m: {ds: scores(ds, m) for ds in sel.datasets} for m in (*sel.candidates, sel.reference)}
    missing = sorted(m for m, d in table.items() for v in d.values() if None in v.values())
    if missing:
        raise ValueError(f"selection runs missing for {', '.join(dict.fromkeys(missing))}")
    ref = table[sel.reference]
    eligible = [
        m
        for m in sel.candidates
        if all(table[m][ds]["S"] > ref[ds]["S"] and table[m][ds]["probe"] < ref[ds]["probe"] for ds in sel.datasets)
    ]
    reach = {m: float(np.mean([table[m][ds]["episodic"] for ds in sel.datasets])) for m in sel.candidates}
    chosen = {}
    for group, cands in sel.groups.items():
        pool = [m for m in cands if m in eligible] or list(cands)
        chosen[group] = max(pool, key=lambda m: reach[m])
    return {
        "setting": sel.setting,
        "split": "validation",
        "episodes": "coarse:K held out of training per seed (K as the open-set grid's)",
        "datasets": list(sel.datasets),
        "seeds": list(sel.seeds),
        "objective": EPISODIC_OBJECTIVE,
        "reference": sel.reference,
        "groups": {g: list(c) for g, c in sel.groups.items()},
        "candidates": list(sel.candidates),
        "scores": table,
        "mean_episodic": reach,
        "eligible": eligible,
        "chosen": chosen,
    }


def select(
    name: str,
    results: str | Path,
    *,
    executor=None,
    data_dir: str | None = None,
    progress: bool = True,
    settings: dict | None = None,
    command: str = "",
    group: int = DEFAULT_GROUP,
) -> dict:
    """Run selection ``name`` into the store ``results`` and record its outcome in paper/selections/
    (``group``: :func:`~steerable.runs.run_sweep`'s)."""
    if name not in SELECTIONS:
        raise ValueError(f"unknown selection {name!r}; choose from {', '.join(SELECTIONS)}")
    sel = SELECTIONS[name]
    runs = selection_runs(sel, settings, data_dir)
    run_sweep(runs, results, executor=executor, data_dir=data_dir, progress=progress, group=group)
    ids = {r.run_id for r in runs}
    records = [r for r in ResultsStore(results).records() if r.run_id in ids]
    outcome = choose_episodic(sel, records) if isinstance(sel, EpisodicSelection) else choose(sel, records)
    outcome |= {"name": name, "command": command, "date": datetime.date.today().isoformat()}
    atomic_write_json(SELECTIONS_DIR / f"{name}.json", outcome)
    return outcome


def describe(outcome: dict) -> str:
    """One line per candidate, and the choice."""
    if "groups" in outcome:
        return _describe_episodic(outcome)
    lines = [
        f"{outcome['name']}: {outcome['setting']}, chosen on the validation split of "
        f"{', '.join(outcome['datasets'])} (seeds {', '.join(map(str, outcome['seeds']))}); {outcome['objective']}"
    ]
    ref = outcome["scores"][outcome["reference"]]
    for m in outcome["candidates"]:
        cells = "; ".join(
            f"{ds} S {v['S']:+.3f}, FullFine {100 * v['FullFine']:.1f} (ref {100 * ref[ds]['FullFine']:.1f})"
            for ds, v in outcome["scores"][m].items()
        )
        mark = "chosen" if m == outcome["chosen"] else "eligible" if m in outcome["eligible"] else "out of bounds"
        lines.append(f"  {m}: mean S {outcome['mean_S'][m]:+.3f} [{mark}]: {cells}")
    return "\n".join(lines)


def _describe_episodic(outcome: dict) -> str:
    lines = [
        f"{outcome['name']}: {outcome['setting']}, chosen on the validation split of "
        f"{', '.join(outcome['datasets'])} with coarse classes held out (seeds "
        f"{', '.join(map(str, outcome['seeds']))}); {outcome['objective']}"
    ]
    ref = outcome["scores"][outcome["reference"]]
    lines.append(
        f"  reference {outcome['reference']}: "
        + "; ".join(
            f"{ds} S {v['S']:+.3f}, probe {100 * v['probe']:.1f}, episodic {100 * v['episodic']:.1f}"
            for ds, v in ref.items()
        )
    )
    for group, cands in outcome["groups"].items():
        for m in cands:
            cells = "; ".join(
                f"{ds} S {v['S']:+.3f}, probe {100 * v['probe']:.1f}, episodic {100 * v['episodic']:.1f}"
                for ds, v in outcome["scores"][m].items()
            )
            mark = (
                "chosen"
                if m == outcome["chosen"][group]
                else "eligible"
                if m in outcome["eligible"]
                else "not steerable enough"
            )
            lines.append(f"  {group}: {m}: mean episodic {100 * outcome['mean_episodic'][m]:.1f} [{mark}]: {cells}")
    return "\n".join(lines)


def load_outcome(name: str) -> dict | None:
    path = SELECTIONS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
