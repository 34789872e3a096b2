"""Verdicts: the rules of ``paper/claims.json`` applied to the records.

Each rule is a small function registered by name in :data:`RULES`. It receives the claim's entry,
the records (:class:`~steerable.report.Results`), the protocol and the data sets to judge on, and
returns a :class:`Verdict` (or one per data set): holds / partly / does not hold. Every comparison a
claim makes is a test, and Holm runs over all of them; a threshold is met when its interval clears
it, never by a mean. A data set the claim names with no runs reads "not run" and the claim "not
judged": a missing run is never replaced by another, and never leaves the denominator. A claim with
``confirm_on`` is judged again on the confirmation data sets, each on its own, for the method(s) it
held for on the selection ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.stats import spearmanr

from steerable.methods import label, mrl_reference
from steerable.report import Results
from steerable.report.tables import open_set_values, retrieval_dims, retrieval_mean
from steerable.stats import OneSided, equivalence_test, holm, one_sided, paired_test

from .beyond import dial_settings, prefix_ranks
from .claims import CLAIMS_FILE, load_claims  # noqa: F401  (re-exported for the page and the tests)
from .tables import complexity_fit

HOLDS, PARTLY, FAILS, NOT_RUN, NOT_JUDGED = "holds", "partly", "does not hold", "not run", "not judged"


@dataclass
class Verdict:
    verdict: str
    evidence: str
    where: str = ""  # the data set a per-data-set claim was judged on
    chosen: list[str] = field(default_factory=list)  # the method(s) it held for, to confirm elsewhere


def mean_over_seeds(values: dict) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def signed(x: float | None) -> str:
    return "–" if x is None else f"{x:+.3f}"


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[list[float], list[float]]:
    seeds = sorted(set(a) & set(b))
    return [a[s] for s in seeds], [b[s] for s in seeds]


def _count(ok: int, total: int) -> str:
    return HOLDS if total and ok == total else PARTLY if ok else FAILS


def _floors(res: Results, claim: dict, ds: str, protocol: str) -> str:
    """The floors' mean S on a data set, named beside a steerability verdict."""
    s = {f: mean_over_seeds(res.values(ds, f, protocol, "steerability_score")) for f in claim.get("floors", [])}
    named = [f"{label(f)} {signed(v)}" for f, v in s.items() if v is not None]
    return "; floors' S: " + ", ".join(named) if named else ""


# ------------------------------------------------------------------------------------------ rules
#
# Every comparison a rule makes is a test with a p-value (a one-sided t-test against a threshold, or
# between methods paired by seed; each side of an equivalence test) collected in a Family, and Holm
# runs over the whole family: every data set, reference, candidate and side. A rule judges the data
# sets it names; one with no runs reads "not run" there and leaves the claim "not judged".


class Family:
    """The tests one claim makes, keyed; :meth:`holm` gives each one's Holm-adjusted p-value."""

    def __init__(self):
        self.tests: dict = {}

    def add(self, key, test) -> None:
        self.tests[key] = test

    def holm(self) -> dict:
        return dict(zip(self.tests, holm([t.p for t in self.tests.values()])))

    def __len__(self) -> int:
        return len(self.tests)


def _diff(a: dict[int, float], b: dict[int, float], scale: float = 1.0) -> list[float]:
    """``a - scale * b`` over the seeds both have."""
    x, y = _paired(a, b)
    return [u - scale * v for u, v in zip(x, y)]


def _finish(ok: Sequence[str], judged: Sequence[str], missing: Sequence[str], evidence: str,
            chosen: list[str] | None = None, where: str = "") -> Verdict:
    """The verdict of a claim judged on ``judged`` (``ok`` of them passing) with ``missing`` not run:
    holds on every one, partly on some, does not hold on none; not judged while any named data set has
    no runs; not run when none has."""
    if missing:
        evidence += ("; " if evidence else "") + f"not run: {', '.join(missing)}"
    if not judged:
        return Verdict(NOT_RUN, evidence, where=where)
    if missing:
        return Verdict(NOT_JUDGED, evidence, where=where)
    return Verdict(_count(len(ok), len(judged)), evidence, where=where,
                   chosen=(chosen or []) if len(ok) == len(judged) else [])


def equivalent(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    m, ref, metric, margin = claim["method"], claim["reference"], claim["metric"], claim["margin"]
    fam, eqs, missing = Family(), {}, []
    for ds in datasets:
        a, b = _paired(res.values(ds, m, protocol, metric), res.values(ds, ref, protocol, metric))
        if len(a) < 2:
            missing.append(ds)
            continue
        eqs[ds] = e = equivalence_test(a, b, margin)
        fam.add((ds, "lower"), OneSided(e.n, e.mean_diff, -margin, e.p_lower, e.ci_low))
        fam.add((ds, "upper"), OneSided(e.n, e.mean_diff, margin, e.p_upper, e.ci_high))
    p = fam.holm()
    ok = [ds for ds in eqs if max(p[(ds, "lower")], p[(ds, "upper")]) < alpha]
    ev = "; ".join(f"{ds} Δ {100 * e.mean_diff:+.1f} pt, 90 % CI [{100 * e.ci_low:+.1f}, {100 * e.ci_high:+.1f}], "
                   f"TOST p (Holm, both sides) = {max(p[(ds, 'lower')], p[(ds, 'upper')]):.2g}" for ds, e in eqs.items())
    return _finish(ok, list(eqs), missing, f"{label(m)} − {label(ref)} {metric}: {ev}. Equivalent on {len(ok)} of "
                   f"{len(eqs)}; Holm across {len(fam)} one-sided tests" if eqs else "", [m])


def beats(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    methods, refs, metric = claim["methods"], claim["references"], claim["metric"]
    fam, judged, missing = Family(), [], []
    for ds in datasets:
        diffs = {(m, r): _diff(res.values(ds, m, protocol, metric), res.values(ds, r, protocol, metric))
                 for m in methods for r in refs}
        if any(len(d) < 2 for d in diffs.values()):
            missing.append(ds)
            continue
        judged.append(ds)
        for (m, r), d in diffs.items():
            fam.add((ds, m, r), one_sided(d, 0.0, alpha))
    p = fam.holm()
    ok = [ds for ds in judged if all(p[(ds, m, r)] < alpha for m in methods for r in refs)]
    ev = "; ".join(f"{ds} {label(m)} − {label(r)} {100 * t.mean:+.1f} pt (95 % lower bound {100 * t.lower:+.1f}, "
                   f"Holm p = {p[(ds, m, r)]:.2g})" for (ds, m, r), t in fam.tests.items())
    return _finish(ok, judged, missing, f"{metric}: {ev}. Significantly above every reference on {len(ok)} of "
                   f"{len(judged)}; Holm across {len(fam)} one-sided paired tests" if judged else "")

def _paired_tests(datasets: Sequence[str], refs: Sequence[str],
                  pair: Callable[[str, str], tuple[list[float], list[float]]]) -> tuple[dict, list[str]]:
    """((data set, reference) -> paired test of the method against it, the data sets where some
    reference has fewer than two seeds matched with the method's)."""
    tests, missing = {}, []
    for ds in datasets:
        pairs = {ref: pair(ds, ref) for ref in refs}
        if any(len(a) < 2 for a, _ in pairs.values()):
            missing.append(ds)
            continue
        for ref, (a, b) in pairs.items():
            tests[(ds, ref)] = paired_test(a, b)
    return tests, missing


def _above_every_reference(tests: dict, refs: Sequence[str], alpha: float) -> tuple[dict, list[str], list[str], str]:
    """Holm over ``tests``; the data sets tested, those where the method is significantly above every
    reference, and the verdict: holds if that is every data set, partly if it is ahead of every
    reference on some."""
    p_holm = dict(zip(tests, holm([t.p for t in tests.values()])))
    dss = list(dict.fromkeys(ds for ds, _ in tests))
    sig = [ds for ds in dss if all((ds, r) in tests and tests[(ds, r)].mean_diff > 0 and p_holm[(ds, r)] < alpha
                                   for r in refs)]
    ahead = [ds for ds in dss if all((ds, r) in tests and tests[(ds, r)].mean_diff > 0 for r in refs)]
    return p_holm, dss, sig, HOLDS if len(sig) == len(dss) else PARTLY if ahead else FAILS


def greater(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    m, refs, metric = claim["method"], claim["references"], claim["metric"]
    tests, missing = _paired_tests(datasets, refs, lambda ds, ref: _paired(res.values(ds, m, protocol, metric),
                                                                           res.values(ds, ref, protocol, metric)))
    if not tests:
        return _finish([], [], missing, f"no data set has {label(m)} and its references")
    p_holm, dss, sig, verdict = _above_every_reference(tests, refs, alpha)
    ev = "; ".join(f"{ds} vs {label(r)} Δ {t.mean_diff:+.3f} (Holm p = {p_holm[(ds, r)]:.2g}, d = {t.d:.1f})"
                   for (ds, r), t in tests.items())
    floors = "".join(_floors(res, claim, ds, protocol).replace("; floors'", f"; {ds} floors'") for ds in dss)
    evidence = f"{label(m)}: {ev}. Significant against every reference on {len(sig)} of {len(dss)}{floors}"
    if missing:
        return _finish(sig, dss, missing, evidence)
    return Verdict(verdict, evidence + ".", chosen=[m] if verdict == HOLDS else [])


def magnitude(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    """Holds if the method's mean is above ``at_least`` and the reference's within ±``reference_within``
    of zero (an equivalence test), partly if the method is above the reference by more than
    ``partly_margin``; each a one-sided t-test, Holm over the four."""
    (ds,) = datasets
    m, ref, metric = claim["method"], claim["reference"], claim["metric"]
    v, r = res.values(ds, m, protocol, metric), res.values(ds, ref, protocol, metric)
    if len(v) < 2 or len(r) < 2:
        return _finish([], [], [ds], "")
    within = claim["reference_within"]
    fam = Family()
    fam.add("at_least", one_sided(list(v.values()), claim["at_least"], alpha))
    fam.add("ref_lower", one_sided(list(r.values()), -within, alpha))
    fam.add("ref_upper", one_sided([-x for x in r.values()], -within, alpha))
    fam.add("partly", one_sided(_diff(v, r), claim["partly_margin"], alpha))
    p = fam.holm()
    holds = all(p[k] < alpha for k in ("at_least", "ref_lower", "ref_upper"))
    verdict = HOLDS if holds else PARTLY if p["partly"] < alpha else FAILS
    return Verdict(verdict, f"{label(m)} {signed(mean_over_seeds(v))} (95 % lower bound "
                   f"{signed(fam.tests['at_least'].lower)}, above {claim['at_least']:g}: Holm p = {p['at_least']:.2g}); "
                   f"{label(ref)} {signed(mean_over_seeds(r))} (within ±{within:g}: Holm p = "
                   f"{max(p['ref_lower'], p['ref_upper']):.2g}); difference above {claim['partly_margin']:g}: Holm p = "
                   f"{p['partly']:.2g}. Holm across 4 one-sided tests.")


def threshold(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> list[Verdict]:
    """Per data set: holds if the method's mean is significantly beyond the threshold (``at_least`` /
    ``below``; ``within``: an equivalence test with zero), partly if beyond the ``partly_`` one; one-sided
    t-tests, Holm over every test on every data set."""
    m, metric = claim["method"], claim["metric"]
    fam, values = Family(), {}
    for ds in datasets:
        v = list(res.values(ds, m, protocol, metric).values())
        if len(v) < 2:
            continue
        values[ds] = v
        if "at_least" in claim:
            fam.add((ds, "holds"), one_sided(v, claim["at_least"], alpha))
            fam.add((ds, "partly"), one_sided(v, claim["partly_at_least"], alpha))
        elif "below" in claim:
            fam.add((ds, "holds"), one_sided([-x for x in v], -claim["below"], alpha))
            fam.add((ds, "partly"), one_sided([-x for x in v], -claim["partly_below"], alpha))
        else:
            fam.add((ds, "holds"), one_sided(v, -claim["within"], alpha))
            fam.add((ds, "upper"), one_sided([-x for x in v], -claim["within"], alpha))
    p = fam.holm()
    out = []
    for ds in datasets:
        if ds not in values:
            out.append(Verdict(NOT_RUN, f"{ds}: no {label(m)} runs", where=ds))
            continue
        holds = p[(ds, "holds")] < alpha and p.get((ds, "upper"), 0.0) < alpha
        verdict = HOLDS if holds else PARTLY if p.get((ds, "partly"), 1.0) < alpha else FAILS
        bound = ("at least " + f"{claim['at_least']:g}" if "at_least" in claim else
                 "below " + f"{claim['below']:g}" if "below" in claim else f"within ±{claim['within']:g}")
        out.append(Verdict(verdict, f"{label(m)} {metric} = {np.mean(values[ds]):+.3f}, {bound}: Holm p = "
                           f"{max(p[(ds, 'holds')], p.get((ds, 'upper'), 0.0)):.2g}"
                           + (f"; partly: Holm p = {p[(ds, 'partly')]:.2g}" if (ds, "partly") in p else "")
                           + f". Holm across {len(fam)} one-sided tests.", where=ds))
    return out


def recall_loss(res: Results, datasets: Sequence[str] | None = None, methods: Sequence[str] = ("v5", "mrl")
                ) -> dict[str, dict[str, float]]:
    """Per data set and method: relative loss of fine-label Recall@10 at the shortest prefix vs full."""
    out: dict[str, dict[str, float]] = {}
    for ds in datasets or res.datasets:
        fine = res.levels[ds][-1]
        for m in methods:
            if (ds, m) not in res.retrieval:
                continue
            dims = retrieval_dims(res, ds, m)
            short, full = (retrieval_mean(res, ds, m, f"recall@10/{fine}/{d}") for d in (dims[0], dims[-1]))
            if short is not None and full:
                out.setdefault(ds, {})[m] = 1 - short / full
    return out


def recall_loss_verdict(loss: dict[str, dict[str, float]], a: str = "v5", b: str = "mrl") -> tuple[str, str]:
    """(verdict, sentence) for "V5 loses less recall at the short prefix than MRL"."""
    pairs = {ds: v for ds, v in loss.items() if a in v and b in v}
    wins = [ds for ds, v in pairs.items() if v[a] < v[b]]
    verdict = HOLDS if pairs and len(wins) == len(pairs) else PARTLY if 2 * len(wins) > len(pairs) else FAILS
    return verdict, (f"Verdict: {verdict} (rule: holds if {label(a)} loses less than {label(b)} on every data "
                     f"set, partly on most); {label(a)} loses less on {len(wins)} of {len(pairs)} data sets.")


def recall_loss_rule(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    a, b = claim["method"], claim["reference"]
    loss = recall_loss(res, datasets, (a, b))
    if not loss:
        return Verdict(NOT_RUN, "no retrieval metrics recorded")
    verdict, _ = recall_loss_verdict(loss, a, b)
    ev = "; ".join(f"{ds} {label(a)} {100 * v.get(a, float('nan')):.1f} %, {label(b)} "
                   f"{100 * v.get(b, float('nan')):.1f} %" for ds, v in loss.items())
    return Verdict(verdict, f"Relative loss of fine-label Recall@10 at the shortest prefix: {ev}.")


def complexity(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    fit = complexity_fit(res, protocol)
    if "spearman_rho" not in fit:
        return Verdict(NOT_RUN, "fewer than three data sets")
    rho, p = fit["spearman_rho"], fit["spearman_p"]
    verdict = HOLDS if rho > 0 and p < alpha else PARTLY if rho > 0 else FAILS
    return Verdict(verdict, f"Spearman ρ = {rho:.2f} (p = {p:.2g}) over {len(fit['points'])} data sets; slope "
                   f"{fit['slope']:+.3f} ΔS per bit.")


def steerable_within_bounds(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float
                            ) -> list[Verdict]:
    """Per data set: a candidate whose S is above the bar (``at_least``, or ``factor`` times the
    reference's) and whose ShortCoarse and FullFine are each non-inferior to every reference's within
    ``margin`` (the lower side of TOST). Every candidate's tests on every data set form one family for
    Holm (the best of the candidates is chosen after them); holds for the best candidate passing them
    all, partly if it passes S and the same-recipe MRL's bounds."""
    margin, fam, judged = claim["margin"], Family(), {}
    for ds in datasets:
        for m in claim["candidates"]:
            s = res.values(ds, m, protocol, "steerability_score")
            refs = list(dict.fromkeys("mrl" if r == "mrl" else mrl_reference(m) for r in claim["references"]))
            if len(s) < 2:
                continue
            if "times_reference" in claim:
                d = _diff(s, res.values(ds, claim["times_reference"], protocol, "steerability_score"), claim["factor"])
                s_test = one_sided(d, 0.0, alpha)
            else:
                s_test = one_sided(list(s.values()), claim["at_least"], alpha)
            bounds = {}
            for r in refs:
                for metric in ("short_coarse", "full_fine"):
                    d = _diff(res.values(ds, m, protocol, metric), res.values(ds, r, protocol, metric))
                    bounds[(r, metric)] = one_sided(d, -margin, alpha) if len(d) >= 2 else None
            if s_test.n < 2 or None in bounds.values():
                continue
            judged.setdefault(ds, []).append(m)
            fam.add((ds, m, "S"), s_test)
            for key, t in bounds.items():
                fam.add((ds, m, *key), t)
    p = fam.holm()
    out = []
    for ds in datasets:
        if ds not in judged:
            out.append(Verdict(NOT_RUN, f"{ds}: no candidate ran with its references", where=ds))
            continue
        ranked = []
        for m in judged[ds]:
            same = mrl_reference(m)
            s_ok = p[(ds, m, "S")] < alpha
            bound_ok = {k[2:]: p[k] < alpha for k in fam.tests if k[:2] == (ds, m) and k[2] != "S"}
            rank = 2 if s_ok and all(bound_ok.values()) else 1 if s_ok and all(
                v for (r, _), v in bound_ok.items() if r == same) else 0
            ranked.append((rank, fam.tests[(ds, m, "S")].mean, m))
        rank, _, m = max(ranked)
        s_mean = mean_over_seeds(res.values(ds, m, protocol, "steerability_score"))
        bar = (f"above {claim['factor']:g} × {label(claim['times_reference'])}'s "
               f"({signed(mean_over_seeds(res.values(ds, claim['times_reference'], protocol, 'steerability_score')))})"
               if "times_reference" in claim else f"above {claim['at_least']:g}")
        cells = [f"{label(m)}: S = {signed(s_mean)}, {bar}: Holm p = {p[(ds, m, 'S')]:.2g}"]
        for key, t in fam.tests.items():
            if key[:2] == (ds, m) and key[2] != "S":
                cells.append(f"{'ShortCoarse' if key[3] == 'short_coarse' else 'FullFine'} vs {label(key[2])} "
                             f"{100 * t.mean:+.1f} pt (non-inferior within {100 * margin:g} pt: Holm p = {p[key]:.2g})")
        out.append(Verdict({2: HOLDS, 1: PARTLY, 0: FAILS}[rank], "; ".join(cells) + _floors(res, claim, ds, protocol)
                           + f". Holm across {len(fam)} one-sided tests ({len({k[1] for k in fam.tests})} candidates).",
                           where=ds, chosen=[m] if rank == 2 else []))
    return out


def full_rank_beats(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    ref, tests, low = claim["reference"], {}, []
    for m in claim["candidates"]:
        ranks = [x for ds in datasets for x in prefix_ranks(res, ds, m)]
        if not ranks or any(rank < full for rank, full in ranks):
            low.append(f"{label(m)} ({'no rank recorded' if not ranks else f'rank {min(ranks)[0]}–{max(ranks)[0]}'})")
            continue
        for ds in datasets:
            a, b = _paired(res.values(ds, m, protocol, "steerability_score"),
                           res.values(ds, ref, protocol, "steerability_score"))
            if len(a) >= 2:
                tests[(m, ds)] = paired_test(a, b)
    if not tests:
        return Verdict(NOT_RUN, "no full-rank candidate ran with " + label(ref) + (f"; not counted: {', '.join(low)}"
                                                                                  if low else ""))
    missing = [ds for ds in datasets if not any(k[1] == ds for k in tests)]
    p_holm = dict(zip(tests, holm([t.p for t in tests.values()])))
    wins = {m: [ds for ds in datasets if (m, ds) in tests and tests[(m, ds)].mean_diff > 0
                and p_holm[(m, ds)] < claim["p_below"]] for m in dict.fromkeys(m for m, _ in tests)}
    best = max(wins, key=lambda m: (len(wins[m]), min(tests[(m, ds)].mean_diff for ds in datasets
                                                      if (m, ds) in tests)))
    verdict = HOLDS if len(wins[best]) == len(datasets) else PARTLY if wins[best] else FAILS
    ev = f"{label(best)}: " + "; ".join(f"{ds} ΔS = {tests[(best, ds)].mean_diff:+.3f}, Holm p = "
                                        f"{p_holm[(best, ds)]:.2g}" for ds in datasets if (best, ds) in tests)
    others = [f"{label(m)} on {len(w)}" for m, w in wins.items() if m != best]
    ev += (". Others win on: " + "; ".join(others) if others else "") + (f". Not counted (rank): {', '.join(low)}"
                                                                        if low else "")
    if missing:
        return _finish([], [ds for ds in datasets if ds not in missing], missing, ev + f". Holm across {len(tests)} "
                       "comparisons")
    return Verdict(verdict, ev + f". Holm across {len(tests)} comparisons.", chosen=[best] if verdict == HOLDS else [])


def rises(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    ok, ev = [], []
    for ds in datasets:
        curve = [(v, mean_over_seeds(res.values(ds, m, protocol, "steerability_score"))) for v, m in dial_settings(res, ds)]
        curve = [(v, s) for v, s in curve if s is not None]
        if len(curve) < claim["min_settings"]:
            continue
        rho = float(spearmanr([v for v, _ in curve], [s for _, s in curve])[0])
        ev.append(f"{ds}: {len(curve)} settings, S from {signed(curve[0][1])} (dial {curve[0][0]:g}) to "
                  f"{signed(curve[-1][1])} (dial {curve[-1][0]:g}), Spearman ρ = {rho:.2f}")
        if rho >= claim["min_rho"]:
            ok.append(ds)
    if not ev:
        return Verdict(NOT_RUN, f"no data set has {claim['min_settings']} dial settings")
    verdict = HOLDS if claim["must_include"] in ok and len(ok) >= 2 else PARTLY if ok else FAILS
    return Verdict(verdict, "; ".join(ev) + ".")


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
    ev = "; ".join(f"{ds} vs {label(r)} Δ {100 * t.mean_diff:+.1f} pt (n = {t.n}, Holm p = {p_holm[(ds, r)]:.2g})"
                   for (ds, r), t in tests.items())
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
        beats_all = all((m, ds, r) in fam.tests and fam.tests[(m, ds, r)].mean_diff > 0
                        and p_holm[(m, ds, r)] < claim["p_below"] for r in claim["references"] if r != m)
        tost = all((m, ds, k) in p_holm and p_holm[(m, ds, k)] < alpha for k in ("tost lower", "tost upper"))
        return beats_all and tost and None not in (probe, heal) and probe < heal

    judged = [d for d in datasets if d not in missing]
    score = {m: [ds for ds in judged if passes(m, ds)] for m in claim["candidates"]}
    best = max(score, key=lambda m: (len(score[m]), np.mean([t.mean_diff for k, t in fam.tests.items()
                                                             if k[0] == m and k[2] in claim["references"]] or [-1])))
    ev = []
    for ds in judged:
        cells = [f"vs {label(r)} Δ {100 * fam.tests[(best, ds, r)].mean_diff:+.1f} pt (Holm p = "
                 f"{p_holm[(best, ds, r)]:.2g})" for r in claim["references"] if (best, ds, r) in fam.tests]
        if (best, ds, "tost lower") in fam.tests:
            cells.append(f"FullFine vs MRL TOST p (Holm, both sides) = "
                         f"{max(p_holm[(best, ds, 'tost lower')], p_holm[(best, ds, 'tost upper')]):.2g}")
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
        ("ii", "S"): (_diff(res.values(ds, m, protocol, "steerability_score"),
                            res.values(ds, heal, protocol, "steerability_score")), 0.0),
        ("ii", "probe"): (_diff(res.probe(ds, heal, fine), res.probe(ds, m, fine)), 0.0),
        ("iii", "coarse"): (_diff(_unseen(res, ds, m, "coarse"), _unseen(res, ds, floor, "coarse")),
                            -claim["open_margin"]),
        ("iv", "fine"): (_diff(_unseen(res, ds, m, "fine"), _unseen(res, ds, floor, "fine")), 0.0),
    }
    if any(len(d) < 2 for d, _ in pieces.values()):
        return None
    return {key: one_sided(d, bound, alpha) for key, (d, bound) in pieces.items()}


def steer_and_generalise(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float
                         ) -> Verdict:
    """One candidate that, on every data set, (i) keeps MRL's closed-set FullFine (TOST within
    ``margin``), (ii) is more steerable than HEAL (S above, fine probe below), (iii) groups unseen
    coarse classes at 64 dims no worse than PCA-64 minus ``open_margin`` and (iv) unseen fine classes of
    known coarse ones at least as well as PCA-64 (above it). Every one-sided test of every candidate on
    every data set forms one family for Holm. The evidence names the closest candidate, with each
    condition's estimate and adjusted p on each data set."""
    fam, missing, absent = Family(), [], []
    for ds in datasets:
        refs_ok = all(res.values(ds, r, protocol, "full_fine") for r in (claim["fine_reference"],
                                                                          claim["steer_reference"]))
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

    score = {m: (sum(all(met(m, ds, c) for c in GOAL_CONDITIONS) for ds in judged),
                 sum(met(m, ds, c) for ds in judged for c in GOAL_CONDITIONS)) for m in claim["candidates"]
             if any(k[0] == m for k in fam.tests)}
    best = max(score, key=lambda m: score[m])
    ev = []
    for ds in judged:
        t = {k[2:]: (fam.tests[k], p[k]) for k in fam.tests if k[:2] == (best, ds)}
        if not t:
            continue
        (ff, p_lo), (_, p_hi) = t[("i", "lower")], t[("i", "upper")]
        (s, p_s), (pr, p_pr) = t[("ii", "S")], t[("ii", "probe")]
        (co, p_co), (fi, p_fi) = t[("iii", "coarse")], t[("iv", "fine")]
        ev.append(f"{ds}: (i) FullFine − {label(claim['fine_reference'])} {100 * ff.mean:+.1f} pt (TOST Holm p = "
                  f"{max(p_lo, p_hi):.2g}); (ii) S − {label(claim['steer_reference'])} {s.mean:+.3f} (p = {p_s:.2g}), "
                  f"probe {100 * pr.mean:+.1f} pt below (p = {p_pr:.2g}); (iii) unseen coarse − "
                  f"{label(claim['open_reference'])} {100 * co.mean:+.1f} pt (95 % lower bound {100 * co.lower:+.1f}, "
                  f"p = {p_co:.2g}); (iv) unseen fine − {label(claim['open_reference'])} {100 * fi.mean:+.1f} pt "
                  f"(p = {p_fi:.2g})")
    passed = {c: [m for m in score if all(met(m, ds, c) for ds in judged)] for c in GOAL_CONDITIONS}
    summary = "; ".join(f"({c}) {', '.join(label(m) for m in ms) or 'none'}" for c, ms in passed.items())
    evidence = (f"closest: {label(best)}, meeting all four on {score[best][0]} of {len(judged)}; "
                + "; ".join(ev) + f". Each condition met on every data set by: {summary}. Holm across {len(fam)} "
                "one-sided tests")
    if missing:
        return _finish([], judged, missing, evidence)
    ok = score[best][0]
    verdict = HOLDS if ok == len(datasets) else PARTLY if ok else FAILS
    return Verdict(verdict, evidence + ".", chosen=[best] if verdict == HOLDS else [])


RULES: dict[str, Callable[..., Verdict | list[Verdict]]] = {
    "equivalent": equivalent, "beats": beats, "greater": greater, "magnitude": magnitude, "threshold": threshold,
    "recall_loss": recall_loss_rule, "complexity": complexity, "steerable_within_bounds": steerable_within_bounds,
    "full_rank_beats": full_rank_beats, "rises": rises, "open_set_goal": open_set_goal,
    "open_set_greater": open_set_greater, "steer_and_generalise": steer_and_generalise,
}
PER_DATASET_RULES = ("threshold", "steerable_within_bounds")  # one verdict per data set, Holm across them all


# ------------------------------------------------------------------------------------------ judge

def _datasets(claim: dict, res: Results) -> list[str]:
    """The data sets a claim is judged on: those it names (a named one without runs reads "not run"), or
    with "all" every data set the records have."""
    return list(res.datasets) if claim["datasets"] == "all" else list(claim["datasets"])


def _apply(claim: dict, res: Results, protocol: str, datasets: Sequence[str], alpha: float) -> list[Verdict]:
    out = RULES[claim["rule"]](res, claim, protocol, datasets, alpha)
    out = out if isinstance(out, list) else [out]
    if not claim.get("per_dataset") and claim["rule"] in PER_DATASET_RULES:  # one verdict over the data sets
        return [_combine(out)]
    return out


def _combine(verdicts: list[Verdict]) -> Verdict:
    """One verdict from per-data-set ones: not judged while any is not run; holds if all hold."""
    missing = [v.where for v in verdicts if v.verdict == NOT_RUN]
    judged = [v for v in verdicts if v.verdict != NOT_RUN]
    ok = [v.where for v in judged if v.verdict == HOLDS]
    evidence = " ".join(v.evidence for v in judged)
    combined = _finish(ok, [v.where for v in judged], missing, evidence,
                       where=verdicts[0].where if len(verdicts) == 1 else "")
    combined.chosen = sorted({m for v in judged for m in v.chosen}) if combined.verdict == HOLDS else []
    if combined.verdict == FAILS and any(v.verdict == PARTLY for v in judged):
        combined.verdict = PARTLY
    return combined


def judge(claim: dict, res: Results, claims: dict, protocol: str) -> list[Verdict]:
    """The claim's verdicts under ``protocol``: one, or one per data set for a per-data-set claim. A data
    set it names without runs reads "not run", and the claim "not judged"."""
    datasets = _datasets(claim, res)
    if not datasets:
        return [Verdict(NOT_RUN, "no runs")]
    return _apply(claim, res, protocol, datasets, claims["alpha"])


def confirm(claim: dict, verdicts: Sequence[Verdict], res: Results, claims: dict, protocol: str) -> list[Verdict]:
    """The claim judged on each confirmation data set for the method(s) it held for on the selection
    ones; "not confirmed" where that data set has no runs of them."""
    chosen = sorted({m for v in verdicts for m in v.chosen})
    if not claim.get("confirm_on") or not chosen:
        return []
    out = []
    narrowed = claim | ({"candidates": chosen} if "candidates" in claim else {})
    for ds in claims["confirmation_datasets"]:
        (v,) = _apply(narrowed | {"per_dataset": True}, res, protocol, [ds], claims["alpha"])
        if v.verdict in (NOT_RUN, NOT_JUDGED):
            v = Verdict("not confirmed", f"no runs of {', '.join(label(m) for m in chosen)} on {ds}"
                        + (f" ({v.evidence})" if v.evidence else ""))
        v.where = ds
        out.append(v)
    return out
