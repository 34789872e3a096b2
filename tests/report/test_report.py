"""steerable.report: the report of any results store, every number traceable to the records."""

import json

import matplotlib.image as mpimg
import pytest

from steerable.report import Results, write_report
from steerable.runs import ResultsStore, RunSpec, run_sweep
from steerable.stats import paired_test

from conftest import tiny_sweep

METHODS = ("v5", "mrl", "flat", "heal")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return tiny_sweep(tmp_path_factory.mktemp("rep"), METHODS, (1, 2, 3))


def test_report_writes_every_table_and_figure(records, tmp_path):
    write_report(records, tmp_path, ["md", "mteb"])
    for protocol in ("paper", "standard"):
        for stem in ("table1_accuracy", "table2_steerability"):
            for ext in ("md", "csv", "tex"):
                assert (tmp_path / f"{stem}_{protocol}.{ext}").stat().st_size > 0
        img = mpimg.imread(tmp_path / f"fig1_prefix_curves_{protocol}.png")
        assert img.shape[0] > 200 and img.shape[1] > 300
    for stem in ("table4_retrieval", "table5_multistage", "table5b_adaptive", "table6_efficiency"):
        assert (tmp_path / f"{stem}.csv").read_text().count("\n") > 1
    assert mpimg.imread(tmp_path / "fig4_multistage.png").shape[0] > 200
    assert "64: 256, 128: 512, 192: 768, 256: 1024" in (tmp_path / "table6_efficiency.csv").read_text()
    report = (tmp_path / "report.md").read_text()
    assert "methods Flat, MRL, V5, HEAL" in report  # registry order and labels
    assert "Protocol `paper`" in report and "Seeds 1, 2, 3" in report
    assert (tmp_path / "hierarchy.csv").read_text().splitlines()[1].startswith("tiny,2,3,9")
    header = (tmp_path / "table1_accuracy_standard.csv").read_text().splitlines()[0]
    assert header == "data set,Flat L0,Flat L1,MRL L0,MRL L1,V5 L0,V5 L1,HEAL L0,HEAL L1"


def test_every_method_is_tested_against_the_reference(records, tmp_path):
    summary = write_report(records, tmp_path, reference="mrl")
    for protocol in ("paper", "standard"):
        by = {(r.method, r.seed): r.metrics[protocol]["steerability_score"] for r in records}
        for m in ("v5", "heal", "flat"):
            expected = paired_test([by[(m, s)] for s in (1, 2, 3)], [by[("mrl", s)] for s in (1, 2, 3)])
            got = summary["protocols"][protocol]["tests"][m]["tiny"]
            assert got["t"] == pytest.approx(expected.t, nan_ok=True)
            assert got["p"] == pytest.approx(expected.p, nan_ok=True)
            assert got["p_holm"] == pytest.approx(expected.p, nan_ok=True)  # one data set: no correction
        assert "mrl" not in summary["protocols"][protocol]["tests"]
    table = (tmp_path / "table2_steerability_standard.csv").read_text()
    assert "Δ S vs MRL" in table.splitlines()[0]
    assert write_report(records, tmp_path, reference="heal")["protocols"]["standard"]["tests"].keys() == {
        "flat", "mrl", "v5"}


def test_mteb_results_have_per_seed_scores(records, tmp_path):
    write_report(records, tmp_path, ["md", "mteb"])
    files = sorted((tmp_path / "mteb").glob("*/no_revision_available/*.json"))
    models = {f.parts[-3] for f in files}
    assert "steerable-v5-prefix1" in models and "steerable-mrl-prefix4" in models
    doc = json.loads(files[0].read_text())
    (score,) = doc["scores"]["test"]
    assert [e["seed"] for e in score["scores_per_experiment"]] == [1, 2, 3]
    assert score["main_score"] == pytest.approx(
        sum(e["accuracy"] for e in score["scores_per_experiment"]) / 3)


def test_an_empty_store_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no results to report"):
        write_report([], tmp_path)


def test_results_group_the_records(records):
    res = Results(records)
    assert res.methods == ["flat", "mrl", "v5", "heal"] and res.seeds == [1, 2, 3]
    assert set(res.values("tiny", "v5", "standard", "steerability_score")) == {1, 2, 3}
    assert res.n_docs["tiny"] == 14  # 27 test texts: 13 queries, 14 documents


def test_retrieval_and_costs_are_recorded_per_run(records):
    v5 = next(r for r in records if r.method == "v5")
    keys = v5.retrieval
    assert {"recall@10/l1/64", "recall@10/l0/256", "mrr/l1/256", "ndcg@10/64", "funnel/overlap@10/10"} <= set(keys)
    assert all(0.0 <= v <= 1.0 for v in keys.values())
    # 27 test texts -> 13 queries and 14 documents: shortlists longer than that are skipped
    assert "funnel/overlap@10/20" not in keys
    assert v5.cost["head_parameters"] == 384 * 256 + 256
    assert v5.cost["train_flops_per_example"] > v5.cost["encode_flops_per_text"] > 0
    flat = next(r for r in records if r.method == "flat")
    assert flat.cost == {} and flat.history == {} and flat.metrics["standard"]["dims"] == [64, 128, 192, 384]


def test_open_set_runs_get_their_own_table_and_figure_and_stay_out_of_the_closed_set_tables(tmp_path):
    tiny_sweep(tmp_path, ("v5", "flat"), (1, 2))
    # the same runs again with classes held out, into the same store
    run_sweep([RunSpec("tiny", m, s, head="linear", epochs=2, unseen="fine:0.4") for m in ("v5", "flat")
               for s in (1, 2)], tmp_path / "res", data_dir=str(tmp_path / "data"), progress=False, log=lambda _: None)
    records = ResultsStore(tmp_path / "res").records()
    assert len(records) == 8
    summary = write_report(records, tmp_path / "out")
    assert summary["runs"] == 4  # the closed-set runs
    res = Results(records)
    assert set(res.values("tiny", "v5", "standard", "steerability_score")) == {1, 2}
    table = (tmp_path / "out" / "table9_open_set.csv").read_text().splitlines()
    assert table[0].startswith("data set,unseen,method,queries") and len(table) == 3
    assert table[1].startswith("tiny,fine:0.4,Flat,9,") and table[2].startswith("tiny,fine:0.4,V5,9,")
    assert mpimg.imread(tmp_path / "out" / "fig7_open_set.png").shape[0] > 200
    assert "## Open set" in (tmp_path / "out" / "report.md").read_text()
