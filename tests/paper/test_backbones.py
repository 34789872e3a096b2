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


def test_one_backbone_is_refused():
    with pytest.raises(ValueError, match="needs runs on two backbones; the store has m"):
        write_backbones(runs("trec", "v5", {}), "unused")
