"""steerable.search.funnel: the funnel and adaptive rules over two stages."""

import numpy as np
import pytest

from steerable.search.funnel import Exact, adaptive, funnel
from steerable.search.metrics import overlap_at_k
from steerable.search.ranking import rank


def _unit(a):
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _random(n_q=20, n_d=60, dim=8, short=2, seed=0):
    rng = np.random.default_rng(seed)
    qf, df = _unit(rng.normal(size=(n_q, dim))), _unit(rng.normal(size=(n_d, dim)))
    return _unit(qf[:, :short]), Exact(_unit(df[:, :short])), qf, Exact(df)


def test_funnel_over_every_document_is_exact_search():
    qs, ds, qf, df = _random()
    exact, _ = df.search(qf, 10)
    np.testing.assert_array_equal(funnel(ds, df, qs, qf, k=10, shortlist=len(df))[0], exact)
    assert overlap_at_k(exact, rank(qf, df.vectors, 10)[0]) == 1.0


def test_overlap_rises_with_the_shortlist():
    qs, ds, qf, df = _random()
    exact, _ = df.search(qf, 10)
    overlaps = [overlap_at_k(funnel(ds, df, qs, qf, 10, K)[0], exact) for K in (10, 20, 40, 60)]
    assert overlaps == sorted(overlaps) and overlaps[-1] == 1.0


def test_overlap_of_a_prefix_shortlist_is_high_on_clustered_data():
    rng = np.random.default_rng(1)
    centres = 4 * rng.normal(size=(8, 4))  # the cluster shows in the first 4 dims

    def sample(n):
        c = rng.integers(0, 8, size=n)
        return np.concatenate([centres[c], np.zeros((n, 12))], axis=1) + 0.5 * rng.normal(size=(n, 16))

    qf, df = _unit(sample(40)), _unit(sample(200))
    exact, _ = rank(qf, df, 10)
    found, _ = funnel(Exact(_unit(df[:, :4])), Exact(df), _unit(qf[:, :4]), qf, 10, 50)
    assert overlap_at_k(found, exact) >= 0.9


def test_a_shortlist_shorter_than_k_is_refused():
    qs, ds, qf, df = _random()
    with pytest.raises(ValueError, match="^shortlist 5 is smaller than k=10$"):
        funnel(ds, df, qs, qf, k=10, shortlist=5)


def test_adaptive_extends_only_unconfident_queries():
    qs, ds, qf, df = _random()
    rows, _, extended = adaptive(ds, df, qs, qf, margin=np.inf, shortlist=30)
    assert extended.all()
    np.testing.assert_array_equal(rows, funnel(ds, df, qs, qf, 10, 30)[0])
    rows, sims, extended = adaptive(ds, df, qs, qf, margin=-np.inf, shortlist=30)
    assert not extended.any()
    np.testing.assert_array_equal(rows, ds.search(qs, 10)[0])
    np.testing.assert_array_equal(sims, ds.search(qs, 10)[1])  # the prefix's own similarities
    # by hand: short sims q0 [1, .8, 0] (gap .2, extended), q1 [.707, .990, .707] (gap .283, kept)
    d_short = Exact(_unit([[1, 0], [0.8, 0.6], [0, 1]]))
    q_short = _unit([[1, 0], [1, 1]])
    d_full = Exact(_unit([[0, 1], [1, 0], [0.6, 0.8]]))
    q_full = _unit([[1, 0], [0, 1]])  # q0 by the full vector: d1 (1), d2 (.6), d0 (0)
    rows, _, extended = adaptive(d_short, d_full, q_short, q_full, k=2, shortlist=3, margin=0.25)
    assert rows.tolist() == [[1, 2], [1, 0]] and extended.tolist() == [True, False]
