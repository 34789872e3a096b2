"""steerable.openset: classes held out of training, and what the embedding does with them."""

import numpy as np
import pytest

from steerable.data import DataError, HierarchicalDataset, Hierarchy, LabelledTexts
from steerable.openset import Unseen, hold_out, open_set_metrics, open_set_pool
from steerable.search.ranking import truncate


def _dataset(k0=5, branching=4, per_fine=20, test_per_fine=10) -> HierarchicalDataset:
    fine = np.arange(k0 * branching)
    h = Hierarchy(("l0", "l1"), (tuple(f"c{i}" for i in range(k0)), tuple(f"f{i}" for i in fine)),
                  (fine // branching,))

    def split(n):
        y1 = np.repeat(fine, n)
        return LabelledTexts([f"t{i}" for i in range(len(y1))], np.stack([y1 // branching, y1], 1))
    return HierarchicalDataset("toy", h, split(per_fine), split(4), split(test_per_fine))


@pytest.mark.parametrize("spec,message", [
    ("fine:1.5", "bad unseen classes 'fine:1.5': write fine:F with 0 < F < 1"),
    ("coarse:0", "bad unseen classes 'coarse:0'"), ("coarse:1.5", "bad unseen classes 'coarse:1.5'"),
    ("leaf:2", "bad unseen classes 'leaf:2'"), ("fine", "bad unseen classes 'fine'")])
def test_a_bad_spec_is_one_line_naming_it(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as e:
        Unseen.parse(spec)
    assert "\n" not in str(e.value)


def test_fine_holds_out_a_fraction_under_each_coarse_class_and_keeps_one():
    ds = _dataset()
    held = Unseen.parse("fine:0.5").draw(ds, seed=1)
    parents = ds.hierarchy.fine_to_level(0)[held]
    assert np.bincount(parents, minlength=5).tolist() == [2] * 5  # half of each coarse class's 4
    assert (held == Unseen.parse("fine:0.5").draw(ds, seed=1)).all()
    assert not (held == Unseen.parse("fine:0.5").draw(ds, seed=2)).all()
    assert len(Unseen.parse("fine:0.99").draw(ds, 0)) == 15  # at least one child of each stays seen


def test_coarse_draws_whole_classes_with_enough_test_texts():
    ds = _dataset()  # 40 test texts per coarse class
    held = Unseen("coarse", 1, min_queries=30).draw(ds, seed=0)
    assert len(held) == 4 and len(set(ds.hierarchy.fine_to_level(0)[held])) == 1
    held = Unseen("coarse", 1, min_queries=70).draw(ds, seed=0)  # one class is too few: K grows to 2
    assert len(set(ds.hierarchy.fine_to_level(0)[held])) == 2
    with pytest.raises(DataError, match="no draw of coarse classes that keeps two seen has 500 test texts"):
        Unseen("coarse", 1, min_queries=500).draw(ds, seed=0)


def test_hold_out_removes_the_classes_from_training_and_validation_only():
    ds = _dataset()
    seen, held = hold_out(ds, Unseen("coarse", 1, min_queries=30), seed=0)
    for part in (seen.train, seen.validation):
        assert not np.isin(part.labels[:, 1], held).any()
    assert len(seen.test) == len(ds.test) and seen.hierarchy is ds.hierarchy
    assert len(seen.train) == len(ds.train) - 4 * 20
    assert "held out of training and validation (coarse:1, seed 0)" in seen.notes[-1]


def test_the_pool_holds_every_held_out_text_and_a_seeded_draw_of_the_rest():
    mask = np.zeros(100, bool)
    mask[[3, 50, 51]] = True
    pool, queries = open_set_pool(mask, seed=0, size=10)
    assert len(pool) == 10 and set([3, 50, 51]) <= set(pool) and (pool[queries] == [3, 50, 51]).all()
    assert (open_set_pool(mask, 0, 10)[0] == pool).all() and not (open_set_pool(mask, 1, 10)[0] == pool).all()


def test_open_set_metrics_reward_a_view_that_groups_unseen_classes():
    """Queries of two held-out coarse classes against a pool of all: a view that keeps the coarse
    structure places them with their own class; a random view does not."""
    rng = np.random.default_rng(0)
    coarse, within = rng.normal(size=(5, 16)), rng.normal(size=(20, 16))
    y1 = np.repeat(np.arange(20), 30)
    y = np.stack([y1 // 4, y1], 1)
    x = np.concatenate([coarse[y[:, 0]], within[y1]], 1) + 0.3 * rng.normal(size=(600, 32))
    mask = np.isin(y[:, 0], [1, 3])
    good = [truncate(x, 16), truncate(x, 32)]
    noise = [truncate(rng.normal(size=(600, 32)), 16), truncate(rng.normal(size=(600, 32)), 32)]
    a = open_set_metrics(good, [16, 32], y, mask, ["l0", "l1"], Unseen.parse("coarse:2"), seed=0)
    b = open_set_metrics(noise, [16, 32], y, mask, ["l0", "l1"], Unseen.parse("coarse:2"), seed=0)
    assert a["queries"] == 240 and a["pool"] == 600 and a["held_out"] == {"l0": 2, "l1": 8}
    assert a["accuracy"]["l0"]["16"] > 0.95 and b["accuracy"]["l0"]["16"] < 0.6
    assert a["clustering"]["l0@16"]["ari"] > 0.9 > 0.1 > b["clustering"]["l0@16"]["ari"]
    assert a["clustering"]["l1@32"]["clusters"] == 8
    assert set(a) >= {"short_coarse", "full_fine", "steerability_score"}
