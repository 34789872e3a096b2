"""How many seeds a claim about classes never seen in training needs: a power analysis from open-set runs.

The draw of held-out classes changes with the seed and is the largest source of variance, so a claim
about them is planned before its runs: from the open-set runs already in a store (the references'
alone, before any run of the claim's candidates), the spread of paired differences between each
method and the floor (PCA-64) across seeds, per data set and kind of held-out classes, and from it the
seeds a one-sided paired t-test needs to reach 80 % power for a non-inferiority margin (true difference
0) and for a superiority effect.

``python -m paper power --results results/paper --out docs/power.md``
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

from steerable.atomic import atomic_write_text
from steerable.methods import label
from steerable.report import Results
from steerable.report.tables import open_set_values

POWER = 0.8
ALPHA = 0.05
# the claim's tests of one candidate on the three selection data sets (six each): the family a boundary
# test of the closest candidate is effectively adjusted over, for planning
PLANNING_TESTS = 18
MAX_SEEDS = 200


def seeds_needed(sd: float, effect: float, alpha: float, power: float = POWER) -> int:
    """The fewest seeds for a one-sided paired t-test at ``alpha`` to reject with probability ``power``
    when the true difference lies ``effect`` beyond the null's boundary, with differences of spread
    ``sd`` (noncentral t). ``MAX_SEEDS`` + 1 where even that many do not."""
    if sd <= 0:
        return 2
    for n in range(2, MAX_SEEDS + 1):
        crit = stats.t.ppf(1 - alpha, n - 1)
        if stats.nct.sf(crit, n - 1, effect * math.sqrt(n) / sd) >= power:
            return n
    return MAX_SEEDS + 1


def power_at(n: int, sd: float, effect: float, alpha: float) -> float:
    """The power of a one-sided paired t-test at ``alpha`` over ``n`` seeds, for a true difference ``effect``
    beyond the null's boundary and differences of spread ``sd``."""
    if sd <= 0:
        return 1.0
    return float(stats.nct.sf(stats.t.ppf(1 - alpha, n - 1), n - 1, effect * math.sqrt(n) / sd))


def differences(res: Results, floor: str = "flat_pca") -> list[dict]:
    """Per (data set, kind of held-out classes, method): the paired differences of coarse accuracy at the
    shortest prefix on the held-out texts, method minus ``floor``, over the seeds both ran."""
    out = []
    for ds, m, unseen in sorted(res.open_set):
        if m == floor or (ds, floor, unseen) not in res.open_set:
            continue
        what = f"accuracy/{res.levels[ds][0]}/0"
        a, b = open_set_values(res, ds, m, unseen, what), open_set_values(res, ds, floor, unseen, what)
        seeds = sorted(set(a) & set(b))
        if len(seeds) >= 2:
            d = [a[s] - b[s] for s in seeds]
            out.append(
                {
                    "dataset": ds,
                    "unseen": unseen,
                    "method": m,
                    "seeds": len(seeds),
                    "mean": float(np.mean(d)),
                    "sd": float(np.std(d, ddof=1)),
                }
            )
    return out


def plan(
    res: Results, datasets: Sequence[str], margin: float = 0.02, effect: float = 0.03, floor: str = "flat_pca"
) -> dict:
    """The seeds the goal's open-set conditions need on ``datasets``: per data set and kind, the largest
    spread of paired differences against ``floor`` among the methods run, and the seeds for a
    ``margin`` non-inferiority (kind coarse) and an ``effect`` superiority (kind fine) at 80 % power,
    at alpha and at alpha over the planning family."""
    rows = differences(res, floor)
    cells = []
    for ds in datasets:
        for kind, (name, size) in (("coarse", ("non-inferiority", margin)), ("fine", ("superiority", effect))):
            sds = [r for r in rows if r["dataset"] == ds and r["unseen"].startswith(kind)]
            if not sds:
                continue
            worst = max(sds, key=lambda r: r["sd"])
            cells.append(
                {
                    "dataset": ds,
                    "kind": kind,
                    "test": name,
                    "size": size,
                    "sd": worst["sd"],
                    "sd_method": worst["method"],
                    "sd_median": float(np.median([r["sd"] for r in sds])),
                    "seeds": {
                        "alpha": seeds_needed(worst["sd"], size, ALPHA),
                        "planning": seeds_needed(worst["sd"], size, ALPHA / PLANNING_TESTS),
                    },
                }
            )
    need = max((c["seeds"]["planning"] for c in cells), default=None)
    return {
        "floor": floor,
        "power": POWER,
        "alpha": ALPHA,
        "planning_tests": PLANNING_TESTS,
        "margin": margin,
        "effect": effect,
        "differences": rows,
        "cells": cells,
        "seeds": need,
    }


def write_power(
    res: Results, datasets: Sequence[str], out: str | Path, command: str, seeds_run: int | None = None
) -> dict:
    """Write the power analysis as a page (and its JSON beside it); returns the plan. ``seeds_run``: the
    seeds the grid can afford, whose power in each cell the page adds (at the largest and the median
    spread)."""
    p = plan(res, datasets)
    if seeds_run:
        for c in p["cells"]:
            c["power_at_seeds_run"] = {
                f"{spread} sd, {level}": power_at(seeds_run, c[key], c["size"], a)
                for spread, key in (("largest", "sd"), ("median", "sd_median"))
                for level, a in (("alpha", ALPHA), ("planning", ALPHA / PLANNING_TESTS))
            }
        p["seeds_run"] = seeds_run
    lines = [
        "# Power: how many seeds the open-set claims need",
        "",
        f"Generated by `{command}` from the open-set runs in the store (references and floors only; no run "
        "of the claim's candidates). Each seed draws other held-out classes, so the spread of paired "
        "differences across seeds decides how many seeds a claim about unseen classes needs.",
        "",
        f"Paired differences of coarse k-NN accuracy at 64 dims on the held-out texts, each method minus "
        f"{label(p['floor'])} (pt):",
        "",
        "| data set | held out | method | seeds | mean | sd |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['dataset']} | {r['unseen']} | {label(r['method'])} | {r['seeds']} | {100 * r['mean']:+.1f} | "
            f"{100 * r['sd']:.1f} |"
            for r in p["differences"]
        ],
        "",
        f"Seeds for {100 * POWER:.0f} % power of a one-sided paired t-test, at the largest sd of each cell "
        f"(a {100 * p['margin']:g}-pt non-inferiority margin with a true difference of 0 on unseen coarse "
        f"classes; a {100 * p['effect']:g}-pt superiority on unseen fine classes), at α = {ALPHA} and at "
        f"α = {ALPHA} / {PLANNING_TESTS} (one candidate's tests on the three data sets, the planning level):",
        "",
        "| data set | held out | test | largest sd (method) | median sd | seeds at α | seeds at α / "
        f"{PLANNING_TESTS} |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {c['dataset']} | {c['kind']} | {c['test']} {100 * c['size']:g} pt | {100 * c['sd']:.1f} "
            f"({label(c['sd_method'])}) | {100 * c['sd_median']:.1f} | {_n(c['seeds']['alpha'])} | "
            f"{_n(c['seeds']['planning'])} |"
            for c in p["cells"]
        ],
        "",
        f"Seeds the plan asks for: **{_n(p['seeds'])}** (the largest cell at the planning level).",
        "",
    ]
    if seeds_run:
        lines += [
            f"Power of the same tests at the {seeds_run} seeds the grid runs (largest / median sd; at α and "
            f"at α / {PLANNING_TESTS}):",
            "",
            "| data set | held out | test | power, largest sd | power, median sd |",
            "|---|---|---|---|---|",
            *[
                f"| {c['dataset']} | {c['kind']} | {c['test']} {100 * c['size']:g} pt | "
                + " | ".join(
                    f"{c['power_at_seeds_run'][f'{spread} sd, alpha']:.2f} / "
                    f"{c['power_at_seeds_run'][f'{spread} sd, planning']:.2f}"
                    for spread in ("largest", "median")
                )
                + " |"
                for c in p["cells"]
            ],
            "",
        ]
    atomic_write_text(out, "\n".join(lines))
    atomic_write_text(Path(out).with_suffix(".json"), json.dumps(p, indent=2) + "\n")
    return p


def _n(n: int | None) -> str:
    return "–" if n is None else f"more than {MAX_SEEDS}" if n > MAX_SEEDS else str(n)
