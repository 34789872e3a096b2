"""The rules of the claims about the known classes (the closed set): equivalence, beats, greater,
magnitude, threshold, recall loss, complexity, steerability within accuracy bounds, a full-rank prefix
ahead of a reference, and the dial rising."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import spearmanr

from steerable.methods import label, mrl_reference
from steerable.report import Results
from steerable.report.tables import retrieval_dims, retrieval_mean
from steerable.stats import OneSided, equivalence_test, holm, one_sided, paired_test

from .beyond import dial_settings, prefix_ranks
from .claims import CLAIMS_FILE, load_claims  # noqa: F401  (re-exported for the page and the tests)
from .judging import (
    FAILS,
    HOLDS,
    NOT_RUN,
    PARTLY,
    Family,
    Verdict,
    _above_every_reference,
    _diff,
    _finish,
    _floors,
    _paired,
    _paired_tests,
    mean_over_seeds,
    signed,
)
from .tables import complexity_fit


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
    ev = "; ".join(
        f"{ds} Δ {100 * e.mean_diff:+.1f} pt, 90 % CI [{100 * e.ci_low:+.1f}, {100 * e.ci_high:+.1f}], "
        f"TOST p (Holm, both sides) = {max(p[(ds, 'lower')], p[(ds, 'upper')]):.2g}"
        for ds, e in eqs.items()
    )
    return _finish(
        ok,
        list(eqs),
        missing,
        f"{label(m)} − {label(ref)} {metric}: {ev}. Equivalent on {len(ok)} of "
        f"{len(eqs)}; Holm across {len(fam)} one-sided tests"
        if eqs
        else "",
        [m],
    )


def beats(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    methods, refs, metric = claim["methods"], claim["references"], claim["metric"]
    fam, judged, missing = Family(), [], []
    for ds in datasets:
        diffs = {
            (m, r): _diff(res.values(ds, m, protocol, metric), res.values(ds, r, protocol, metric))
            for m in methods
            for r in refs
        }
        if any(len(d) < 2 for d in diffs.values()):
            missing.append(ds)
            continue
        judged.append(ds)
        for (m, r), d in diffs.items():
            fam.add((ds, m, r), one_sided(d, 0.0, alpha))
    p = fam.holm()
    ok = [ds for ds in judged if all(p[(ds, m, r)] < alpha for m in methods for r in refs)]
    ev = "; ".join(
        f"{ds} {label(m)} − {label(r)} {100 * t.mean:+.1f} pt (95 % lower bound {100 * t.lower:+.1f}, "
        f"Holm p = {p[(ds, m, r)]:.2g})"
        for (ds, m, r), t in fam.tests.items()
    )
    return _finish(
        ok,
        judged,
        missing,
        f"{metric}: {ev}. Significantly above every reference on {len(ok)} of "
        f"{len(judged)}; Holm across {len(fam)} one-sided paired tests"
        if judged
        else "",
    )


def greater(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    m, refs, metric = claim["method"], claim["references"], claim["metric"]
    tests, missing = _paired_tests(
        datasets,
        refs,
        lambda ds, ref: _paired(res.values(ds, m, protocol, metric), res.values(ds, ref, protocol, metric)),
    )
    if not tests:
        return _finish([], [], missing, f"no data set has {label(m)} and its references")
    p_holm, dss, sig, verdict = _above_every_reference(tests, refs, alpha)
    ev = "; ".join(
        f"{ds} vs {label(r)} Δ {t.mean_diff:+.3f} (Holm p = {p_holm[(ds, r)]:.2g}, d = {t.d:.1f})"
        for (ds, r), t in tests.items()
    )
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
    return Verdict(
        verdict,
        f"{label(m)} {signed(mean_over_seeds(v))} (95 % lower bound "
        f"{signed(fam.tests['at_least'].lower)}, above {claim['at_least']:g}: Holm p = {p['at_least']:.2g}); "
        f"{label(ref)} {signed(mean_over_seeds(r))} (within ±{within:g}: Holm p = "
        f"{max(p['ref_lower'], p['ref_upper']):.2g}); difference above {claim['partly_margin']:g}: Holm p = "
        f"{p['partly']:.2g}. Holm across 4 one-sided tests.",
    )


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
        bound = (
            "at least " + f"{claim['at_least']:g}"
            if "at_least" in claim
            else "below " + f"{claim['below']:g}"
            if "below" in claim
            else f"within ±{claim['within']:g}"
        )
        out.append(
            Verdict(
                verdict,
                f"{label(m)} {metric} = {np.mean(values[ds]):+.3f}, {bound}: Holm p = "
                f"{max(p[(ds, 'holds')], p.get((ds, 'upper'), 0.0)):.2g}"
                + (f"; partly: Holm p = {p[(ds, 'partly')]:.2g}" if (ds, "partly") in p else "")
                + f". Holm across {len(fam)} one-sided tests.",
                where=ds,
            )
        )
    return out


def recall_loss(
    res: Results, datasets: Sequence[str] | None = None, methods: Sequence[str] = ("v5", "mrl")
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
    return verdict, (
        f"Verdict: {verdict} (rule: holds if {label(a)} loses less than {label(b)} on every data "
        f"set, partly on most); {label(a)} loses less on {len(wins)} of {len(pairs)} data sets."
    )


def recall_loss_rule(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    a, b = claim["method"], claim["reference"]
    loss = recall_loss(res, datasets, (a, b))
    if not loss:
        return Verdict(NOT_RUN, "no retrieval metrics recorded")
    verdict, _ = recall_loss_verdict(loss, a, b)
    ev = "; ".join(
        f"{ds} {label(a)} {100 * v.get(a, float('nan')):.1f} %, {label(b)} {100 * v.get(b, float('nan')):.1f} %"
        for ds, v in loss.items()
    )
    return Verdict(verdict, f"Relative loss of fine-label Recall@10 at the shortest prefix: {ev}.")


def complexity(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    fit = complexity_fit(res, protocol)
    if "spearman_rho" not in fit:
        return Verdict(NOT_RUN, "fewer than three data sets")
    rho, p = fit["spearman_rho"], fit["spearman_p"]
    verdict = HOLDS if rho > 0 and p < alpha else PARTLY if rho > 0 else FAILS
    return Verdict(
        verdict,
        f"Spearman ρ = {rho:.2f} (p = {p:.2g}) over {len(fit['points'])} data sets; slope "
        f"{fit['slope']:+.3f} ΔS per bit.",
    )


def steerable_within_bounds(
    res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float
) -> list[Verdict]:
    """Per data set: a candidate whose S is above the bar (``at_least``, or ``factor`` times the
    reference's) and whose ShortCoarse and FullFine are each non-inferior to every reference's within
    ``margin`` (the lower side of TOST). Every candidate's tests on every data set form one family for
    Holm (the best of the candidates is chosen after them); holds for the best candidate passing them
    all, partly if it passes S and the same-recipe MRL's bounds."""
    margin, fam = claim["margin"], Family()
    judged: dict[str, list[str]] = {}
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
            rank = (
                2
                if s_ok and all(bound_ok.values())
                else 1
                if s_ok and all(v for (r, _), v in bound_ok.items() if r == same)
                else 0
            )
            ranked.append((rank, fam.tests[(ds, m, "S")].mean, m))
        rank, _, m = max(ranked)
        s_mean = mean_over_seeds(res.values(ds, m, protocol, "steerability_score"))
        bar = (
            f"above {claim['factor']:g} × {label(claim['times_reference'])}'s "
            f"({signed(mean_over_seeds(res.values(ds, claim['times_reference'], protocol, 'steerability_score')))})"
            if "times_reference" in claim
            else f"above {claim['at_least']:g}"
        )
        cells = [f"{label(m)}: S = {signed(s_mean)}, {bar}: Holm p = {p[(ds, m, 'S')]:.2g}"]
        for key, t in fam.tests.items():
            if key[:2] == (ds, m) and key[2] != "S":
                cells.append(
                    f"{'ShortCoarse' if key[3] == 'short_coarse' else 'FullFine'} vs {label(key[2])} "
                    f"{100 * t.mean:+.1f} pt (non-inferior within {100 * margin:g} pt: Holm p = {p[key]:.2g})"
                )
        out.append(
            Verdict(
                {2: HOLDS, 1: PARTLY, 0: FAILS}[rank],
                "; ".join(cells)
                + _floors(res, claim, ds, protocol)
                + f". Holm across {len(fam)} one-sided tests ({len({k[1] for k in fam.tests})} candidates).",
                where=ds,
                chosen=[m] if rank == 2 else [],
            )
        )
    return out


def full_rank_beats(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    ref, tests, low = claim["reference"], {}, []
    for m in claim["candidates"]:
        ranks = [x for ds in datasets for x in prefix_ranks(res, ds, m)]
        if not ranks or any(rank < full for rank, full in ranks):
            low.append(f"{label(m)} ({'no rank recorded' if not ranks else f'rank {min(ranks)[0]}–{max(ranks)[0]}'})")
            continue
        for ds in datasets:
            a, b = _paired(
                res.values(ds, m, protocol, "steerability_score"), res.values(ds, ref, protocol, "steerability_score")
            )
            if len(a) >= 2:
                tests[(m, ds)] = paired_test(a, b)
    if not tests:
        return Verdict(
            NOT_RUN,
            "no full-rank candidate ran with " + label(ref) + (f"; not counted: {', '.join(low)}" if low else ""),
        )
    missing = [ds for ds in datasets if not any(k[1] == ds for k in tests)]
    p_holm = dict(zip(tests, holm([t.p for t in tests.values()])))
    wins = {
        m: [
            ds
            for ds in datasets
            if (m, ds) in tests and tests[(m, ds)].mean_diff > 0 and p_holm[(m, ds)] < claim["p_below"]
        ]
        for m in dict.fromkeys(m for m, _ in tests)
    }
    best = max(wins, key=lambda m: (len(wins[m]), min(tests[(m, ds)].mean_diff for ds in datasets if (m, ds) in tests)))
    verdict = HOLDS if len(wins[best]) == len(datasets) else PARTLY if wins[best] else FAILS
    ev = f"{label(best)}: " + "; ".join(
        f"{ds} ΔS = {tests[(best, ds)].mean_diff:+.3f}, Holm p = {p_holm[(best, ds)]:.2g}"
        for ds in datasets
        if (best, ds) in tests
    )
    others = [f"{label(m)} on {len(w)}" for m, w in wins.items() if m != best]
    ev += (". Others win on: " + "; ".join(others) if others else "") + (
        f". Not counted (rank): {', '.join(low)}" if low else ""
    )
    if missing:
        return _finish(
            [], [ds for ds in datasets if ds not in missing], missing, ev + f". Holm across {len(tests)} comparisons"
        )
    return Verdict(verdict, ev + f". Holm across {len(tests)} comparisons.", chosen=[best] if verdict == HOLDS else [])


def rises(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    ok, ev = [], []
    for ds in datasets:
        curve = [
            (v, mean_over_seeds(res.values(ds, m, protocol, "steerability_score"))) for v, m in dial_settings(res, ds)
        ]
        curve = [(v, s) for v, s in curve if s is not None]
        if len(curve) < claim["min_settings"]:
            continue
        rho = float(spearmanr([v for v, _ in curve], [s for _, s in curve])[0])
        ev.append(
            f"{ds}: {len(curve)} settings, S from {signed(curve[0][1])} (dial {curve[0][0]:g}) to "
            f"{signed(curve[-1][1])} (dial {curve[-1][0]:g}), Spearman ρ = {rho:.2f}"
        )
        if rho >= claim["min_rho"]:
            ok.append(ds)
    if not ev:
        return Verdict(NOT_RUN, f"no data set has {claim['min_settings']} dial settings")
    verdict = HOLDS if claim["must_include"] in ok and len(ok) >= 2 else PARTLY if ok else FAILS
    return Verdict(verdict, "; ".join(ev) + ".")
