"""steerable.search.metrics: label metrics of rankings, and the retrieval evaluation of a test set."""

import numpy as np
import pytest

from steerable.search.metrics import (
    evaluate_retrieval,
    mrr,
    ndcg_at_10,
    ndcg_at_k,
    overlap_at_k,
    recall_at_k,
    retrieval_metrics,
    split_queries,
)
from steerable.search.ranking import rank, truncate


def _unit(a):
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# 5 documents, 3 queries, labels (coarse, fine); the rankings are given, not computed.
D_LABELS = np.array([[0, 0], [0, 1], [1, 2], [1, 3], [0, 0]])
Q_LABELS = np.array([[0, 0], [1, 3], [1, 2]])
RANKED = np.array(
    [
        [1, 2, 0, 3, 4],  # q0: same coarse at rank 1 (d1), same fine at ranks 3, 5
        [2, 3, 0, 1, 4],  # q1: same coarse at rank 1 (d2), same fine at rank 2 (d3)
        [0, 1, 4, 3, 2],
    ]
)  # q2: same coarse at rank 4 (d3), same fine at rank 5 (d2)


def test_recall_is_the_hit_rate_per_level():
    r = recall_at_k(RANKED, Q_LABELS, D_LABELS, ks=(1, 2, 3, 5))
    np.testing.assert_allclose(r[1], [2 / 3, 0])  # coarse: q0, q1 hit; fine: none at rank 1
    np.testing.assert_allclose(r[2], [2 / 3, 1 / 3])  # fine: q1 (rank 2)
    np.testing.assert_allclose(r[3], [2 / 3, 2 / 3])  # fine: q0 (rank 3), q1
    np.testing.assert_allclose(r[5], [1, 1])  # every query has a match somewhere
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


def test_split_queries_is_seeded_disjoint_and_covering():
    q, d = split_queries(11, seed=3)
    q2, d2 = split_queries(11, seed=3)
    np.testing.assert_array_equal(q, q2)
    np.testing.assert_array_equal(d, d2)
    assert len(q) == 5 and len(d) == 6
    assert not set(q) & set(d)
    assert sorted(np.concatenate([q, d]).tolist()) == list(range(11))
    assert not np.array_equal(split_queries(11, seed=4)[0], q)


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


def test_test_set_retrieval_records_adaptive_search_between_prefix_only_and_full_rerank():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 256))
    y1 = rng.integers(0, 12, 200)
    x = (centres[y1] + 0.7 * rng.normal(size=(200, 256))).astype(np.float32)
    y = np.stack([y1 // 4, y1], axis=1)
    out = evaluate_retrieval([truncate(x, 64), truncate(x, 256)], [64, 256], y, ["l0", "l1"], seed=0)
    margins = (0.005, 0.01, 0.02, 0.05)
    ext = [out[f"adaptive@{m:g}/extended/100"] for m in margins]
    assert 0 < ext[0] and ext == sorted(ext) and ext[-1] < 1  # a larger margin extends more queries
    # the shortlist holds every document, so an extended query gets the exact top 10: overlap rises
    # with the margin, from above the prefix alone's
    assert out["funnel/overlap@10/100"] == 1.0
    ov = [out[f"adaptive@{m:g}/overlap@10/100"] for m in margins]
    q, d = split_queries(200, seed=0)
    short, full = truncate(x, 64), truncate(x, 256)
    prefix_only = overlap_at_k(rank(short[q], short[d], 10)[0], rank(full[q], full[d], 10)[0])
    assert prefix_only < ov[0] <= ov[-1] < 1.0 and ov == sorted(ov)
