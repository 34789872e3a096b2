"""paper/power.py: the seeds a one-sided paired t-test needs, from the spread of paired differences."""

import math

import numpy as np
import pytest
from scipy import stats

from paper.power import differences, plan, seeds_needed
from steerable.report import Results

from test_verdicts import runs


def test_seeds_needed_reaches_the_power_and_one_fewer_does_not():
    n = seeds_needed(0.03, 0.02, 0.05)
    power = lambda k: stats.nct.sf(stats.t.ppf(0.95, k - 1), k - 1, 0.02 * math.sqrt(k) / 0.03)  # noqa: E731
    assert power(n) >= 0.8 > power(n - 1)
    assert seeds_needed(0.03, 0.02, 0.05 / 18) > n  # a stricter level needs more
    assert seeds_needed(0.06, 0.02, 0.05) > n  # so does a wider spread
    assert seeds_needed(0.0, 0.02, 0.05) == 2


def test_the_plan_takes_the_widest_spread_against_the_floor():
    recs = []
    for ds in ("clinc150", "trec"):
        for kind in ("coarse:2", "fine:0.2"):
            recs += runs(ds, "flat_pca", {"coarse_open": [0.8, 0.82, 0.78, 0.81, 0.79]}, unseen=kind)
            recs += runs(ds, "mrl", {"coarse_open": [0.75, 0.80, 0.70, 0.77, 0.72]}, unseen=kind)
            recs += runs(ds, "heal", {"coarse_open": [0.6, 0.62, 0.58, 0.61, 0.59]}, unseen=kind)
    res = Results(recs)
    rows = differences(res)
    assert len(rows) == 8 and all(r["seeds"] == 5 for r in rows)
    mrl = next(r for r in rows if r["method"] == "mrl" and r["dataset"] == "trec" and r["unseen"] == "coarse:2")
    d = np.array([0.75, 0.80, 0.70, 0.77, 0.72]) - np.array([0.8, 0.82, 0.78, 0.81, 0.79])
    assert mrl["mean"] == pytest.approx(d.mean()) and mrl["sd"] == pytest.approx(d.std(ddof=1))
    p = plan(res, ["clinc150", "trec"])
    cell = p["cells"][0]
    assert (cell["dataset"], cell["kind"], cell["sd_method"]) == ("clinc150", "coarse", "mrl")  # HEAL's spread is 0
    assert cell["seeds"]["planning"] == seeds_needed(d.std(ddof=1), 0.02, 0.05 / 18)
    assert p["seeds"] == max(c["seeds"]["planning"] for c in p["cells"])


def test_power_at_a_number_of_seeds_matches_the_seeds_needed():
    from paper.power import power_at

    n = seeds_needed(0.03, 0.02, 0.05)
    assert power_at(n, 0.03, 0.02, 0.05) >= 0.8 > power_at(n - 1, 0.03, 0.02, 0.05)
    assert power_at(10, 0.0, 0.02, 0.05) == 1.0
