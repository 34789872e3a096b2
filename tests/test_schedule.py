"""Schedules are data: presets say the right thing, JSON round-trips, bad ones are refused."""

import json

import pytest

from steerable.methods import METHODS, method, preset, prefix_probs
from steerable.schedule import Schedule, Term


def test_v5_trains_the_sampled_prefix_on_coarse_and_the_full_vector_on_fine():
    s = preset("v5")
    full, prefix = s.terms
    assert full.probs == (0, 0, 0, 1) and full.block_dropout and full.levels[3] == (0, 1)
    assert prefix.sample and prefix.probs == pytest.approx((0.4, 0.3, 0.2, 0.1))
    assert prefix.weight == 0.6 and all(row == (1, 0) for row in prefix.levels)
    assert s.block_keep == (0.95, 0.9, 0.8, 0.7)


def test_mrl_trains_every_prefix_on_fine_without_sampling():
    _, prefix = preset("mrl").terms
    assert not prefix.sample and all(row == (0, 1) for row in prefix.levels)


def test_inverted_swaps_the_levels_and_no_prefix_has_one_term():
    full, prefix = preset("inverted").terms
    assert full.levels[3] == (1, 0) and all(row == (0, 1) for row in prefix.levels)
    assert len(preset("no_prefix").terms) == 1
    full, prefix = preset("uhmt").terms
    assert full.levels[3] == (0.5, 0.5) and prefix.levels[0] == (0.5, 0.5)


def test_three_levels_map_prefixes_onto_levels():
    full, prefix = preset("v5", num_levels=3).terms
    assert full.levels[3] == (0, 0, 1)
    assert [row.index(1.0) for row in prefix.levels] == [0, 1, 1, 1]


NAMES = [m for m in METHODS if m != "dial"] + ["dial@0", "dial@0.5", "dial@1"]


@pytest.mark.parametrize("name", NAMES)
def test_json_round_trip(name):
    s = preset(name)
    again = Schedule.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s


def test_prefix_probs_generalise():
    assert prefix_probs(4) == pytest.approx((0.4, 0.3, 0.2, 0.1))
    assert sum(prefix_probs(6)) == pytest.approx(1.0)


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="probs must be non-negative and sum to 1"):
        Term((0.5, 0.2), ((1, 0), (0, 1)))
    with pytest.raises(ValueError, match="levels has 1 rows but probs has 2"):
        Term((0.5, 0.5), ((1, 0),))
    with pytest.raises(ValueError, match="unknown method 'matryoshka'"):
        preset("matryoshka")
    with pytest.raises(ValueError, match="unknown method 'dial'"):
        preset("dial")  # the dial needs a setting
    with pytest.raises(ValueError, match="terms disagree on blocks/levels"):
        Schedule("mixed", (Term((0.5, 0.5), ((1, 0), (0, 1))),
                           Term((1 / 3,) * 3, ((1, 0),) * 3)))


def test_flat_is_a_value_that_trains_nothing():
    flat = preset("flat")
    assert not flat.trains and flat.head == "identity" and flat.terms == ()
    assert all(preset(m).trains for m in NAMES if m != "flat")
    assert Schedule.from_dict(flat.to_dict()) == flat


def test_the_registry_names_labels_and_orders_every_method():
    assert [method(m).label for m in ("flat", "v5", "heal", "dial@0.5")] == ["Flat", "V5", "HEAL", "Dial 0.5"]
    assert method("dial=0.25").name == "dial@0.25" and preset("dial0.25").name == "dial@0.25"
    from steerable.methods import display_order, label
    assert display_order(["zzz", "dial@1", "heal", "v5", "dial@0.1", "flat"]) == [
        "flat", "v5", "heal", "dial@0.1", "dial@1", "zzz"]
    assert label("zzz") == "zzz"
