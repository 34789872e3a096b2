"""paper/select.py: a selection reads the validation split of the selection data sets only, and chooses
by its stated objective."""

import pytest

from paper.select import Selection, choose, describe, selection_runs
from steerable.runs import RunRecord

SEL = Selection("a strength", ("adversarial@0.1", "adversarial@0.3", "adversarial@1"), "mrl_supcon",
                seeds=(1, 2), datasets=("trec", "clinc150"))


def _record(ds, method, seed, s, ff, split="validation"):
    block = {"steerability_score": s, "full_fine": ff}
    return RunRecord(f"{ds}{method}{seed}", ds, method, seed, "m", "mlp", {"split": split}, {}, ["l0", "l1"],
                     {"standard": block})


def _records(strong_ff):
    out = []
    for ds in SEL.datasets:
        for seed in SEL.seeds:
            out += [_record(ds, "mrl_supcon", seed, 0.0, 0.90), _record(ds, "adversarial@0.1", seed, 0.2, 0.90),
                    _record(ds, "adversarial@0.3", seed, 0.4, 0.899),
                    _record(ds, "adversarial", seed, 0.5, strong_ff)]  # a record names the default (1) bare
    return out


def test_the_highest_s_within_the_accuracy_bound_is_chosen():
    out = choose(SEL, _records(strong_ff=0.88))  # the strongest costs 2 pt of FullFine: out of bounds
    assert out["eligible"] == ["adversarial@0.1", "adversarial@0.3"] and out["chosen"] == "adversarial@0.3"
    assert out["split"] == "validation" and out["mean_S"]["adversarial@1"] == pytest.approx(0.5)
    assert choose(SEL, _records(strong_ff=0.897))["chosen"] == "adversarial@1"
    assert "adversarial@1: mean S +0.500 [out of bounds]" in describe(out | {"name": "x"})


def test_test_split_runs_do_not_count_and_missing_runs_are_refused():
    records = [r if r.method != "adversarial@0.3" else _record(r.dataset, r.method, r.seed, 0.4, 0.9, split="test")
               for r in _records(0.88)]
    with pytest.raises(ValueError, match="selection runs missing for adversarial@0.3"):
        choose(SEL, records)


def test_every_selection_run_is_measured_on_validation_and_never_on_a_confirmation_data_set():
    runs = selection_runs(SEL)
    assert {r.split for r in runs} == {"validation"} and len(runs) == 2 * 4 * 2
    with pytest.raises(ValueError, match="may not read the confirmation data sets"):
        selection_runs(Selection("x", ("adversarial",), "mrl", datasets=("trec", "goemotions")))
