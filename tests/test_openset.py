"""steerable.openset: classes held out of training, and what the embedding does with them."""

import numpy as np
import pytest

from steerable.data import DataError, HierarchicalDataset, Hierarchy, LabelledTexts
from steerable.openset import HeldOut, Unseen, hold_out, open_set_metrics, open_set_pool
from steerable.search.ranking import truncate


def _dataset(k0=5, branching=4, per_fine=20, test_per_fine=10) -> HierarchicalDataset:
    fine = np.arange(k0 * branching)
    h = Hierarchy(("l0", "l1"), (tuple(f"c{i}" for i in range(k0)), tuple(f"f{i}" for i in fine)), (fine // branching,))

    def split(n):
        y1 = np.repeat(fine, n)
        return LabelledTexts([f"t{i}" for i in range(len(y1))], np.stack([y1 // branching, y1], 1))

    return HierarchicalDataset("toy", h, split(per_fine), split(4), split(test_per_fine))


@pytest.mark.parametrize(
    "spec,message",
    [
        ("fine:1.5", "bad unseen classes 'fine:1.5': write fine:F with 0 < F < 1"),
        ("coarse:0", "bad unseen classes 'coarse:0'"),
        ("coarse:1.5", "bad unseen classes 'coarse:1.5'"),
        ("leaf:2", "bad unseen classes 'leaf:2'"),
        ("fine", "bad unseen classes 'fine'"),
    ],
)
def test_a_bad_spec_is_one_line_naming_it(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as e:
        Unseen.parse(spec)
    assert "\n" not in str(e.value)


def _draw(unseen: Unseen, ds: HierarchicalDataset, seed: int):
    return unseen.draw(ds.hierarchy, ds.test.labels, seed, ds.name)


def test_fine_holds_out_a_fraction_under_each_coarse_class_and_keeps_one():
    ds = _dataset()
    fine = Unseen("fine", 0.5, min_queries=1)
    held = _draw(fine, ds, seed=1).indices
    parents = ds.hierarchy.fine_to_level(0)[held]
    assert np.bincount(parents, minlength=5).tolist() == [2] * 5  # half of each coarse class's 4
    assert (held == _draw(fine, ds, seed=1).indices).all()
    assert not (held == _draw(fine, ds, seed=2).indices).all()
    assert len(_draw(Unseen("fine", 0.99, min_queries=1), ds, 0).fine) == 15  # one child of each stays seen


def test_fine_draws_reach_the_query_minimum_too():
    """fine:F must hold min_queries texts to query, as coarse:K must: F grows by a tenth until a draw does."""
    ds = _dataset()  # 10 test texts per fine class, 4 fine classes under each of 5 coarse classes
    held = _draw(Unseen("fine", 0.25, min_queries=50), ds, seed=0)  # one per coarse class: 50 texts
    assert held.drawn == "fine:0.25" and held.queries == 50 and len(held.fine) == 5
    held = _draw(Unseen("fine", 0.25, min_queries=100), ds, seed=0)  # needs two per coarse class
    assert held.requested == "fine:0.25" and held.drawn == "fine:0.4" and held.queries == 100
    assert "fine:0.4 (fine:0.25 held too few texts)" in held.describe()


def test_coarse_draws_whole_classes_with_enough_test_texts():
    ds = _dataset()  # 40 test texts per coarse class
    held = _draw(Unseen("coarse", 1, min_queries=30), ds, seed=0)
    assert len(held.fine) == 4 and len(set(ds.hierarchy.fine_to_level(0)[held.indices])) == 1
    assert held.drawn == held.requested == "coarse:1" and held.queries == 40
    held = _draw(Unseen("coarse", 1, min_queries=70), ds, seed=0)  # one class is too few: K grows to 2
    assert len(set(ds.hierarchy.fine_to_level(0)[held.indices])) == 2
    assert (held.requested, held.drawn, held.queries) == ("coarse:1", "coarse:2", 80)
    with pytest.raises(
        DataError, match=r"toy: no draw of coarse:1 or more .* holds 500 texts .*most any draw held: 120"
    ):
        _draw(Unseen("coarse", 1, min_queries=500), ds, seed=0)


def test_coarse_k_beyond_what_the_data_can_spare_is_refused_with_the_largest_k():
    with pytest.raises(DataError, match="toy: coarse:99 .* it has 5, so at most coarse:3 keeps two seen"):
        _draw(Unseen("coarse", 99), _dataset(), seed=0)


def test_the_draw_names_the_held_out_classes_at_every_level():
    ds = _dataset()
    held = _draw(Unseen("coarse", 1, min_queries=30), ds, seed=0)
    (coarse,) = held.classes["l0"]
    assert held.classes["l1"] == [ds.hierarchy.classes[1][f] for f in held.fine]
    assert coarse == ds.hierarchy.classes[0][ds.hierarchy.fine_to_level(0)[held.fine[0]]]
    fine = _draw(Unseen("fine", 0.5, min_queries=1), ds, seed=0)
    assert fine.classes["l0"] == [] and len(fine.classes["l1"]) == 10  # no coarse class is held out whole


def test_the_query_minimum_counts_the_capped_test_split():
    """The queries are the held-out texts of the test split after its cap, so the minimum is checked
    there: a class with plenty of texts in the whole split but few after the cap does not pass."""
    ds = _dataset(test_per_fine=10)  # 40 test texts per coarse class, 200 in all
    unseen = Unseen("coarse", 1, min_queries=30)
    _, whole = hold_out(ds, unseen, seed=0)
    assert whole.drawn == "coarse:1" and whole.queries == 40
    _, capped = hold_out(ds, unseen, seed=0, max_test=100)  # about 20 per coarse class after the cap
    assert capped.drawn == "coarse:2"
    assert capped.queries == np.isin(ds.test.cap(100, 0).labels[:, 1], capped.indices).sum() >= 30


def test_a_recorded_draw_is_read_back_by_name():
    ds = _dataset()
    _, held = hold_out(ds, Unseen("coarse", 1, min_queries=30), seed=3)
    again = HeldOut.from_names(ds.hierarchy, held.to_dict(), ds.test.labels)
    assert again == held
    seen, same = hold_out(ds, again, seed=99)  # a recorded draw is used as it is, whatever the seed
    assert same is again and not np.isin(seen.train.labels[:, 1], held.indices).any()
    with pytest.raises(DataError, match="the run held out classes this data does not have: nope"):
        HeldOut.from_names(ds.hierarchy, held.to_dict() | {"classes": {"l0": [], "l1": ["nope"]}}, ds.test.labels)


def test_hold_out_removes_the_classes_from_training_and_validation_only():
    ds = _dataset()
    seen, held = hold_out(ds, Unseen("coarse", 1, min_queries=30), seed=0)
    for part in (seen.train, seen.validation):
        assert not np.isin(part.labels[:, 1], held.indices).any()
    assert len(seen.test) == len(ds.test) and seen.hierarchy is ds.hierarchy
    assert len(seen.train) == len(ds.train) - 4 * 20
    assert "held out of training and validation (coarse:1, seed 0): 4 finest classes, 40 texts" in seen.notes[-1]


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
    good = [truncate(x, 16), truncate(x, 32)]
    noise = [truncate(rng.normal(size=(600, 32)), 16), truncate(rng.normal(size=(600, 32)), 32)]
    h = Hierarchy(
        ("l0", "l1"), (tuple(f"c{i}" for i in range(5)), tuple(f"f{i}" for i in range(20))), (np.arange(20) // 4,)
    )
    held = Unseen("coarse", 2).draw(h, y, seed=0)
    mask = np.isin(y[:, 1], held.indices)
    a = open_set_metrics(good, [16, 32], y, mask, ["l0", "l1"], held, seed=0)
    b = open_set_metrics(noise, [16, 32], y, mask, ["l0", "l1"], held, seed=0)
    assert a["queries"] == 240 and a["pool"] == 600 and a["held_out"] == {"l0": 2, "l1": 8}
    assert a["accuracy"]["l0"]["16"] > 0.95 and b["accuracy"]["l0"]["16"] < 0.6
    assert a["clustering"]["l0@16"]["ari"] > 0.9 > 0.1 > b["clustering"]["l0@16"]["ari"]
    assert a["clustering"]["l1@32"]["clusters"] == 8
    assert set(a) >= {"short_coarse", "full_fine", "steerability_score"}
    assert a["unseen"] == a["drawn"] == "coarse:2" and len(a["held_out_classes"]["l0"]) == 2
