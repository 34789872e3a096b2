"""steerable.metrics: k-NN, the protocols, the steerability metrics and the probes, on inputs small
enough to check by hand."""

import numpy as np
import pytest

from steerable.metrics import (
    METRIC_NAMES,
    accuracy_table,
    coarse_only_accuracy,
    effective_rank,
    knn_accuracy,
    knn_predict,
    linear_probe,
    numerical_rank,
    paper_protocol,
    probe_prefix,
    standard_protocol,
    steerability,
    vote,
)


def test_vote_is_majority_with_nearest_breaking_ties():
    assert vote(np.array([[2, 1, 1, 2, 0]]), 3).tolist() == [2]  # 2 vs 2 votes: nearest wins
    assert vote(np.array([[0, 1, 1, 1, 0]]), 3).tolist() == [1]


def _unit(a):
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_knn_against_a_reference_set():
    ref = _unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    y_ref = np.array([[0, 0], [0, 1], [1, 2], [1, 3]])
    q = _unit([[1, 0.05], [0.05, 1]])
    acc = knn_accuracy(q, np.array([[0, 0], [1, 3]]), ref, y_ref, k=1)
    assert acc.tolist() == [1.0, 0.5]  # coarse right; the second query's nearest fine label is 2, not 3


def test_leave_one_out_excludes_the_query_itself():
    e = _unit([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99]])
    y = np.array([[0, 0], [0, 1], [1, 2], [1, 3]])
    # with itself included, 1-NN would always be right; excluded, each finds its pair
    assert knn_accuracy(e, y, k=1).tolist() == [1.0, 0.0]


def test_paper_protocol_draws_a_seeded_sample_not_the_first_rows():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 50)[:, None].repeat(2, axis=1)  # label-sorted like CLINC
    e = [_unit(rng.normal(size=(500, 4)) + 3 * np.eye(10)[y[:, 0]][:, :4]) for _ in range(2)]
    a1 = accuracy_table(e, y, paper_protocol(n=100, seed=1))
    a2 = accuracy_table(e, y, paper_protocol(n=100, seed=1))
    a3 = accuracy_table(e, y, paper_protocol(n=100, seed=2))
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    with pytest.raises(ValueError, match="needs training-split embeddings"):
        accuracy_table(e, y, standard_protocol())


def test_steerability_metrics_by_hand():
    acc = np.array(
        [
            [0.98, 0.97, 0.96, 0.95],  # L0 at j = 1..4
            [0.60, 0.80, 0.90, 0.94],
        ]
    )  # L1
    m = steerability(acc)
    assert set(m) == set(METRIC_NAMES)
    assert m["short_coarse"] == pytest.approx(0.98)
    assert m["full_fine"] == pytest.approx(0.94)
    assert m["specialization_gap"] == pytest.approx(0.38)
    assert m["coarse_gain"] == pytest.approx(0.03)
    assert m["fine_gain"] == pytest.approx(0.34)
    assert m["steerability_score"] == pytest.approx(0.37)
    gaps = [0.38, 0.17, 0.06, 0.01]
    assert m["control_auc"] == pytest.approx(sum((a + b) / 2 for a, b in zip(gaps, gaps[1:])) / 3)


def test_coarse_only_accuracy_predicts_the_majority_child_of_the_true_coarse_class():
    y_train = np.array([[0, 0], [0, 0], [0, 1], [1, 2], [1, 3], [1, 3]])
    y_test = np.array([[0, 0], [0, 1], [1, 3], [1, 2]])
    assert coarse_only_accuracy(y_train, y_test, 1) == 0.5
    assert coarse_only_accuracy(y_train, y_test, 0) == 1.0


def test_effective_rank_counts_the_directions_that_carry_variance():
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(4000, 16))
    assert effective_rank(iso) == pytest.approx(16, rel=0.05)
    # 4 tight classes in 16 dimensions: full numerical rank, but about 3 directions of variance
    centres = 10 * rng.normal(size=(4, 16))
    tight = centres[rng.integers(0, 4, 4000)] + 0.1 * rng.normal(size=(4000, 16))
    assert numerical_rank(tight) == 16 and effective_rank(tight) < 4
    assert effective_rank(np.ones((5, 3))) == 0.0


def test_knn_votes_on_every_neighbour_tied_with_the_kth_as_a_group():
    # three identical reference rows (a duplicated text, or a one-hot prefix) with fine labels 1, 0, 0;
    # whichever row order, the tied group votes: 2/3 for label 0
    ref = _unit([[1, 0], [1, 0], [1, 0], [0, 1]])
    y_ref = np.array([[0, 1], [0, 0], [0, 0], [1, 2]])
    q = _unit([[1, 0.01]])
    assert knn_accuracy(q, np.array([[0, 0]]), ref, y_ref, k=1).tolist() == [1.0, 1.0]
    assert knn_accuracy(q, np.array([[0, 0]]), ref[::-1].copy(), y_ref[::-1].copy(), k=1).tolist() == [1.0, 1.0]
    # k = 2 with one strictly nearer row (label 2) and the tied group sharing the second vote
    ref2 = _unit([[1, 0.001], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    y2 = np.array([[0, 2], [0, 1], [0, 0], [0, 0]])
    pred = knn_predict(_unit([[1, 0]]), ref2, y2, k=2)
    assert pred.tolist() == [[0, 2]]  # 1 (+ the nearest's tie-breaker) for label 2 against 2/3 for label 0
    # leave-one-out: a row is never its own tied neighbour
    e = _unit([[1, 0], [1, 0], [1, 0], [0, 1], [0.1, 1]])
    y = np.array([[0, 0], [0, 1], [0, 1], [1, 2], [1, 2]])
    # row 0 sees rows 1, 2 (label 1: wrong); rows 1 and 2 each see labels 0 and 1, an even split that goes to
    # the lower class (0: wrong); rows 3 and 4 see each other (right)
    assert knn_accuracy(e, y, k=1).tolist() == [1.0, 0.4]


def test_probe_reads_the_coarse_label_off_a_coarse_prefix():
    rng = np.random.default_rng(0)
    y = np.stack([np.repeat([0, 1], 100), np.tile([0, 1, 2, 3], 50)], axis=1)
    prefix = _unit(np.eye(2)[y[:, 0]] + 0.1 * rng.normal(size=(200, 2)))  # knows the coarse label only
    probe = probe_prefix(prefix[::2], y[::2], prefix[1::2], y[1::2], ["l0", "l1"], seed=0)
    assert probe["dim"] == 2 and probe["rank"] == 2
    assert probe["accuracy"]["l0"] == 1.0 and probe["accuracy"]["l1"] < 0.5
    assert probe["coarse_only"]["l0"] == 1.0


def test_linear_probe_reads_a_linearly_coded_label_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 600)
    signal = np.eye(5)[y] + 0.1 * rng.normal(size=(600, 5))
    assert linear_probe(signal[:400], y[:400], signal[400:], y[400:]) > 0.95
    noise = rng.normal(size=(600, 5))
    assert linear_probe(noise[:400], y[:400], noise[400:], y[400:]) < 0.4


def test_tied_votes_do_not_depend_on_the_last_bit_of_the_ranking(monkeypatch):
    """The tie rule reads the k-th similarity off its own product: a ranking whose similarities are
    rounded one ulp differently (a product of other shapes) neither crashes it nor changes a vote."""
    import steerable.metrics as metrics

    rng = np.random.default_rng(0)
    codes = np.eye(3, 8, dtype=np.float32)
    ref = np.repeat(codes, 10, axis=0)  # ten identical rows per class: every query ties at the k-th
    labels = np.repeat(np.arange(3), 10)[:, None]
    query = codes[rng.integers(0, 3, 40)] + 0.3 * rng.random((40, 8), dtype=np.float32)
    expected = knn_predict(query, ref, labels, k=5)
    real = metrics.rank

    def rounded_otherwise(*args, **kwargs):
        idx, sims = real(*args, **kwargs)
        return idx, np.nextafter(sims, -np.inf)

    monkeypatch.setattr(metrics, "rank", rounded_otherwise)
    np.testing.assert_array_equal(knn_predict(query, ref, labels, k=5), expected)
