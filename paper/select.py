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
from typing import Sequence

import numpy as np

from steerable.io import atomic_write_json
from steerable.methods import canonical
from steerable.runs import ResultsStore, RunRecord, RunSpec, run_sweep
from steerable.runs.sweep import DEFAULT_GROUP

from .grids import CAPS
from .claims import load_claims

SELECTIONS_DIR = Path(__file__).with_name("selections")
OBJECTIVE = ("the highest mean validation S (standard protocol) over the data sets and seeds, among the "
             "candidates whose mean validation FullFine is no more than {margin} pt below the reference's on "
             "every data set")


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


# Candidates name their settings explicitly: a bare name would change meaning with the default.
SELECTIONS = {
    "adversarial_strength": Selection("ADVERSARIAL_STRENGTH (preset adversarial)",
                                      ("adversarial@0.1", "adversarial@0.3", "adversarial@1"), "mrl_supcon"),
    "adversarial_mrl_strength": Selection("the strength of preset adversarial_mrl",
                                          ("adversarial_mrl@0.1", "adversarial_mrl@0.3", "adversarial_mrl@1"), "mrl"),
    "dial_setting": Selection("the dial setting recommended in the README",
                              ("dial@0.1", "dial@0.25", "dial@0.5", "dial@0.75", "dial@1"), "mrl_supcon"),
}


def selection_runs(sel: Selection, settings: dict | None = None) -> list[RunSpec]:
    confirmation = set(load_claims()["confirmation_datasets"])
    if confirmation & set(sel.datasets):
        raise ValueError(f"a selection may not read the confirmation data sets ({', '.join(sorted(confirmation))})")
    base = CAPS | (settings or {}) | {"split": "validation"}
    return [RunSpec(ds, m, s, **base) for ds in sel.datasets for m in (*sel.candidates, sel.reference)
            for s in sel.seeds]


def choose(sel: Selection, records: Sequence[RunRecord]) -> dict:
    """The selection's outcome from its validation runs: every candidate's scores, the eligible ones,
    the chosen one."""
    by = {(r.dataset, canonical(r.method), r.seed): r.metrics["standard"] for r in records if r.split == "validation"}

    def mean(ds: str, m: str, metric: str) -> float | None:
        key = canonical(m)  # records name a setting at its default bare
        vals = [by[(ds, key, s)][metric] for s in sel.seeds if (ds, key, s) in by]
        return float(np.mean(vals)) if len(vals) == len(sel.seeds) else None

    scores = {m: {ds: {"S": mean(ds, m, "steerability_score"), "FullFine": mean(ds, m, "full_fine")}
                  for ds in sel.datasets} for m in (*sel.candidates, sel.reference)}
    missing = sorted(m for m, d in scores.items() for v in d.values() if None in v.values())
    if missing:
        raise ValueError(f"selection runs missing for {', '.join(dict.fromkeys(missing))}")
    eligible = [m for m in sel.candidates
                if all(scores[m][ds]["FullFine"] >= scores[sel.reference][ds]["FullFine"] - sel.margin
                       for ds in sel.datasets)]
    mean_s = {m: float(np.mean([scores[m][ds]["S"] for ds in sel.datasets])) for m in sel.candidates}
    chosen = max(eligible, key=lambda m: mean_s[m]) if eligible else None
    return {"setting": sel.setting, "split": "validation", "datasets": list(sel.datasets), "seeds": list(sel.seeds),
            "objective": OBJECTIVE.format(margin=100 * sel.margin), "reference": sel.reference,
            "candidates": list(sel.candidates), "scores": scores, "mean_S": mean_s, "eligible": eligible,
            "chosen": chosen}


def select(name: str, results: str | Path, *, executor=None, data_dir: str | None = None, progress: bool = True,
           settings: dict | None = None, command: str = "", group: int = DEFAULT_GROUP) -> dict:
    """Run selection ``name`` into the store ``results`` and record its outcome in paper/selections/
    (``group``: :func:`~steerable.runs.run_sweep`'s)."""
    if name not in SELECTIONS:
        raise ValueError(f"unknown selection {name!r}; choose from {', '.join(SELECTIONS)}")
    sel = SELECTIONS[name]
    runs = selection_runs(sel, settings)
    run_sweep(runs, results, executor=executor, data_dir=data_dir, progress=progress, group=group)
    ids = {r.run_id for r in runs}
    outcome = choose(sel, [r for r in ResultsStore(results).records() if r.run_id in ids])
    outcome |= {"name": name, "command": command, "date": datetime.date.today().isoformat()}
    atomic_write_json(SELECTIONS_DIR / f"{name}.json", outcome)
    return outcome


def describe(outcome: dict) -> str:
    """One line per candidate, and the choice."""
    lines = [f"{outcome['name']}: {outcome['setting']}, chosen on the validation split of "
             f"{', '.join(outcome['datasets'])} (seeds {', '.join(map(str, outcome['seeds']))}); {outcome['objective']}"]
    ref = outcome["scores"][outcome["reference"]]
    for m in outcome["candidates"]:
        cells = "; ".join(f"{ds} S {v['S']:+.3f}, FullFine {100 * v['FullFine']:.1f} (ref {100 * ref[ds]['FullFine']:.1f})"
                          for ds, v in outcome["scores"][m].items())
        mark = "chosen" if m == outcome["chosen"] else "eligible" if m in outcome["eligible"] else "out of bounds"
        lines.append(f"  {m}: mean S {outcome['mean_S'][m]:+.3f} [{mark}]: {cells}")
    return "\n".join(lines)


def load_outcome(name: str) -> dict | None:
    path = SELECTIONS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
