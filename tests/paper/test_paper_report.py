"""paper/: the paper's report and reproduction page from real (tiny) sweeps; every verdict follows its
stated rule on the records, and the fresh-seed confirmation is judged apart from the main grid."""

import copy

import matplotlib.image as mpimg
import pytest

from paper.doc import write_doc
from paper.grids import CONFIRM_METHODS, CONFIRM_SEEDS, confirm_references, paper_sweep
from paper.report import write_report
from paper.tables import ablation_verdicts
from steerable.stats import paired_test

from conftest import tiny_sweep

METHODS = ("v5", "mrl", "flat", "inverted", "no_prefix")
BEYOND = ("mrl", "v5", "heal", "separated", "bottleneck", "dial@0", "dial@0.5", "dial@1")


def _split(records):
    """(main grid, confirmation grid): the extra runs on the reserved seeds are the confirmation's."""
    return ([r for r in records if r.seed not in CONFIRM_SEEDS], [r for r in records if r.seed in CONFIRM_SEEDS])


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return tiny_sweep(tmp_path_factory.mktemp("rep"), METHODS, (1, 2, 3))


@pytest.fixture(scope="module")
def beyond_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("beyond")
    confirm = [(m, s) for m in (*confirm_references(), *CONFIRM_METHODS) for s in CONFIRM_SEEDS[:2]]
    return tiny_sweep(root, BEYOND, (1, 2), extra=confirm), root / "res"


def test_the_paper_grid():
    full = paper_sweep(["clinc150", "trec", "goemotions"]).runs()
    assert len(full) == 3 * 6 * 5 + 2 * 3 * 5  # V5, MRL, Flat and the three floors; the ablations on two
    assert {r.max_train for r in full} == {10_000}
    assert len(paper_sweep(["clinc150", "trec"], quick=True).runs()) == 9 * 2


def test_ablation_criteria():
    v = ablation_verdicts(-0.06, 0.01)
    assert v["inverted"]["pass"] and v["no_prefix"]["pass"]
    v = ablation_verdicts(-0.018, 0.021)
    assert not v["inverted"]["pass"] and not v["no_prefix"]["pass"]


def test_paper_report_adds_the_ablations_and_the_complexity_figure(records, tmp_path):
    summary = write_report(records, tmp_path, ["md", "mteb"])
    for protocol in ("paper", "standard"):
        for stem in ("table1_accuracy", "table2_steerability", "table3_ablations"):
            assert (tmp_path / f"{stem}_{protocol}.csv").stat().st_size > 0
        for fig in ("fig1_prefix_curves", "fig2_complexity", "fig3_ablations"):
            assert mpimg.imread(tmp_path / f"{fig}_{protocol}.png").shape[0] > 200
        by = {(r.method, r.seed): r.metrics[protocol].steerability_score for r in records}
        expected = paired_test([by[("v5", s)] for s in (1, 2, 3)], [by[("mrl", s)] for s in (1, 2, 3)])
        got = summary["protocols"][protocol]["tests_v5_vs_mrl"]["tiny"]
        assert got["t"] == pytest.approx(expected.t, nan_ok=True)
        inv = summary["protocols"][protocol]["ablations"]["tiny"]["verdicts"]["inverted"]
        mean_inv = sum(by[("inverted", s)] for s in (1, 2, 3)) / 3
        assert inv["value"] == pytest.approx(mean_inv) and inv["pass"] == (mean_inv < -0.05)
    report = (tmp_path / "report.md").read_text()
    assert "V5 loses 2 % recall vs MRL loses 9 % at 64-d" in report
    assert "Table 3" in report and ("PASS" in report or "FAIL" in report)
    t1 = (tmp_path / "table1_accuracy_standard.csv").read_text().splitlines()[0]
    assert t1 == "data set,Flat L0,Flat L1,MRL L0,MRL L1,V5 L0,V5 L1,Inverted L0,Inverted L1,No-prefix L0,No-prefix L1"
    assert [
        line.split(",")[1] for line in (tmp_path / "table2_steerability_standard.csv").read_text().splitlines()[1:]
    ] == ["V5", "MRL", "Flat"]  # V5 and MRL beside the floors that ran


def test_reproduction_page_judges_the_search_targets_from_the_bench(records, tmp_path):
    text = write_doc(records, tmp_path / "reproduction.md", "steer reproduce --quick")
    assert "steer reproduce --quick" in text and "| tiny | paper |" in text and "Search targets" not in text
    rows = [
        {"contender": "exact-256", "recall@10": 1.0, "qps": 100.0, "latency_ms": 10.0, "memory_mb": 1.0},
        {
            "contender": "funnel-ivf",
            "shortlist": 400,
            "nprobe": 16,
            "recall@10": 0.991,
            "qps": 150.0,
            "latency_ms": 1.0,
            "memory_mb": 1.0,
        },
    ]
    bench = {"real": {"documents": 1000, "queries": 10, "mrl": rows}, "threads": 2, "machine": {"cpu_model": "x"}}
    text = write_doc(records, tmp_path / "reproduction.md", "steer reproduce --quick", bench=bench)
    section = text.split("## Search targets")[1]
    assert "1.50x (ivf, K 400, nprobe 16" in section and "10.00x" in section
    assert "- MRL: batch: funnel >= 3x exact at >= 0.99 recall **not met**" in section


def test_beyond_report_tables_figures_and_tests_come_from_the_records(beyond_records, tmp_path):
    main, confirm = _split(beyond_records[0])
    summary = write_report(main, tmp_path, confirm=confirm)
    for stem in ("table7_beyond_standard", "table8_dial_standard"):
        assert (tmp_path / f"{stem}.csv").read_text().count("\n") > 1
    for fig in ("fig5_dial_pareto_standard", "fig6_leakage"):
        assert mpimg.imread(tmp_path / f"{fig}.png").shape[0] > 200
    by = {(r.method, r.seed): r.metrics["standard"].steerability_score for r in main}
    expected = paired_test([by[("bottleneck", s)] for s in (1, 2)], [by[("heal", s)] for s in (1, 2)])
    got = summary["beyond"]["tests"]["bottleneck|heal"]["tiny"]
    assert got["t"] == pytest.approx(expected.t, nan_ok=True)
    assert "Table 7" in (tmp_path / "report.md").read_text()
    ref = [r.probe.coarse_only["l1"] for r in main if r.probe]
    assert summary["beyond"]["coarse_only_reference"]["tiny"] == pytest.approx(sum(ref) / len(ref))
    assert all(r.probe is not None and r.probe.dim == 64 for r in main if r.method != "flat")


def test_the_seed_variance_runs_are_kept_apart_and_tested_alone(beyond_records, tmp_path):
    main, confirm = _split(beyond_records[0])
    summary = write_report(main, tmp_path, confirm=confirm)
    assert confirm_references() == ("heal", "mrl", "mrl_supcon")
    assert summary["seeds"] == [1, 2] and summary["confirmation_runs"] == 10
    by = {(r.method, r.seed): r.metrics["standard"].steerability_score for r in confirm}
    seeds = CONFIRM_SEEDS[:2]
    for m in CONFIRM_METHODS:
        expected = paired_test([by[(m, s)] for s in seeds], [by[("heal", s)] for s in seeds])
        got = summary["beyond"]["confirmation_tests"][m]["tiny"]
        assert got["seeds"] == sorted(seeds) and got["t"] == pytest.approx(expected.t, nan_ok=True)
    table = (tmp_path / "table7b_confirmation_standard.csv").read_text()
    assert table.count("\n") == 1 + len(CONFIRM_METHODS)  # a row per method
    # the bottleneck's prefix lies in the span of its 3 coarse prototypes; the adversarial ones are free
    rank = {(r.method, r.seed): r.probe.rank for r in main + confirm if r.method != "flat" and r.probe}
    assert table.count(" of 26") == 2 * len(CONFIRM_METHODS)  # 27 test texts
    assert all(rank[("bottleneck", s)] <= 3 for s in (1, 2))
    assert all(rank[(m, s)] > 3 for m in CONFIRM_METHODS for s in seeds)


def test_dial_settings_share_one_trained_model_per_seed(beyond_records):
    records, store = beyond_records
    # one per seed, not per setting
    assert len(list((store / "models").glob("*/config.json"))) == 2
    hist = {(r.method, r.seed): r.history for r in records if r.method.startswith("dial@")}
    for s in (1, 2):
        assert hist[("dial@0", s)] == hist[("dial@1", s)]
    s0 = {r.seed: r.metrics["standard"] for r in records if r.method == "dial@0"}
    s1 = {r.seed: r.metrics["standard"] for r in records if r.method == "dial@1"}
    assert s0 != s1  # same model, different encoding


def _relabelled(r, dataset: str):
    r = copy.deepcopy(r)
    r.dataset, r.run_id = dataset, f"{dataset}/{r.run_id}"
    return r


def test_the_page_judges_every_claim_of_the_claims_file_with_its_history(records, tmp_path):
    """The tiny runs as CLINC: every claim gets a row per protocol; the ablation verdict follows its rule
    on the records; earlier verdicts stand beside the new ones; a claim with no runs says so."""
    clinc = [_relabelled(r, "clinc150") for r in records]
    text = write_doc(clinc, tmp_path / "reproduction.md", "steer reproduce")
    assert "Fixed in `paper/claims.json` (commit " in text and "## The claims" in text
    from steerable.stats import holm, one_sided

    for protocol in ("paper", "standard"):
        values = [r.metrics[protocol].steerability_score for r in clinc if r.method == "inverted"]
        inv = sum(values) / 3
        p_holds, p_partly = holm([one_sided([-v for v in values], 0.05).p, one_sided([-v for v in values], 0.0).p])
        expected = "holds" if p_holds < 0.05 else "partly" if p_partly < 0.05 else "does not hold"
        line = next(
            row
            for row in text.splitlines()
            if row.startswith("| clinc150: Inverted flips the sign") and f"| {protocol} |" in row
        )
        assert f"**{expected}**" in line and f"{inv:+.3f}" in line
    accuracy = next(
        row
        for row in text.splitlines()
        if row.startswith("| V5 matches MRL's classification accuracy") and "| standard |" in row
    )
    assert "until 2026-11-29: holds unless V5 is significantly" in accuracy and "absence of evidence" in accuracy
    trec = next(row for row in text.splitlines() if row.startswith("| trec: Inverted flips the sign"))
    assert "**not run**" in trec  # no TREC runs: that data set reads "not run"
    open_set = next(row for row in text.splitlines() if row.startswith("| A method with a continuous 64-d prefix"))
    assert "**not run**" in open_set


def test_the_report_and_page_show_two_backbones_side_by_side_when_given_their_runs(records, tmp_path):
    """The two-backbone grid's runs (``--part backbones`` into the same store) join the main report and
    the reproduction page; runs on one backbone add nothing."""
    from test_backbones import _on
    from test_verdicts import runs

    one = runs("trec", "v5", {"ff": 0.8})
    two = _on("org/small", one) + _on("org/large", runs("trec", "v5", {"ff": 0.85}))
    for backbones, shown in ((one, False), (two, True)):
        write_report(records, tmp_path / "out", backbones=backbones)
        page = write_doc(records, tmp_path / "page.md", "steer reproduce", backbones=backbones)
        for text in ((tmp_path / "out" / "report.md").read_text(), page):
            assert ("## Two backbones: large and small" in text) is shown
            assert (
                "| trec | V5 | 90.0 | 85.0 | +0.000 | 50.0 | 5 | 90.0 | 80.0 | +0.000 | 50.0 | 5 |" in text
            ) is shown
            assert ("### The claims on each backbone" in text) is shown
