"""What every rule of the claims file shares: the verdict, the family of tests Holm runs over, how a claim
judged on some data sets and not run on others reads, and the helpers that pair seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from steerable.methods import label
from steerable.report import Results
from steerable.stats import holm, paired_test

from .claims import CLAIMS_FILE, load_claims  # noqa: F401  (re-exported for the page and the tests)

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


def _finish(
    ok: Sequence[str],
    judged: Sequence[str],
    missing: Sequence[str],
    evidence: str,
    chosen: list[str] | None = None,
    where: str = "",
) -> Verdict:
    """The verdict of a claim judged on ``judged`` (``ok`` of them passing) with ``missing`` not run:
    holds on every one, partly on some, does not hold on none; not judged while any named data set has
    no runs; not run when none has."""
    if missing:
        evidence += ("; " if evidence else "") + f"not run: {', '.join(missing)}"
    if not judged:
        return Verdict(NOT_RUN, evidence, where=where)
    if missing:
        return Verdict(NOT_JUDGED, evidence, where=where)
    return Verdict(
        _count(len(ok), len(judged)), evidence, where=where, chosen=(chosen or []) if len(ok) == len(judged) else []
    )


def _paired_tests(
    datasets: Sequence[str], refs: Sequence[str], pair: Callable[[str, str], tuple[list[float], list[float]]]
) -> tuple[dict, list[str]]:
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
    sig = [
        ds
        for ds in dss
        if all((ds, r) in tests and tests[(ds, r)].mean_diff > 0 and p_holm[(ds, r)] < alpha for r in refs)
    ]
    ahead = [ds for ds in dss if all((ds, r) in tests and tests[(ds, r)].mean_diff > 0 for r in refs)]
    return p_holm, dss, sig, HOLDS if len(sig) == len(dss) else PARTLY if ahead else FAILS
