"""Verdicts: the rules of ``paper/claims.json`` applied to the records.

Each rule is a small function registered by name in :data:`RULES`. It receives the claim's entry,
the records (:class:`~steerable.report.Results`), the protocol and the data sets to judge on, and
returns a :class:`Verdict`: holds / partly / does not hold (or not run, when the runs it needs are
missing: a missing run is never replaced by another). A claim with ``confirm_on`` is judged again on
the confirmation data sets, each on its own, for the method(s) it held for on the selection ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.stats import spearmanr

from steerable.methods import label, mrl_reference
from steerable.report import Results
from steerable.report.tables import open_set_values, retrieval_dims, retrieval_mean
from steerable.stats import equivalence_test, holm, paired_test

from .beyond import dial_settings, prefix_ranks
from .claims import CLAIMS_FILE, load_claims  # noqa: F401  (re-exported for the page and the tests)
from .tables import complexity_fit

HOLDS, PARTLY, FAILS, NOT_RUN = "holds", "partly", "does not hold", "not run"


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

def equivalent(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    m, ref, metric, margin = claim["method"], claim["reference"], claim["metric"], claim["margin"]
    tests = {}
    for ds in datasets:
        a, b = _paired(res.values(ds, m, protocol, metric), res.values(ds, ref, protocol, metric))
        if len(a) >= 2:
            tests[ds] = equivalence_test(a, b, margin)
    if not tests:
        return Verdict(NOT_RUN, f"no data set has both {label(m)} and {label(ref)}")
    p_holm = dict(zip(tests, holm([t.p for t in tests.values()])))
    ok = [ds for ds in tests if p_holm[ds] < alpha]
    ev = "; ".join(f"{ds} Δ {100 * t.mean_diff:+.1f} pt, 90 % CI [{100 * t.ci_low:+.1f}, {100 * t.ci_high:+.1f}], "
                   f"TOST p (Holm) = {p_holm[ds]:.2g}" for ds, t in tests.items())
    return Verdict(_count(len(ok), len(tests)), f"{label(m)} − {label(ref)} {metric}: {ev}. Equivalent on "
                   f"{len(ok)} of {len(tests)}.", chosen=[m] if ok else [])


def beats(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    methods, refs, metric = claim["methods"], claim["references"], claim["metric"]
    ok, total, ev = 0, 0, []
    for ds in datasets:
        means = {m: mean_over_seeds(res.values(ds, m, protocol, metric)) for m in (*methods, *refs)}
        if any(v is None for v in means.values()):
            continue
        total += 1
        ok += all(means[m] > means[r] for m in methods for r in refs)
        ev.append(f"{ds} " + " / ".join(f"{label(m)} {pct(v)}" for m, v in means.items()))
    if not total:
        return Verdict(NOT_RUN, "no data set has every method and reference")
    return Verdict(_count(ok, total), f"{metric} (%): {'; '.join(ev)}. Above every reference on {ok} of {total}.")


def _paired_tests(datasets: Sequence[str], refs: Sequence[str],
                  pair: Callable[[str, str], tuple[list[float], list[float]]]) -> dict:
    """(data set, reference) -> paired test of the method against it, where ``pair(ds, ref)`` gives at
    least two matched seeds."""
    tests = {}
    for ds in datasets:
        for ref in refs:
            a, b = pair(ds, ref)
            if len(a) >= 2:
                tests[(ds, ref)] = paired_test(a, b)
    return tests


def _above_every_reference(tests: dict, refs: Sequence[str], alpha: float) -> tuple[dict, list[str], list[str], str]:
    """Holm over ``tests``; the data sets tested, those where the method is significantly above every
    reference, and the verdict: holds if that is every data set, partly if it is ahead of every
    reference on some."""
    p_holm = dict(zip(tests, holm([t.p for t in tests.values()])))
    dss = sorted({ds for ds, _ in tests})
    sig = [ds for ds in dss if all((ds, r) in tests and tests[(ds, r)].mean_diff > 0 and p_holm[(ds, r)] < alpha
                                   for r in refs)]
    ahead = [ds for ds in dss if all((ds, r) in tests and tests[(ds, r)].mean_diff > 0 for r in refs)]
    return p_holm, dss, sig, HOLDS if len(sig) == len(dss) else PARTLY if ahead else FAILS


def greater(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    m, refs, metric = claim["method"], claim["references"], claim["metric"]
    tests = _paired_tests(datasets, refs, lambda ds, ref: _paired(res.values(ds, m, protocol, metric),
                                                                  res.values(ds, ref, protocol, metric)))
    if not tests:
        return Verdict(NOT_RUN, f"no data set has {label(m)} and its references")
    p_holm, dss, sig, verdict = _above_every_reference(tests, refs, alpha)
    ev = "; ".join(f"{ds} vs {label(r)} Δ {t.mean_diff:+.3f} (Holm p = {p_holm[(ds, r)]:.2g}, d = {t.d:.1f})"
                   for (ds, r), t in tests.items())
    floors = "".join(_floors(res, claim, ds, protocol).replace("; floors'", f"; {ds} floors'") for ds in dss)
    return Verdict(verdict, f"{label(m)}: {ev}. Significant against every reference on {len(sig)} of "
                   f"{len(dss)}{floors}.", chosen=[m] if verdict == HOLDS else [])


def magnitude(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    (ds,) = datasets
    v = mean_over_seeds(res.values(ds, claim["method"], protocol, claim["metric"]))
    r = mean_over_seeds(res.values(ds, claim["reference"], protocol, claim["metric"]))
    if v is None or r is None:
        return Verdict(NOT_RUN, f"{ds}: no runs")
    verdict = (HOLDS if v >= claim["at_least"] and abs(r) <= claim["reference_within"]
               else PARTLY if v > r + claim["partly_margin"] else FAILS)
    return Verdict(verdict, f"{label(claim['method'])} {signed(v)}, {label(claim['reference'])} {signed(r)}.")


def threshold(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    (ds,) = datasets
    v = mean_over_seeds(res.values(ds, claim["method"], protocol, claim["metric"]))
    if v is None:
        return Verdict(NOT_RUN, f"{ds}: no {label(claim['method'])} runs", where=ds)
    if "at_least" in claim:
        verdict = HOLDS if v >= claim["at_least"] else PARTLY if v >= claim["partly_at_least"] else FAILS
    elif "below" in claim:
        verdict = HOLDS if v < claim["below"] else PARTLY if v < claim["partly_below"] else FAILS
    else:
        verdict = HOLDS if abs(v) <= claim["within"] else FAILS
    return Verdict(verdict, f"{label(claim['method'])} {claim['metric']} = {v:+.3f}.", where=ds)


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


def _noninferior(res: Results, ds: str, m: str, ref: str, protocol: str, margin: float, alpha: float
                 ) -> tuple[bool, str] | None:
    """Whether ShortCoarse and FullFine of ``m`` are each non-inferior to ``ref``'s within ``margin``."""
    parts, ok = [], True
    for metric, name in (("short_coarse", "ShortCoarse"), ("full_fine", "FullFine")):
        a, b = _paired(res.values(ds, m, protocol, metric), res.values(ds, ref, protocol, metric))
        if len(a) < 2:
            return None
        e = equivalence_test(a, b, margin)
        ok &= e.p_lower < alpha
        parts.append(f"{name} {100 * np.mean(a):.1f} vs {100 * np.mean(b):.1f} ({100 * e.mean_diff:+.1f} pt, "
                     f"p = {e.p_lower:.2g})")
    return ok, ", ".join(parts)


def steerable_within_bounds(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float
                            ) -> Verdict:
    (ds,) = datasets
    judged = []
    for m in claim["candidates"]:
        s = mean_over_seeds(res.values(ds, m, protocol, "steerability_score"))
        if s is None:
            continue
        if "times_reference" in claim:
            base = mean_over_seeds(res.values(ds, claim["times_reference"], protocol, "steerability_score"))
            if base is None:
                continue
            s_ok, s_txt = s >= claim["factor"] * base, f"S = {signed(s)} vs {label(claim['times_reference'])} {signed(base)}"
        else:
            s_ok, s_txt = s >= claim["at_least"], f"S = {signed(s)}"
        refs = list(dict.fromkeys("mrl" if r == "mrl" else mrl_reference(m) for r in claim["references"]))
        checks = {r: c for r in refs if (c := _noninferior(res, ds, m, r, protocol, claim["margin"], alpha))}
        all_refs = len(checks) == len(refs) and all(c[0] for c in checks.values())
        same = checks.get(mrl_reference(m), (False,))[0]
        rank = 2 if s_ok and all_refs else 1 if s_ok and same else 0
        ev = f"{label(m)}: {s_txt}; " + "; ".join(f"vs {label(r)}: {c[1]}" for r, c in checks.items())
        judged.append((rank, s, m, ev))
    if not judged:
        return Verdict(NOT_RUN, f"{ds}: no candidate ran", where=ds)
    rank, s, m, ev = max(judged)
    verdict = {2: HOLDS, 1: PARTLY, 0: FAILS}[rank]
    return Verdict(verdict, ev + _floors(res, claim, ds, protocol) + ".", where=ds,
                   chosen=[m] if rank == 2 else [])


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


def _unseen_coarse_accuracy(res: Results, ds: str, m: str, kind: str, ref: str) -> tuple[list[float], list[float]]:
    """Coarse k-NN accuracy at the shortest prefix of the held-out texts of ``m``'s and ``ref``'s open-set
    runs of ``kind`` (``coarse`` or ``fine``) on ``ds``, paired by seed (empty where either has none)."""
    unseen = sorted(u for d, mm, u in res.open_set if d == ds and mm == m and u.startswith(kind))
    if not unseen:
        return [], []
    what = f"accuracy/{res.levels[ds][0]}/0"
    return _paired(open_set_values(res, ds, m, unseen[0], what), open_set_values(res, ds, ref, unseen[0], what))


def open_set_greater(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    """A method's coarse accuracy at the shortest prefix on held-out classes above each reference's."""
    m, refs, kind = claim["method"], claim["references"], claim["unseen_kind"]
    tests = _paired_tests(datasets, refs, lambda ds, ref: _unseen_coarse_accuracy(res, ds, m, kind, ref))
    if not tests:
        return Verdict(NOT_RUN, f"no open-set runs of {label(m)} and its references with unseen {kind} classes")
    p_holm, dss, sig, verdict = _above_every_reference(tests, refs, alpha)
    ev = "; ".join(f"{ds} vs {label(r)} Δ {100 * t.mean_diff:+.1f} pt (n = {t.n}, Holm p = {p_holm[(ds, r)]:.2g})"
                   for (ds, r), t in tests.items())
    return Verdict(verdict, f"{label(m)}: {ev}. Significant against every reference on {len(sig)} of {len(dss)}.")


def open_set_goal(res: Results, claim: dict, protocol: str, datasets: Sequence[str], alpha: float) -> Verdict:
    tests, side = {}, {}
    for m in claim["candidates"]:
        for ds in datasets:
            for ref in [r for r in claim["references"] if r != m]:  # MRL is a candidate and a reference
                a, b = _unseen_coarse_accuracy(res, ds, m, claim["unseen_kind"], ref)
                if len(a) >= 2:
                    tests[(m, ds, ref)] = paired_test(a, b)
            if not any(k[:2] == (m, ds) for k in tests):
                continue
            fine = res.levels[ds][-1]
            eq = _paired(res.values(ds, m, protocol, "full_fine"), res.values(ds, "mrl", protocol, "full_fine"))
            tost = equivalence_test(*eq, claim["margin"]) if len(eq[0]) >= 2 else None
            probe, heal = mean_over_seeds(res.probe(ds, m, fine)), mean_over_seeds(res.probe(ds, "heal", fine))
            side[(m, ds)] = (tost, probe, heal)
    if not tests:
        return Verdict(NOT_RUN, "no open-set runs with unseen coarse classes")
    p_holm = dict(zip(tests, holm([t.p for t in tests.values()])))

    def passes(m: str, ds: str) -> bool:
        tost, probe, heal = side.get((m, ds), (None, None, None))
        beats_all = all((m, ds, r) in tests and tests[(m, ds, r)].mean_diff > 0 and p_holm[(m, ds, r)] < claim["p_below"]
                        for r in claim["references"] if r != m)
        return (beats_all and tost is not None and tost.p < alpha and None not in (probe, heal) and probe < heal)

    score = {m: [ds for ds in datasets if passes(m, ds)] for m in claim["candidates"]}
    best = max(score, key=lambda m: (len(score[m]), np.mean([tests[k].mean_diff for k in tests if k[0] == m] or [-1])))
    verdict = HOLDS if len(score[best]) == len(datasets) else PARTLY if score[best] else FAILS
    ev = []
    for ds in datasets:
        cells = [f"vs {label(r)} Δ {100 * tests[(best, ds, r)].mean_diff:+.1f} pt (Holm p = {p_holm[(best, ds, r)]:.2g})"
                 for r in claim["references"] if (best, ds, r) in tests]
        tost, probe, heal = side.get((best, ds), (None, None, None))
        if tost is not None:
            cells.append(f"FullFine vs MRL TOST p = {tost.p:.2g}")
        if probe is not None and heal is not None:
            cells.append(f"probe {pct(probe)} vs HEAL {pct(heal)}")
        ev.append(f"{ds}: " + ", ".join(cells) if cells else f"{ds}: not run")
    return Verdict(verdict, f"closest: {label(best)}; " + "; ".join(ev) + f". Holm across {len(tests)} comparisons.",
                   chosen=[best] if verdict == HOLDS else [])


RULES: dict[str, Callable[..., Verdict]] = {
    "equivalent": equivalent, "beats": beats, "greater": greater, "magnitude": magnitude, "threshold": threshold,
    "recall_loss": recall_loss_rule, "complexity": complexity, "steerable_within_bounds": steerable_within_bounds,
    "full_rank_beats": full_rank_beats, "rises": rises, "open_set_goal": open_set_goal,
    "open_set_greater": open_set_greater,
}


# ------------------------------------------------------------------------------------------ judge

def _datasets(claim: dict, res: Results) -> list[str]:
    """The data sets a claim is judged on that have runs (closed-set or open-set)."""
    wanted = res.datasets if claim["datasets"] == "all" else claim["datasets"]
    return [d for d in wanted if d in res.datasets or any(k[0] == d for k in res.open_set)]


def judge(claim: dict, res: Results, claims: dict, protocol: str) -> list[Verdict]:
    """The claim's verdicts under ``protocol``: one, or one per data set for a per-data-set claim."""
    rule, alpha, datasets = RULES[claim["rule"]], claims["alpha"], _datasets(claim, res)
    if not datasets:
        return [Verdict(NOT_RUN, "no runs on " + ", ".join(res.datasets if claim["datasets"] == "all"
                                                            else claim["datasets"]))]
    if claim.get("per_dataset"):
        return [rule(res, claim, protocol, [ds], alpha) for ds in datasets]
    return [rule(res, claim, protocol, datasets, alpha)]


def confirm(claim: dict, verdicts: Sequence[Verdict], res: Results, claims: dict, protocol: str) -> list[Verdict]:
    """The claim judged on each confirmation data set for the method(s) it held for on the selection
    ones; "not confirmed" where that data set has no runs of them."""
    chosen = sorted({m for v in verdicts for m in v.chosen})
    if not claim.get("confirm_on") or not chosen:
        return []
    out = []
    narrowed = claim | ({"candidates": chosen} if "candidates" in claim else {})
    for ds in claims["confirmation_datasets"]:
        v = RULES[claim["rule"]](res, narrowed, protocol, [ds], claims["alpha"])
        if v.verdict == NOT_RUN:
            v = Verdict("not confirmed", f"no runs of {', '.join(label(m) for m in chosen)} on {ds}")
        v.where = ds
        out.append(v)
    return out
