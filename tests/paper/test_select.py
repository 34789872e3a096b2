"""paper/select.py: a selection reads the validation split of the selection data sets only, and chooses
by its stated objective."""

import pytest

from paper.select import EpisodicSelection, Selection, choose, choose_episodic, describe, selection_runs
from steerable.runs import RunRecord

from records import metrics_block, open_set_block, probe_block

SEL = Selection(
    "a strength",
    ("adversarial@0.1", "adversarial@0.3", "adversarial@1"),
    "mrl_supcon",
    seeds=(1, 2),
    datasets=("trec", "clinc150"),
)


def _record(ds, method, seed, s, ff, split="validation"):
    block = metrics_block(steerability_score=s, full_fine=ff)
    return RunRecord(
        f"{ds}{method}{seed}", ds, method, seed, "m", "mlp", {"split": split}, {}, ["l0", "l1"], {"standard": block}
    )


def _records(strong_ff):
    out = []
    for ds in SEL.datasets:
        for seed in SEL.seeds:
            out += [
                _record(ds, "mrl_supcon", seed, 0.0, 0.90),
                _record(ds, "adversarial@0.1", seed, 0.2, 0.90),
                _record(ds, "adversarial@0.3", seed, 0.4, 0.899),
                _record(ds, "adversarial", seed, 0.5, strong_ff),
            ]  # a record names the default (1) bare
    return out


def test_the_highest_s_within_the_accuracy_bound_is_chosen():
    out = choose(SEL, _records(strong_ff=0.88))  # the strongest costs 2 pt of FullFine: out of bounds
    assert out["eligible"] == ["adversarial@0.1", "adversarial@0.3"] and out["chosen"] == "adversarial@0.3"
    assert out["split"] == "validation" and out["mean_S"]["adversarial@1"] == pytest.approx(0.5)
    assert choose(SEL, _records(strong_ff=0.897))["chosen"] == "adversarial@1"
    assert "adversarial@1: mean S +0.500 [out of bounds]" in describe(out | {"name": "x"})


def test_test_split_runs_do_not_count_and_missing_runs_are_refused():
    records = [
        r if r.method != "adversarial@0.3" else _record(r.dataset, r.method, r.seed, 0.4, 0.9, split="test")
        for r in _records(0.88)
    ]
    with pytest.raises(ValueError, match="selection runs missing for adversarial@0.3"):
        choose(SEL, records)


def test_every_selection_run_is_measured_on_validation_and_never_on_a_confirmation_data_set():
    runs = selection_runs(SEL)
    assert {r.split for r in runs} == {"validation"} and len(runs) == 2 * 4 * 2
    with pytest.raises(ValueError, match="may not read the confirmation data sets"):
        selection_runs(Selection("x", ("adversarial",), "mrl", datasets=("trec", "goemotions")))


def _episode(ds, method, seed, s, probe, reach, split="validation", unseen="coarse:2"):
    block = metrics_block(steerability_score=s)
    return RunRecord(
        f"{ds}{method}{seed}",
        ds,
        method,
        seed,
        "m",
        "mlp",
        {"split": split, "unseen": unseen},
        {},
        ["l0", "l1"],
        {"standard": block},
        probe=probe_block({"l1": probe}),
        open_set=open_set_block(accuracy={"l0": {"64": reach, "256": 0.5}}, unseen=unseen, seed=seed),
    )


EPI = EpisodicSelection(
    "settings", {"gep": ("gep@0.1", "gep@1"), "lda": ("lda@1", "lda@4")}, seeds=(1, 2), datasets=("trec", "clinc150")
)


def _episodes(gep1_probe=0.3):
    out = []
    for ds in EPI.datasets:
        for seed in EPI.seeds:
            out += [
                _episode(ds, "heal", seed, 0.1, 0.6, 0.5),
                _episode(ds, "gep@0.1", seed, 0.2, 0.3, 0.7),
                _episode(ds, "gep@1", seed, 0.2, gep1_probe, 0.8),
                _episode(ds, "lda@1", seed, 0.0, 0.9, 0.9),
                _episode(ds, "lda@4", seed, 0.05, 0.9, 0.85),
            ]
    return out


def test_an_episodic_selection_reaches_furthest_among_the_steerable_settings_of_each_group():
    out = choose_episodic(EPI, _episodes())
    assert out["chosen"] == {"gep": "gep@1", "lda": "lda@1"}  # no lda setting is steerable: the furthest reach
    assert out["eligible"] == ["gep@0.1", "gep@1"] and out["mean_episodic"]["gep@1"] == pytest.approx(0.8)
    assert choose_episodic(EPI, _episodes(gep1_probe=0.7))["chosen"]["gep"] == "gep@0.1"  # leaks more than HEAL
    text = describe(out | {"name": "x"})
    assert "gep: gep@1: mean episodic 80.0 [chosen]" in text and "lda: lda@4: mean episodic 85.0 [not steerable" in text
    closed = [r for r in _episodes() if r.method != "gep@1"] + [
        _episode(ds, "gep@1", s, 0.2, 0.3, 0.8, unseen=None) for ds in EPI.datasets for s in EPI.seeds
    ]
    with pytest.raises(ValueError, match="selection runs missing for gep@1"):  # closed-set runs do not count
        choose_episodic(EPI, closed)


def test_episodic_selection_runs_hold_coarse_classes_out_of_the_validation_split(monkeypatch):
    import paper.select as select

    monkeypatch.setattr(select, "coarse_held_out", lambda ds, data_dir=None: 2)
    runs = selection_runs(EPI)
    assert {(r.split, r.unseen) for r in runs} == {("validation", "coarse:2")}
    assert {r.seed for r in runs} == {1, 2} and len(runs) == 2 * 5 * 2
