"""steerable.schedule: terms and schedules are validated data that round-trip as JSON."""

import pytest

from steerable.methods import preset
from steerable.schedule import Schedule, Term


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
        Schedule("mixed", (Term((0.5, 0.5), ((1, 0), (0, 1))), Term((1 / 3,) * 3, ((1, 0),) * 3)))


def test_bad_terms_are_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        Term((1.0, 0.0), ((1, 0), (1, 0)), loss="focal")
    with pytest.raises(ValueError, match="start"):
        Term((0.5, 0.5), ((1, 0), (1, 0)), start=1)
    with pytest.raises(ValueError, match="grad"):
        Term((0.0, 1.0), ((1, 0), (1, 0)), grad=(0.5,))
    with pytest.raises(ValueError, match="grad"):
        Term((0.0, 1.0), ((1, 0), (1, 0)), grad=(-1.5, 1))
    with pytest.raises(ValueError, match="unknown fields"):
        Schedule.from_dict({"terms": [{"probs": [1.0], "levels": [[1]], "detach": True}]})


def test_the_distillation_term_round_trips_and_needs_no_labels():
    s = preset("mrl_distill")
    assert Schedule.from_dict(s.to_dict()) == s
    term = s.terms[-1]
    assert term.loss == "distill" and term.probs[0] == 1.0 and not any(w for r in term.levels for w in r)
    with pytest.raises(ValueError, match="unknown loss"):
        Term((1.0,), ((0.0,),), loss="distil")


def test_a_distill_terms_teacher_round_trips_and_the_default_stays_out_of_configs():
    s = preset("anchored")
    assert s.terms[-1].teacher == "backbone" and Schedule.from_dict(s.to_dict()) == s
    assert "teacher" not in preset("mrl_distill").to_dict()["terms"][-1]  # configs as they were
    with pytest.raises(ValueError, match="unknown teacher 'input'"):
        Term((1.0,), ((0.0,),), loss="distill", teacher="input")
    with pytest.raises(ValueError, match="a teacher is for a distill term"):
        Term((1.0,), ((1.0,),), loss="supcon", teacher="backbone")


def test_a_sign_aware_distill_term_round_trips_and_plain_configs_stay_as_they_were():
    from steerable.methods.matryoshka import prefix_distillation

    term = prefix_distillation(2, 4, sign_slope=3.0)
    s = Schedule("signs", (term,))
    assert s.to_dict()["terms"][0]["sign_slope"] == 3.0 and Schedule.from_dict(s.to_dict()) == s
    assert "sign_slope" not in preset("mrl_distill").to_dict()["terms"][-1]
    with pytest.raises(ValueError, match="sign_slope is a positive slope of a distill term"):
        Term((1.0,), ((1.0,),), loss="supcon", sign_slope=1.0)
    with pytest.raises(ValueError, match="sign_slope is a positive slope"):
        Term((1.0,), ((0.0,),), loss="distill", sign_slope=0.0)
