"""Retrieval: ranking, label metrics, multi-stage and adaptive search, on inputs small enough to check
by hand."""

import numpy as np
import pytest

from steerable.retrieval import (adaptive, mrr, multistage, ndcg_at_10, ndcg_at_k, overlap_at_k, rank,
                                 recall_at_k, retrieval_metrics, split_queries, sweep_shortlist)


def _unit(a):
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# 5 documents, 3 queries, labels (coarse, fine); the rankings are given, not computed.
D_LABELS = np.array([[0, 0], [0, 1], [1, 2], [1, 3], [0, 0]])
Q_LABELS = np.array([[0, 0], [1, 3], [1, 2]])
RANKED = np.array([[1, 2, 0, 3, 4],   # q0: same coarse at rank 1 (d1), same fine at ranks 3, 5
                   [2, 3, 0, 1, 4],   # q1: same coarse at rank 1 (d2), same fine at rank 2 (d3)
                   [0, 1, 4, 3, 2]])  # q2: same coarse at rank 4 (d3), same fine at rank 5 (d2)


def test_recall_is_the_hit_rate_per_level():
    r = recall_at_k(RANKED, Q_LABELS, D_LABELS, ks=(1, 2, 3, 5))
    np.testing.assert_allclose(r[1], [2 / 3, 0])      # coarse: q0, q1 hit; fine: none at rank 1
    np.testing.assert_allclose(r[2], [2 / 3, 1 / 3])  # fine: q1 (rank 2)
    np.testing.assert_allclose(r[3], [2 / 3, 2 / 3])  # fine: q0 (rank 3), q1
    np.testing.assert_allclose(r[5], [1, 1])          # every query has a match somewhere
    # a cutoff past the number of documents counts every document; past a shallow ranking, an error
    np.testing.assert_allclose(recall_at_k(RANKED, Q_LABELS, D_LABELS, ks=(20,))[20], [1, 1])
    with pytest.raises(ValueError):
        recall_at_k(RANKED[:, :3], Q_LABELS, D_LABELS, ks=(5,))


def test_mrr_per_level_with_a_cutoff():
    # coarse: (1 + 1 + 1/4) / 3 = 0.75; fine: (1/3 + 1/2 + 1/5) / 3 = 0.34444
    np.testing.assert_allclose(mrr(RANKED, Q_LABELS, D_LABELS), [0.75, (1 / 3 + 1 / 2 + 1 / 5) / 3])
    # cutoff 3: q2 finds nothing -> 0. coarse: (1 + 1 + 0) / 3; fine: (1/3 + 1/2 + 0) / 3 = 5/18
    np.testing.assert_allclose(mrr(RANKED, Q_LABELS, D_LABELS, cutoff=3), [2 / 3, 5 / 18])


def test_ndcg_with_graded_hierarchy_gains_by_hand():
    lg3 = np.log2(3)
    # q0: gains [1, 0, 2] -> DCG = 1 + 2/log2(4) = 2; its documents: gain 2 x2 (d0, d4), gain 1 x1
    #     (d1) -> ideal [2, 2, 1] = 2 + 2/log2(3) + 1/2 = 3.7619; nDCG = 0.5317
    # q1: gains [1, 2, 0] -> 1 + 2/log2(3) = 2.2619; ideal [2, 1, 0] = 2 + 1/log2(3) = 2.6309 -> 0.8597
    # q2: gains [0, 0, 0] -> 0
    expected = (2 / (2 + 2 / lg3 + 0.5) + (1 + 2 / lg3) / (2 + 1 / lg3) + 0) / 3
    assert ndcg_at_k(RANKED, Q_LABELS, D_LABELS, k=3) == pytest.approx(expected)
    assert expected == pytest.approx(0.46379, abs=1e-5)


def test_ndcg_is_one_for_a_perfect_ranking_and_below_one_when_gains_are_swapped():
    q = np.array([[0, 0]])
    # gains for q: d0 2, d1 1, d2 0, d3 2, d4 1
    d = np.array([[0, 0], [0, 1], [1, 2], [0, 0], [0, 1]])
    perfect = np.array([[0, 3, 1, 4, 2]])
    assert ndcg_at_10(perfect, q, d) == pytest.approx(1.0)
    assert ndcg_at_10(np.array([[3, 0, 4, 1, 2]]), q, d) == pytest.approx(1.0)  # equal gains swapped
    assert ndcg_at_10(np.array([[0, 1, 3, 4, 2]]), q, d) < 1.0  # gain-2 d3 below gain-1 d1
    # three levels: same finest 2, same coarsest only (middle shared or not) 1
    q3, d3 = np.array([[0, 0, 0]]), np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 2, 2]])
    assert ndcg_at_k(np.array([[2, 0, 1, 3]]), q3, d3, k=4) == pytest.approx(1.0)
    assert ndcg_at_k(np.array([[0, 1, 2, 3]]), q3, d3, k=4) < 1.0


def test_rank_is_exact_with_ties_to_the_lower_document_index():
    docs = _unit([[0, 1], [1, 0], [1, 0], [0.6, 0.8], [1, 0]])
    assert rank(_unit([[1, 0]]), docs, 3).tolist() == [[1, 2, 4]]  # three tied at 1.0
    assert rank(_unit([[1, 0]]), docs, 2).tolist() == [[1, 2]]     # tie cut at the boundary
    assert rank(_unit([[1, 0]]), docs, 9).shape == (1, 5)          # k capped at the number of docs
    # small integer vectors: exact dot products, many ties; reference = stable full sort
    rng = np.random.default_rng(0)
    q = rng.integers(-1, 2, size=(7, 3)).astype(np.float32)
    d = rng.integers(-1, 2, size=(30, 3)).astype(np.float32)
    ref = np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(rank(q, d, 6, chunk=2), ref)


def test_split_queries_is_seeded_disjoint_and_covering():
    q, d = split_queries(11, seed=3)
    q2, d2 = split_queries(11, seed=3)
    np.testing.assert_array_equal(q, q2)
    np.testing.assert_array_equal(d, d2)
    assert len(q) == 5 and len(d) == 6
    assert not set(q) & set(d)
    assert sorted(np.concatenate([q, d]).tolist()) == list(range(11))
    assert not np.array_equal(split_queries(11, seed=4)[0], q)


def _random(n_q=20, n_d=60, dim=8, short=2, seed=0):
    rng = np.random.default_rng(seed)
    qf, df = _unit(rng.normal(size=(n_q, dim))), _unit(rng.normal(size=(n_d, dim)))
    return _unit(qf[:, :short]), _unit(df[:, :short]), qf, df


def test_funnel_over_every_document_is_exact_search():
    qs, ds, qf, df = _random()
    np.testing.assert_array_equal(multistage(qs, ds, qf, df, shortlist=len(df), k=10), rank(qf, df, 10))
    assert overlap_at_k(rank(qf, df, 10), rank(qf, df, 10)) == 1.0


def test_overlap_rises_with_the_shortlist():
    qs, ds, qf, df = _random()
    exact = rank(qf, df, 10)
    overlaps = [overlap_at_k(multistage(qs, ds, qf, df, K), exact) for K in (10, 20, 40, 60)]
    assert overlaps == sorted(overlaps) and overlaps[-1] == 1.0


def test_overlap_of_a_prefix_shortlist_is_high_on_clustered_data():
    rng = np.random.default_rng(1)
    centres = 4 * rng.normal(size=(8, 4))  # the cluster shows in the first 4 dims

    def sample(n):
        c = rng.integers(0, 8, size=n)
        return np.concatenate([centres[c], np.zeros((n, 12))], axis=1) + 0.5 * rng.normal(size=(n, 16))
    qf, df = _unit(sample(40)), _unit(sample(200))
    exact = rank(qf, df, 10)
    assert overlap_at_k(multistage(_unit(qf[:, :4]), _unit(df[:, :4]), qf, df, 50), exact) >= 0.9


def test_overlap_counts_the_exact_rows_found():
    assert overlap_at_k(np.array([[1, 2], [3, 4]]), np.array([[2, 9], [4, 3]])) == 0.75


def test_retrieval_metrics_keys_and_ranges():
    rng = np.random.default_rng(0)
    yq, yd = rng.integers(0, 4, size=(10, 1)), rng.integers(0, 4, size=(30, 1))
    yq, yd = np.concatenate([yq // 2, yq], 1), np.concatenate([yd // 2, yd], 1)
    q_embs = {dim: _unit(rng.normal(size=(10, dim))) for dim in (2, 8)}
    d_embs = {dim: _unit(rng.normal(size=(30, dim))) for dim in (2, 8)}
    out = retrieval_metrics(q_embs, d_embs, yq, yd, ["l0", "l1"])
    levels, dims = ("l0", "l1"), (2, 8)
    expected = {f"recall@{k}/{lvl}/{dim}" for k in (1, 5, 10, 20) for lvl in levels for dim in dims}
    expected |= {f"mrr/{lvl}/{dim}" for lvl in levels for dim in dims}
    expected |= {"ndcg@10/2", "ndcg@10/8"}
    assert set(out) == expected
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out.values())
    assert out["recall@20/l0/2"] >= out["recall@1/l0/2"]


def test_sweep_shortlist_rows():
    qs, ds, qf, df = _random()
    y = np.zeros((len(qf), 2), dtype=int)
    rows = sweep_shortlist(qs, ds, qf, df, y, np.zeros((len(df), 2), dtype=int), ["l0", "l1"],
                           shortlists=(10, 100, 500), repeats=1)
    assert [r["shortlist"] for r in rows] == [10, 60]  # capped at 60 documents, repeat dropped
    assert rows[-1]["overlap@10"] == 1.0
    assert rows[0]["recall@10/l1"] == 1.0  # every document shares every label
    assert all(r["ms_per_query_funnel"] > 0 and r["speedup"] > 0 for r in rows)


def test_adaptive_extends_only_unconfident_queries():
    qs, ds, qf, df = _random()
    ranked, frac = adaptive(qs, ds, qf, df, margin=np.inf, shortlist=30)
    assert frac == 1.0
    np.testing.assert_array_equal(ranked, multistage(qs, ds, qf, df, 30))
    ranked, frac = adaptive(qs, ds, qf, df, margin=-np.inf, shortlist=30)
    assert frac == 0.0
    np.testing.assert_array_equal(ranked, rank(qs, ds, 10))
    # by hand: short sims q0 [1, .8, 0] (gap .2, extended), q1 [.707, .990, .707] (gap .283, kept)
    d_short = _unit([[1, 0], [0.8, 0.6], [0, 1]])
    q_short = _unit([[1, 0], [1, 1]])
    d_full = _unit([[0, 1], [1, 0], [0.6, 0.8]])
    q_full = _unit([[1, 0], [0, 1]])  # q0 by the full vector: d1 (1), d2 (.6), d0 (0)
    ranked, frac = adaptive(q_short, d_short, q_full, d_full, margin=0.25, k=2, shortlist=3)
    assert ranked.tolist() == [[1, 2], [1, 0]] and frac == 0.5


def test_run_retrieval_records_adaptive_search_between_prefix_only_and_full_rerank():
    from steerable.data import Hierarchy
    from steerable.experiment import SplitVectors, evaluate_retrieval
    from steerable.model import SteerableModel

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 256))
    y1 = rng.integers(0, 12, 300)
    x = (centres[y1] + 0.7 * rng.normal(size=(300, 256))).astype(np.float32)
    y = np.stack([y1 // 4, y1], axis=1)
    vecs = SplitVectors(x[:100], x[:0], x[100:], y[:100], y[:0], y[100:])
    h = Hierarchy(("l0", "l1"), (tuple("abc"), tuple(f"f{i}" for i in range(12))), (np.arange(12) // 4,))
    flat = SteerableModel.build("identity", 256, h, "synthetic", {"block_dim": 32})  # the raw vectors
    out = evaluate_retrieval(flat, vecs, ["l0", "l1"], seed=0)
    margins = (0.005, 0.01, 0.02, 0.05)
    ext = [out[f"adaptive@{m:g}/extended/100"] for m in margins]
    assert 0 < ext[0] and ext == sorted(ext) and ext[-1] < 1  # a larger margin extends more queries
    # the shortlist holds every document, so an extended query gets the exact top 10: overlap rises
    # with the margin, from above the prefix alone's
    assert out["funnel/overlap@10/100"] == 1.0
    ov = [out[f"adaptive@{m:g}/overlap@10/100"] for m in margins]
    q, d = split_queries(200, seed=0)
    short = x[100:, :64] / np.linalg.norm(x[100:, :64], axis=1, keepdims=True)
    full = x[100:] / np.linalg.norm(x[100:], axis=1, keepdims=True)
    prefix_only = overlap_at_k(rank(short[q], short[d], 10), rank(full[q], full[d], 10))
    assert prefix_only < ov[0] <= ov[-1] < 1.0 and ov == sorted(ov)
