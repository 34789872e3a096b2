"""paper/backbones.py: the two-backbone grid, its side-by-side table, and each claim judged on each
backbone's runs alone."""

from dataclasses import replace

import pytest

from paper.backbones import BACKBONE_METHODS, SECOND_BACKBONE, backbone_sweep, write_backbones
from steerable.backbone import DEFAULT_BACKBONE

from test_verdicts import _shift, runs


def test_the_grid_is_the_selection_data_sets_on_both_backbones():
    spec = backbone_sweep(["clinc150", "trec", "goemotions"])  # goemotions: a confirmation data set
    grid = spec.runs()
    assert {r.dataset for r in grid} == {"clinc150", "trec"} and {r.seed for r in grid} == {42, 123, 456}
    assert {r.backbone for r in grid} == {DEFAULT_BACKBONE, SECOND_BACKBONE}
    assert len(grid) == 2 * len(BACKBONE_METHODS) * 3 * 2 and {r.max_train for r in grid} == {10_000}
    assert {r.backbone for r in backbone_sweep(["trec"], settings={"backbone": "b1"}).runs()} == {"b1", SECOND_BACKBONE}


def _on(backbone, records):
    return [replace(r, backbone=backbone, run_id=f"{backbone}/{r.run_id}") for r in records]


def test_a_claim_that_holds_on_one_backbone_only_is_marked(tmp_path):
    """V5 clearly more steerable than MRL on backbone a, not on b: the verdicts differ, and say so."""
    a = runs("clinc150", "mrl", {"s": _shift(0.0, 0)}) + runs("clinc150", "v5", {"s": _shift(0.2, 0)})
    b = runs("clinc150", "mrl", {"s": _shift(0.0, 0)}) + runs("clinc150", "v5", {"s": _shift(-0.1, 0)})
    text = write_backbones(_on("org/a", a) + _on("org/b", b), tmp_path).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| v5_more_steerable | standard |"))
    assert row == "| v5_more_steerable | standard | holds | does not hold | **no** |"
    assert "| clinc150 | V5 | 90.0 | 80.0 | +0.200 | 50.0 | 5 | 90.0 | 80.0 | -0.100 | 50.0 | 5 |" in text
    assert "ShortCoarse (a)" in text  # a backbone is named by its last part


def test_each_protocol_gets_its_own_side_by_side_table(tmp_path):
    """Runs measured under both protocols: one table per protocol, each with that protocol's S."""

    def both(method, s_standard, s_paper):
        standard = runs("trec", method, {"s": s_standard})
        paper = runs("trec", method, {"s": s_paper}, protocol="paper")
        return [replace(r, metrics=r.metrics | p.metrics) for r, p in zip(standard, paper)]

    a, b = both("v5", 0.1, 0.3), both("v5", 0.2, 0.4)
    text = write_backbones(_on("org/a", a) + _on("org/b", b), tmp_path).read_text()
    standard, paper = text.split("## Protocol `standard`")[1].split("## Protocol `paper`")
    assert "| trec | V5 | 90.0 | 80.0 | +0.100 | 50.0 | 5 | 90.0 | 80.0 | +0.200 | 50.0 | 5 |" in standard
    assert "| trec | V5 | 90.0 | 80.0 | +0.300 | 50.0 | 5 | 90.0 | 80.0 | +0.400 | 50.0 | 5 |" in paper.split("##")[0]
    one = write_backbones(
        _on("org/a", runs("trec", "v5", {})) + _on("org/b", runs("trec", "v5", {})), tmp_path / "one"
    ).read_text()
    assert "Protocol `standard`" in one and "Protocol `paper`" not in one  # a protocol not measured: no table


def test_one_backbone_is_refused():
    with pytest.raises(ValueError, match="needs runs on two backbones; the store has m"):
        write_backbones(runs("trec", "v5", {}), "unused")


def test_report_only_reports_what_the_store_holds_and_runs_nothing(tmp_path, capsys):
    """Half the grid recorded (the default backbone's): --report-only reports it and runs nothing."""
    from paper.cli import main
    from steerable.runs import ResultsStore

    from test_verdicts import record

    store = ResultsStore(tmp_path / "store")
    grid = backbone_sweep(["trec"]).runs()
    for spec in grid:
        if spec.backbone == DEFAULT_BACKBONE:
            store.add(replace(record("trec", spec.method, spec.seed), run_id=spec.run_id, backbone=spec.backbone))
    store.add(replace(record("trec", "v5", 42), run_id="elsewhere", backbone="other"))  # not this grid's
    args = [
        "--part",
        "backbones",
        "--datasets",
        "trec",
        "--results",
        str(tmp_path / "store"),
        "--out",
        str(tmp_path / "out"),
        "--report-only",
    ]
    assert main(args) == 2  # one backbone recorded: nothing to compare, and nothing was run
    assert "needs runs on two backbones" in capsys.readouterr().err
    for spec in [s for s in grid if s.backbone == SECOND_BACKBONE][:2]:  # Flat, two seeds
        store.add(replace(record("trec", spec.method, spec.seed), run_id=spec.run_id, backbone=spec.backbone))
    assert main(args) == 0
    assert f"reproduce: {len(grid) // 2 + 2} of {len(grid)} runs compared" in capsys.readouterr().out
    text = (tmp_path / "out" / "backbones.md").read_text()
    assert "| trec | Flat | 90.0 | 80.0 | +0.000 | 50.0 | 3 | 90.0 | 80.0 | +0.000 | 50.0 | 2 |" in text
    assert "| trec | V5 | 90.0 | 80.0 | +0.000 | 50.0 | 3 | - | - | - | - | 0 |" in text


def test_methods_narrow_a_grid_to_their_runs():
    from paper.cli import only_methods
    from paper.grids import open_set_sweep

    grid = open_set_sweep(["trec"])
    kept = only_methods(grid, ["v5", "adversarial@1"])  # adversarial's default setting, spelled out
    assert {r.method for r in kept} == {"v5", "adversarial"} and {r.unseen for r in kept} == {"coarse:1", "fine:0.2"}
    assert len(kept) == 2 * 2 * 5 and kept == [r for r in grid if r in kept]
    assert only_methods(grid, []) == grid
