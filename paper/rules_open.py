"""The rules of the claims about classes never seen in training (the open set): a method ahead of its
references on unseen classes, the stretch goal, and the goal that one method steers and generalises."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from steerable.methods import label
from steerable.report import Results
from steerable.report.tables import open_set_values
from steerable.stats import OneSided, equivalence_test, one_sided, paired_test

from .claims import CLAIMS_FILE, load_claims  # noqa: F401  (re-exported for the page and the tests)
from .judging import (
    FAILS,
    HOLDS,
    PARTLY,
    Family,
    Verdict,
    _above_every_reference,
    _diff,
    _finish,
    _paired,
    _paired_tests,
    mean_over_seeds,
    pct,
)


def _unseen(res: Results, ds: str, m: str, kind: str) -> dict[int, float]:
    """Seed -> coarse k-NN accuracy at the shortest prefix of the held-out texts of ``m``'s open-set runs
    of ``kind`` (``coarse`` or ``fine``) on ``ds`` (empty where it has none)."""
    unseen = sorted(u for d, mm, u in res.open_set if d == ds and mm == m and u.startswith(kind))
    return open_set_values(res, ds, m, unseen[0], f"accuracy/{res.levels[ds][0]}/0") if unseen else {}


def _unseen_coarse_accuracy(res: Results, ds: str, m: str, kind: str, ref: str) -> tuple[list[float], list[float]]:
    """:func:`_unseen` of ``m`` and ``ref``, paired by seed."""
    return _paired(_unseen(res, ds, m, kind), _unseen(res, ds, ref, kind))


def open_set_greater(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    """A method's coarse accuracy at the shortest prefix on held-out classes above each reference's."""
    m, refs, kind = claim["method"], claim["references"], claim["unseen_kind"]
    tests, missing = _paired_tests(datasets, refs, lambda ds, ref: _unseen_coarse_accuracy(res, ds, m, kind, ref))
    if not tests:
        return _finish([], [], missing, f"no open-set runs of {label(m)} and its references with unseen {kind} classes")
    p_holm, dss, sig, verdict = _above_every_reference(tests, refs, alpha)
    ev = "; ".join(
        f"{ds} vs {label(r)} Δ {100 * t.mean_diff:+.1f} pt (n = {t.n}, Holm p = {p_holm[(ds, r)]:.2g})"
        for (ds, r), t in tests.items()
    )
    evidence = f"{label(m)}: {ev}. Significant against every reference on {len(sig)} of {len(dss)}"
    return _finish(sig, dss, missing, evidence) if missing else Verdict(verdict, evidence + ".")


def open_set_goal(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    fam, side, missing = Family(), {}, []
    for ds in datasets:
        if not any(_unseen(res, ds, r, claim["unseen_kind"]) for r in claim["references"]):
            missing.append(ds)
    for m in claim["candidates"]:
        for ds in [d for d in datasets if d not in missing]:
            for ref in [r for r in claim["references"] if r != m]:  # MRL is a candidate and a reference
                a, b = _unseen_coarse_accuracy(res, ds, m, claim["unseen_kind"], ref)
                if len(a) >= 2:
                    fam.add((m, ds, ref), paired_test(a, b))
            if not any(k[:2] == (m, ds) for k in fam.tests):
                continue
            fine = res.levels[ds][-1]
            eq = _paired(res.values(ds, m, protocol, "full_fine"), res.values(ds, "mrl", protocol, "full_fine"))
            if len(eq[0]) >= 2:
                e = equivalence_test(*eq, claim["margin"])
                fam.add((m, ds, "tost lower"), OneSided(e.n, e.mean_diff, -claim["margin"], e.p_lower, e.ci_low))
                fam.add((m, ds, "tost upper"), OneSided(e.n, e.mean_diff, claim["margin"], e.p_upper, e.ci_high))
            probe, heal = mean_over_seeds(res.probe(ds, m, fine)), mean_over_seeds(res.probe(ds, "heal", fine))
            side[(m, ds)] = (probe, heal)
    if not fam:
        return _finish([], [], missing or list(datasets), "no open-set runs with unseen coarse classes")
    p_holm = fam.holm()

    def passes(m: str, ds: str) -> bool:
        probe, heal = side.get((m, ds), (None, None))
        beats_all = all(
            (m, ds, r) in fam.tests and fam.tests[(m, ds, r)].mean_diff > 0 and p_holm[(m, ds, r)] < claim["p_below"]
            for r in claim["references"]
            if r != m
        )
        tost = all((m, ds, k) in p_holm and p_holm[(m, ds, k)] < alpha for k in ("tost lower", "tost upper"))
        return beats_all and tost and probe is not None and heal is not None and probe < heal

    judged = [d for d in datasets if d not in missing]
    score = {m: [ds for ds in judged if passes(m, ds)] for m in claim["candidates"]}
    best = max(
        score,
        key=lambda m: (
            len(score[m]),
            np.mean([t.mean_diff for k, t in fam.tests.items() if k[0] == m and k[2] in claim["references"]] or [-1]),
        ),
    )
    ev = []
    for ds in judged:
        cells = [
            f"vs {label(r)} Δ {100 * fam.tests[(best, ds, r)].mean_diff:+.1f} pt (Holm p = {p_holm[(best, ds, r)]:.2g})"
            for r in claim["references"]
            if (best, ds, r) in fam.tests
        ]
        if (best, ds, "tost lower") in fam.tests:
            cells.append(
                f"FullFine vs MRL TOST p (Holm, both sides) = "
                f"{max(p_holm[(best, ds, 'tost lower')], p_holm[(best, ds, 'tost upper')]):.2g}"
            )
        probe, heal = side.get((best, ds), (None, None))
        if probe is not None and heal is not None:
            cells.append(f"probe {pct(probe)} vs HEAL {pct(heal)}")
        ev.append(f"{ds}: " + ", ".join(cells) if cells else f"{ds}: not run")
    evidence = f"closest: {label(best)}; " + "; ".join(ev) + f". Holm across {len(fam)} comparisons"
    if missing:
        return _finish([], judged, missing, evidence)
    verdict = HOLDS if len(score[best]) == len(datasets) else PARTLY if score[best] else FAILS
    return Verdict(verdict, evidence + ".", chosen=[best] if verdict == HOLDS else [])


GOAL_CONDITIONS = {
    "i": "closed-set FullFine equivalent to MRL's",
    "ii": "S above HEAL's and fine probe below HEAL's",
    "iii": "unseen coarse classes: coarse accuracy at 64 dims non-inferior to PCA-64's",
    "iv": "unseen fine classes: coarse accuracy at 64 dims above PCA-64's",
}


def _goal_tests(res: Results, claim: dict, protocol: str, ds: str, m: str, alpha: float) -> dict | None:
    """The six one-sided tests of :func:`steer_and_generalise` for candidate ``m`` on ``ds``, keyed by
    (condition, part); None where some run is missing."""
    fine = res.levels[ds][-1]
    ref, heal, floor = claim["fine_reference"], claim["steer_reference"], claim["open_reference"]
    margin = claim["margin"]
    ff = _diff(res.values(ds, m, protocol, "full_fine"), res.values(ds, ref, protocol, "full_fine"))
    pieces = {
        ("i", "lower"): (ff, -margin),
        ("i", "upper"): ([-x for x in ff], -margin),
        ("ii", "S"): (
            _diff(
                res.values(ds, m, protocol, "steerability_score"), res.values(ds, heal, protocol, "steerability_score")
            ),
            0.0,
        ),
        ("ii", "probe"): (_diff(res.probe(ds, heal, fine), res.probe(ds, m, fine)), 0.0),
        ("iii", "coarse"): (
            _diff(_unseen(res, ds, m, "coarse"), _unseen(res, ds, floor, "coarse")),
            -claim["open_margin"],
        ),
        ("iv", "fine"): (_diff(_unseen(res, ds, m, "fine"), _unseen(res, ds, floor, "fine")), 0.0),
    }
    if any(len(d) < 2 for d, _ in pieces.values()):
        return None
    return {key: one_sided(d, bound, alpha) for key, (d, bound) in pieces.items()}


def steer_and_generalise(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    """One candidate that, on every data set, (i) keeps MRL's closed-set FullFine (TOST within
    ``margin``), (ii) is more steerable than HEAL (S above, fine probe below), (iii) groups unseen
    coarse classes at 64 dims no worse than PCA-64 minus ``open_margin`` and (iv) unseen fine classes of
    known coarse ones at least as well as PCA-64 (above it). Every one-sided test of every candidate on
    every data set forms one family for Holm. The evidence names the closest candidate, with each
    condition's estimate and adjusted p on each data set."""
    fam, missing, absent = Family(), [], []
    for ds in datasets:
        refs_ok = all(
            res.values(ds, r, protocol, "full_fine") for r in (claim["fine_reference"], claim["steer_reference"])
        )
        if not refs_ok or not _unseen(res, ds, claim["open_reference"], "coarse"):
            missing.append(ds)
            continue
        for m in claim["candidates"]:
            tests = _goal_tests(res, claim, protocol, ds, m, alpha)
            if tests is None:
                absent.append(f"{label(m)} on {ds}")
                continue
            for key, t in tests.items():
                fam.add((m, ds, *key), t)
    if absent:
        missing += [f"runs of {', '.join(absent)}"]
    judged = [d for d in datasets if d not in missing]
    if not fam:
        return _finish([], [], missing, "")
    p = fam.holm()

    def met(m: str, ds: str, cond: str) -> bool:
        return all(p[k] < alpha for k in fam.tests if k[:3] == (m, ds, cond))

    score = {
        m: (
            sum(all(met(m, ds, c) for c in GOAL_CONDITIONS) for ds in judged),
            sum(met(m, ds, c) for ds in judged for c in GOAL_CONDITIONS),
        )
        for m in claim["candidates"]
        if any(k[0] == m for k in fam.tests)
    }
    best = max(score, key=lambda m: score[m])
    ev = []
    for ds in judged:
        t = {k[2:]: (fam.tests[k], p[k]) for k in fam.tests if k[:2] == (best, ds)}
        if not t:
            continue
        (ff, p_lo), (_, p_hi) = t[("i", "lower")], t[("i", "upper")]
        (s, p_s), (pr, p_pr) = t[("ii", "S")], t[("ii", "probe")]
        (co, p_co), (fi, p_fi) = t[("iii", "coarse")], t[("iv", "fine")]
        ev.append(
            f"{ds}: (i) FullFine − {label(claim['fine_reference'])} {100 * ff.mean:+.1f} pt (TOST Holm p = "
            f"{max(p_lo, p_hi):.2g}); (ii) S − {label(claim['steer_reference'])} {s.mean:+.3f} (p = {p_s:.2g}), "
            f"probe {100 * pr.mean:+.1f} pt below (p = {p_pr:.2g}); (iii) unseen coarse − "
            f"{label(claim['open_reference'])} {100 * co.mean:+.1f} pt (95 % lower bound {100 * co.lower:+.1f}, "
            f"p = {p_co:.2g}); (iv) unseen fine − {label(claim['open_reference'])} {100 * fi.mean:+.1f} pt "
            f"(p = {p_fi:.2g})"
        )
    passed = {c: [m for m in score if all(met(m, ds, c) for ds in judged)] for c in GOAL_CONDITIONS}
    summary = "; ".join(f"({c}) {', '.join(label(m) for m in ms) or 'none'}" for c, ms in passed.items())
    evidence = (
        f"closest: {label(best)}, meeting all four on {score[best][0]} of {len(judged)}; "
        + "; ".join(ev)
        + f". Each condition met on every data set by: {summary}. Holm across {len(fam)} "
        "one-sided tests"
    )
    if missing:
        return _finish([], judged, missing, evidence)
    ok = score[best][0]
    verdict = HOLDS if ok == len(datasets) else PARTLY if ok else FAILS
    return Verdict(verdict, evidence + ".", chosen=[best] if verdict == HOLDS else [])
