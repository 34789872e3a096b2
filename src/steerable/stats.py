"""Statistics over seeds: summaries with confidence intervals (Student t over a handful of seeds,
bootstrap over many), paired tests and effect sizes, paired equivalence (two one-sided tests), and
Holm's correction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return asdict(self)

    def fmt(self, digits: int = 3) -> str:
        if self.n < 2:
            return f"{self.mean:+.{digits}f}"
        return f"{self.mean:+.{digits}f} ± {self.sd:.{digits}f}"


def bootstrap_ci(values: ArrayLike, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (seeded, so reruns agree)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return (float(x.mean()), float(x.mean())) if len(x) else (math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    means = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


BOOTSTRAP_FROM = 30  # below this many values the interval is Student's t, not the bootstrap


def t_interval(values: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean: mean ± t(level, n - 1) · sd / sqrt(n)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return (float(x.mean()), float(x.mean())) if len(x) else (math.nan, math.nan)
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def summarize(values: ArrayLike, seed: int = 0) -> Summary:
    """Mean, sample sd and a 95 % CI of the mean: Student's t over fewer than
    :data:`BOOTSTRAP_FROM` values (a handful of seeds), the seeded percentile bootstrap over more."""
    x = np.asarray(values, dtype=float)
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    lo, hi = t_interval(x) if len(x) < BOOTSTRAP_FROM else bootstrap_ci(x, seed=seed)
    return Summary(len(x), float(x.mean()) if len(x) else math.nan, sd, lo, hi)


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean_diff: float
    t: float
    p: float
    d: float  # Cohen's d for paired data: mean(diff) / sd(diff)

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(a: ArrayLike, b: ArrayLike) -> PairedTest:
    """Two-sided paired t-test of ``a - b`` over matched seeds, with paired Cohen's d."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(x)} and {len(y)}")
    diff = x - y
    n = len(diff)
    if n < 2:
        return PairedTest(n, float(diff.mean()) if n else math.nan, math.nan, math.nan, math.nan)
    sd = diff.std(ddof=1)
    mean = float(diff.mean())
    if sd == 0:
        t = math.copysign(math.inf, mean) if mean else math.nan
        p = 0.0 if mean else 1.0
        d = math.copysign(math.inf, mean) if mean else math.nan
        return PairedTest(n, mean, t, p, d)
    t = mean / (sd / math.sqrt(n))
    p = float(2 * stats.t.sf(abs(t), df=n - 1))
    return PairedTest(n, mean, float(t), p, float(mean / sd))


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided paired tests (TOST) that ``a - b`` lies within ``(-margin, +margin)``."""

    n: int
    mean_diff: float
    margin: float
    p_lower: float  # H0: diff <= -margin
    p_upper: float  # H0: diff >= +margin
    ci_low: float  # the (1 - 2 alpha) interval of the difference: inside the margins iff p < alpha
    ci_high: float

    @property
    def p(self) -> float:
        """The TOST p-value: the larger of the two one-sided ones."""
        return max(self.p_lower, self.p_upper)

    def to_dict(self) -> dict:
        return asdict(self) | {"p": self.p}


def equivalence_test(a: ArrayLike, b: ArrayLike, margin: float, alpha: float = 0.05) -> Equivalence:
    """Paired TOST over matched seeds: equivalence of ``a`` and ``b`` within ``margin`` is shown when
    both one-sided t-tests reject (``p < alpha``), i.e. the 90 % interval of the mean difference lies
    inside ``(-margin, margin)``. A non-significant difference test shows nothing of the kind."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if margin <= 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    diff = a - b
    n, mean = len(diff), float(diff.mean()) if len(diff) else math.nan
    if n < 2:
        return Equivalence(n, mean, margin, math.nan, math.nan, math.nan, math.nan)
    se = diff.std(ddof=1) / math.sqrt(n)
    if se == 0:
        inside = -margin < mean < margin
        p = 0.0 if inside else 1.0
        return Equivalence(n, mean, margin, p, p, mean, mean)
    p_lower = float(stats.t.sf((mean + margin) / se, n - 1))
    p_upper = float(stats.t.cdf((mean - margin) / se, n - 1))
    half = stats.t.ppf(1 - alpha, n - 1) * se
    return Equivalence(n, mean, margin, p_lower, p_upper, mean - half, mean + half)


def holm(pvalues: ArrayLike) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


@dataclass(frozen=True)
class OneSided:
    """A one-sided t-test that the mean of ``values`` lies above ``margin``, and the matching interval."""

    n: int
    mean: float
    margin: float
    p: float  # H0: mean <= margin
    lower: float  # the one-sided (1 - alpha) lower confidence bound of the mean: above margin iff p < alpha

    def to_dict(self) -> dict:
        return asdict(self)


def one_sided(values: ArrayLike, margin: float = 0.0, alpha: float = 0.05) -> OneSided:
    """One-sided Student t-test of ``mean(values) > margin`` (for a paired comparison, ``values`` are the
    differences; for "below", negate both). With a zero spread the p-value is 0 or 1."""
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(x.mean()) if len(x) else math.nan
    if n < 2:
        return OneSided(n, mean, margin, math.nan, math.nan)
    se = x.std(ddof=1) / math.sqrt(n)
    if se == 0:
        return OneSided(n, mean, margin, 0.0 if mean > margin else 1.0, mean)
    p = float(stats.t.sf((mean - margin) / se, n - 1))
    return OneSided(n, mean, margin, p, mean - stats.t.ppf(1 - alpha, n - 1) * se)
