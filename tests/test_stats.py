"""Statistics checked against values computed by hand."""

import math

import numpy as np
import pytest

from steerable.stats import bootstrap_ci, holm, paired_test, summarize


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


def test_summary_and_bootstrap():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.sd == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert 1.0 <= s.ci_low < 2.5 < s.ci_high <= 4.0
    assert bootstrap_ci([1.0, 2.0, 3.0, 4.0]) == bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert summarize([0.3]).sd == 0.0


def test_unequal_pairs_are_refused():
    with pytest.raises(ValueError, match="equal lengths, got 2 and 3"):
        paired_test([1, 2], [1, 2, 3])
