"""steerable.search.ranking: one top-k, exact search and rerank, all with ties to the lower row."""

import numpy as np
import pytest

from steerable.search.ranking import rank, rerank, top_k, truncate


def _unit(a):
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _reference(scores, k):
    """The rule, by a stable full sort: best first, ties to the lower column."""
    cols = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return cols, np.take_along_axis(scores, cols, axis=1)


@pytest.mark.parametrize("shape,k", [((3, 5), 2), ((40, 2000), 7), ((40, 2000), 600), ((5, 30), 30)])
def test_top_k_follows_the_tie_rule_on_both_paths(shape, k):
    """Short rows are sorted whole, long ones go through torch.topk; both give the rule's answer,
    with many ties, ties across the k-th boundary and excluded (-inf) entries."""
    rng = np.random.default_rng(0)
    scores = rng.integers(-3, 4, size=shape).astype(np.float32)  # small integers: ties everywhere
    scores[:, ::7] = -np.inf
    cols, vals = top_k(scores, k)
    ref_cols, ref_vals = _reference(scores, k)
    np.testing.assert_array_equal(cols, ref_cols)
    np.testing.assert_array_equal(vals, ref_vals)


def test_rank_is_exact_with_ties_to_the_lower_document_index():
    docs = _unit([[0, 1], [1, 0], [1, 0], [0.6, 0.8], [1, 0]])
    assert rank(_unit([[1, 0]]), docs, 3)[0].tolist() == [[1, 2, 4]]  # three tied at 1.0
    assert rank(_unit([[1, 0]]), docs, 2)[0].tolist() == [[1, 2]]  # tie cut at the boundary
    assert rank(_unit([[1, 0]]), docs, 9)[0].shape == (1, 5)  # k capped at the number of docs
    rng = np.random.default_rng(0)
    q = rng.integers(-1, 2, size=(7, 3)).astype(np.float32)
    d = rng.integers(-1, 2, size=(300, 3)).astype(np.float32)
    ref = _reference(q @ d.T, 6)[0]
    np.testing.assert_array_equal(rank(q, d, 6, chunk=2)[0], ref)


def test_rank_leave_one_out_never_returns_the_query_itself():
    x = _unit(np.random.default_rng(1).normal(size=(20, 4)))
    rows, sims = rank(x, x, 19, exclude_self=True)
    assert rows.shape == (20, 19) and not (rows == np.arange(20)[:, None]).any()
    np.testing.assert_allclose(sims[:, 0], np.sort(x @ x.T - 2 * np.eye(20), axis=1)[:, -1], atol=1e-6)


def test_rerank_orders_the_candidates_by_the_full_vector_and_skips_missing_ones():
    rng = np.random.default_rng(2)
    docs, q = _unit(rng.normal(size=(600, 32))), _unit(rng.normal(size=(25, 32)))
    cand = rng.permutation(600)[:300].reshape(25, 12)
    cand[3, 5:] = -1  # a query whose first stage found only 5 candidates
    rows, sims = rerank(q, docs, cand, 10)
    assert (rows[3, 5:] == -1).all() and np.isneginf(sims[3, 5:]).all()
    for i in range(25):
        ok = cand[i][cand[i] >= 0]
        brute = q[i] @ docs[ok].T
        order = np.argsort(-brute, kind="stable")[:10]
        np.testing.assert_array_equal(rows[i][: len(order)], ok[order])
        np.testing.assert_allclose(sims[i][: len(order)], brute[order], rtol=1e-5, atol=1e-6)
    twins = np.concatenate([docs, docs[:1]])  # row 600 is row 0 again: the tie goes to row 0
    assert rerank(docs[:1], twins, np.array([[600, 0, 5]]), 2)[0].tolist() == [[0, 600]]


def test_truncate_is_the_renormalised_prefix():
    x = np.array([[3.0, 4.0, 12.0]], dtype=np.float32)
    np.testing.assert_allclose(truncate(x, 2), [[0.6, 0.8]])
