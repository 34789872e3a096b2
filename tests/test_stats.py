"""Statistics checked against values computed by hand."""

import math

import numpy as np
import pytest
from scipy.stats import t as t_dist

from steerable.stats import bootstrap_ci, equivalence_test, holm, paired_test, summarize, t_interval


def test_paired_t_p_and_d_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3); with 2 degrees of freedom the
    # two-sided p has the closed form 1 - t / sqrt(2 + t^2)
    r = paired_test([11, 22, 33], [10, 20, 30])
    t = 2 * math.sqrt(3)
    assert r.n == 3 and r.mean_diff == pytest.approx(2)
    assert r.t == pytest.approx(t)
    assert r.p == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert r.d == pytest.approx(2.0)


def test_paired_t_five_seeds_by_hand():
    v5 = [0.15, 0.12, 0.18, 0.14, 0.16]
    mrl = [0.01, -0.01, 0.02, 0.00, 0.01]
    r = paired_test(v5, mrl)
    sd = math.sqrt(520e-6 / 4)  # diffs .14 .13 .16 .14 .15, mean .144
    assert r.t == pytest.approx(0.144 / (sd / math.sqrt(5)))
    assert r.d == pytest.approx(0.144 / sd)
    assert r.p < 1e-4


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = holm([0.01, float("nan")])
    assert out[0] == pytest.approx(0.01) and math.isnan(out[1])


def test_summary_over_a_few_seeds_is_a_t_interval_and_over_many_a_bootstrap():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    sd = np.std([1, 2, 3, 4], ddof=1)
    assert s.mean == 2.5 and s.sd == pytest.approx(sd)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3 df) * sd / sqrt(4)
    assert (s.ci_low, s.ci_high) == pytest.approx((2.5 - half, 2.5 + half))
    assert t_interval([1.0, 2.0, 3.0, 4.0]) == pytest.approx((s.ci_low, s.ci_high))
    # the percentile bootstrap over 4 values is narrower than the t-interval: the reason for the switch
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert s.ci_low < lo and hi < s.ci_high
    many = list(np.random.default_rng(0).normal(size=40))
    assert (summarize(many).ci_low, summarize(many).ci_high) == bootstrap_ci(many)
    assert summarize([0.3]).sd == 0.0


def test_unequal_pairs_are_refused():
    with pytest.raises(ValueError, match="equal lengths, got 2 and 3"):
        paired_test([1, 2], [1, 2, 3])


def test_equivalence_by_hand_and_where_it_fails():
    # differences -0.001, 0.001, 0.000, 0.002, -0.002 around 0: sd 0.00158, se 0.000707
    a = [0.951, 0.953, 0.952, 0.954, 0.950]
    b = [0.952, 0.952, 0.952, 0.952, 0.952]
    e = equivalence_test(a, b, margin=0.005)
    se = np.std(np.subtract(a, b), ddof=1) / math.sqrt(5)
    assert e.mean_diff == pytest.approx(0.0, abs=1e-12)
    assert e.p_lower == pytest.approx(1 - t_dist.cdf(0.005 / se, 4))
    assert e.p < 0.05 and -0.005 < e.ci_low < e.ci_high < 0.005
    # the same spread 0.6 pt below: not equivalent within 0.5 pt
    assert equivalence_test(np.subtract(a, 0.006), b, margin=0.005).p > 0.05
    # no evidence either way (a noisy difference): a t-test would not reject, TOST does not accept
    noisy = equivalence_test([0.95, 0.97, 0.93, 0.96, 0.94], b, margin=0.005)
    assert paired_test([0.95, 0.97, 0.93, 0.96, 0.94], b).p > 0.05 and noisy.p > 0.05
    with pytest.raises(ValueError, match="margin must be positive"):
        equivalence_test(a, b, margin=0)


def test_one_sided_is_the_t_test_above_a_margin_and_its_lower_bound():
    from steerable.stats import one_sided

    x = [0.1, 0.3, 0.2, 0.25, 0.15]
    t = one_sided(x, 0.1)
    se = np.std(x, ddof=1) / np.sqrt(5)
    assert t.p == pytest.approx(t_dist.sf((0.2 - 0.1) / se, 4))
    assert t.lower == pytest.approx(0.2 - t_dist.ppf(0.95, 4) * se)
    assert (t.p < 0.05) == (t.lower > 0.1)
    assert one_sided([0.3] * 4, 0.1).p == 0.0 and one_sided([0.3] * 4, 0.5).p == 1.0
    assert np.isnan(one_sided([0.3], 0.1).p)
