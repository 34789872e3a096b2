"""Verdicts: the rules of ``paper/claims.json`` applied to the records.

Each rule is a small function registered by name in :data:`RULES` (:mod:`paper.rules_closed`,
:mod:`paper.rules_open`). It receives the claim's entry, the records (:class:`~steerable.report.Results`),
the protocol and the data sets to judge on, and returns a :class:`Verdict` (or one per data set): holds /
partly / does not hold. Every comparison a claim makes is a test, and Holm runs over all of them; a
threshold is met when its interval clears it, never by a mean. A data set the claim names with no runs
reads "not run" and the claim "not judged": a missing run is never replaced by another, and never leaves
the denominator. A claim with ``confirm_on`` is judged again on the confirmation data sets, each on its
own, for the method(s) it held for on the selection ones.
"""

from __future__ import annotations

from typing import Callable, Sequence

from steerable.methods import label
from steerable.report import Results

from .claims import CLAIMS_FILE, load_claims  # noqa: F401  (re-exported for the page and the tests)
from .judging import FAILS, HOLDS, NOT_JUDGED, NOT_RUN, PARTLY, Verdict, _finish, mean_over_seeds, pct, signed  # noqa: F401  (re-exported for the page and the tests)
from .rules_closed import (  # noqa: F401  (recall_loss and its verdict: re-exported for the report)
    beats,
    complexity,
    equivalent,
    full_rank_beats,
    greater,
    magnitude,
    recall_loss,
    recall_loss_rule,
    recall_loss_verdict,
    rises,
    steerable_within_bounds,
    threshold,
)
from .rules_open import open_set_goal, open_set_greater, steer_and_generalise

RULES: dict[str, Callable[..., Verdict | list[Verdict]]] = {
    "equivalent": equivalent,
    "beats": beats,
    "greater": greater,
    "magnitude": magnitude,
    "threshold": threshold,
    "recall_loss": recall_loss_rule,
    "complexity": complexity,
    "steerable_within_bounds": steerable_within_bounds,
    "full_rank_beats": full_rank_beats,
    "rises": rises,
    "open_set_goal": open_set_goal,
    "open_set_greater": open_set_greater,
    "steer_and_generalise": steer_and_generalise,
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
    combined = _finish(
        ok, [v.where for v in judged], missing, evidence, where=verdicts[0].where if len(verdicts) == 1 else ""
    )
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
            v = Verdict(
                "not confirmed",
                f"no runs of {', '.join(label(m) for m in chosen)} on {ds}"
                + (f" ({v.evidence})" if v.evidence else ""),
            )
        v.where = ds
        out.append(v)
    return out
