"""steerable.report: the report of any results store, every number traceable to the records."""

import json
import subprocess
import sys

import matplotlib.image as mpimg
import pytest

import steerable
from steerable.report import Results, write_mteb, write_report
from steerable.report.mteb import model_name, mteb_task, task_name
from steerable.runs import ResultsStore, RunSpec, run_sweep
from steerable.stats import paired_test

from conftest import require, tiny_sweep

METHODS = ("v5", "mrl", "flat", "heal")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return tiny_sweep(tmp_path_factory.mktemp("rep"), METHODS, (1, 2, 3))


def test_report_writes_every_table_and_figure(records, tmp_path):
    write_report(records, tmp_path, ["md", "mteb"])
    for protocol in ("paper", "standard"):
        for stem in ("accuracy", "steerability"):
            for ext in ("md", "csv", "tex"):
                assert (tmp_path / f"{stem}_{protocol}.{ext}").stat().st_size > 0
        img = mpimg.imread(tmp_path / f"prefix_curves_{protocol}.png")
        assert img.shape[0] > 200 and img.shape[1] > 300
    for stem in ("retrieval", "multistage", "adaptive", "efficiency"):
        assert (tmp_path / f"{stem}.csv").read_text().count("\n") > 1
    assert mpimg.imread(tmp_path / "multistage.png").shape[0] > 200
    assert "64: 256, 128: 512, 192: 768, 256: 1024" in (tmp_path / "efficiency.csv").read_text()
    report = (tmp_path / "report.md").read_text()
    assert "methods Flat, MRL, V5, HEAL" in report  # registry order and labels
    assert "Protocol `paper`" in report and "Seeds 1, 2, 3" in report
    assert (tmp_path / "hierarchy.csv").read_text().splitlines()[1].startswith("tiny,2,3,9")
    header = (tmp_path / "accuracy_standard.csv").read_text().splitlines()[0]
    assert header == "data set,Flat L0,Flat L1,MRL L0,MRL L1,V5 L0,V5 L1,HEAL L0,HEAL L1"


def test_a_document_numbers_the_tables_and_figures_it_names(records, tmp_path):
    """Files are named by content; a numbering (as the paper's) names and titles the ones it numbers."""
    write_report(records, tmp_path, numbering={"accuracy": "Table 1", "prefix_curves.png": "Figure 1"})
    assert not (tmp_path / "accuracy_standard.csv").exists()
    assert (tmp_path / "table1_accuracy_standard.md").read_text().startswith("**Table 1: k-NN classification")
    assert (tmp_path / "steerability_standard.md").read_text().startswith("**Steerability, mean")
    report = (tmp_path / "report.md").read_text()
    assert "![Figure 1: prefix accuracy curves](fig1_prefix_curves_standard.png)" in report
    assert "![Multi-stage search](multistage.png)" in report and (tmp_path / "fig1_prefix_curves_paper.png").exists()


def test_every_method_is_tested_against_the_reference(records, tmp_path):
    summary = write_report(records, tmp_path, reference="mrl")
    for protocol in ("paper", "standard"):
        by = {(r.method, r.seed): r.metrics[protocol].steerability_score for r in records}
        for m in ("v5", "heal", "flat"):
            expected = paired_test([by[(m, s)] for s in (1, 2, 3)], [by[("mrl", s)] for s in (1, 2, 3)])
            got = summary["protocols"][protocol]["tests"][m]["tiny"]
            assert got["t"] == pytest.approx(expected.t, nan_ok=True)
            assert got["p"] == pytest.approx(expected.p, nan_ok=True)
            assert got["p_holm"] == pytest.approx(expected.p, nan_ok=True)  # one data set: no correction
        assert "mrl" not in summary["protocols"][protocol]["tests"]
    table = (tmp_path / "steerability_standard.csv").read_text()
    assert "Δ S vs MRL" in table.splitlines()[0]
    assert write_report(records, tmp_path, reference="heal")["protocols"]["standard"]["tests"].keys() == {
        "flat",
        "mrl",
        "v5",
    }


def _expected_mteb_scores(records) -> dict:
    """(mteb model, task) -> seed -> k-NN accuracy, straight from the records."""
    expected: dict = {}
    for r in records:
        for protocol, block in r.metrics.items():
            for dim in block.dims:
                for level in r.level_names:
                    key = (model_name(r.method, protocol, dim), task_name(r.dataset, level))
                    expected.setdefault(key, {})[r.seed] = block.accuracy[level][str(dim)]
    return expected


def test_mteb_results_have_per_seed_scores(records, tmp_path):
    require("mteb", "mteb")
    from mteb.results import TaskResult

    write_report(records, tmp_path, ["md", "mteb"])
    files = sorted((tmp_path / "mteb" / "results").glob("*/no_revision_available/*.json"))
    files = [f for f in files if f.name != "model_meta.json"]
    expected = _expected_mteb_scores(records)
    assert ("steerable/v5-standard-64d", "SteerableTinyL0KNN") in expected
    assert ("steerable/flat-paper-384d", "SteerableTinyL1KNN") in expected  # Flat's full vector is the backbone's
    got = {}
    for f in files:
        model = json.loads((f.parent / "model_meta.json").read_text())["name"]
        got[(model, f.stem)] = TaskResult.from_disk(f)
    assert got.keys() == expected.keys()  # 2 protocols x 16 (method, prefix) models x 2 levels
    for key, result in got.items():
        (score,) = result.scores["test"]
        per_seed = {e["seed"]: e["accuracy"] for e in score["scores_per_experiment"]}
        assert per_seed == pytest.approx(expected[key], abs=1e-6)  # to_disk rounds to 6 places
        assert list(per_seed) == [1, 2, 3]
        mean = sum(expected[key].values()) / 3
        assert result.get_score() == pytest.approx(mean, abs=1e-6)
        assert score["accuracy"] == score["main_score"]


def test_mtebs_result_cache_loads_every_model_with_what_it_measured(records, tmp_path):
    mteb = require("mteb", "mteb")

    written = write_mteb(Results(records), tmp_path)
    expected = _expected_mteb_scores(records)
    assert len(written) == len(expected) == 64
    results = mteb.ResultCache(tmp_path).load_results(include_remote=False)
    assert {(m.model_name, t.task_name) for m in results.model_results for t in m.task_results} == expected.keys()
    for model in results.model_results:
        method, protocol, dim = model.model_name.removeprefix("steerable/").rsplit("-", 2)
        assert model.model_revision == "no_revision_available"
        assert model.model_meta.embed_dim == int(dim.removesuffix("d"))
        assert model.model_meta.adapted_from == "sentence-transformers/all-MiniLM-L6-v2"
        for result in model.task_results:
            assert result.mteb_version == mteb.__version__
            (score,) = result.scores["test"]
            level = "l0" if result.task_name == "SteerableTinyL0KNN" else "l1"
            assert score["steerable"] == {
                "method": method,
                "protocol": protocol,
                "k": 5,
                "prefix_dim": model.model_meta.embed_dim,
                "dataset": "tiny",
                "level": level,
                "backbone": "sentence-transformers/all-MiniLM-L6-v2",
                "head": "linear",
                "steerable_version": steerable.__version__,
            }
            mean = sum(expected[(model.model_name, result.task_name)].values()) / 3
            assert result.get_score() == pytest.approx(mean, abs=1e-6)
    # the tasks are not in mteb's registry; mteb validates a result against the task object instead
    result = results.model_results[0].task_results[0]
    task = mteb_task("tiny", result.scores["test"][0]["steerable"]["level"])
    assert result.validate_and_filter_scores(task=task).get_score() == result.get_score()


def test_without_mteb_no_results_are_written_and_a_note_says_why(records, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mteb", None)  # import mteb raises ImportError
    notes = []
    assert write_mteb(Results(records), tmp_path / "mteb", log=notes.append) == []
    assert notes == ["mteb results not written: mteb is not installed (pip install 'steerable[mteb]')"]
    assert not (tmp_path / "mteb").exists()


def test_steerable_imports_without_importing_mteb():
    code = "import sys, steerable, steerable.report, steerable.cli; assert 'mteb' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


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
    assert flat.cost == {} and flat.history == {} and flat.metrics["standard"].dims == [64, 128, 192, 384]


def test_open_set_runs_get_their_own_table_and_figure_and_stay_out_of_the_closed_set_tables(tmp_path):
    tiny_sweep(tmp_path, ("v5", "flat"), (1, 2))
    # the same runs again with classes held out, into the same store
    run_sweep(
        [
            RunSpec("tiny", m, s, head="linear", epochs=2, unseen="fine:0.4", min_queries=5)
            for m in ("v5", "flat")
            for s in (1, 2)
        ],
        tmp_path / "res",
        data_dir=str(tmp_path / "data"),
        progress=False,
        log=lambda _: None,
    )
    records = ResultsStore(tmp_path / "res").records()
    assert len(records) == 8
    summary = write_report(records, tmp_path / "out")
    assert summary["runs"] == 4 and summary["open_set_runs"] == 4  # closed-set and open-set runs apart
    res = Results(records)
    assert set(res.values("tiny", "v5", "standard", "steerability_score")) == {1, 2}
    table = (tmp_path / "out" / "open_set.csv").read_text().splitlines()
    assert table[0].startswith("data set,unseen,method,queries") and len(table) == 3
    assert table[1].startswith("tiny,fine:0.4,Flat,9,3 l0 / 3 l1,") and table[2].startswith("tiny,fine:0.4,V5,9,")
    assert mpimg.imread(tmp_path / "out" / "open_set.png").shape[0] > 200
    assert "## Open set" in (tmp_path / "out" / "report.md").read_text()


def test_runs_of_two_backbones_in_one_cell_are_refused_and_steer_report_picks_one(records, tmp_path):
    """The same grid on two backbones would overwrite each other's seeds in every table."""
    from dataclasses import replace

    other = [replace(r, run_id=f"other-{r.run_id}", backbone="org/other-model") for r in records]
    with pytest.raises(ValueError, match=r"backbones .* and org/other-model: report one at a time"):
        Results(records + other)
    store = ResultsStore(tmp_path / "store")
    for r in records + other:
        store.add(r)
    cli = [sys.executable, "-m", "steerable.cli", "report", str(tmp_path / "store"), "--out", str(tmp_path / "out")]
    refused = subprocess.run(cli, capture_output=True, text=True)
    assert refused.returncode == 2 and "report one at a time" in refused.stderr and not (tmp_path / "out").exists()
    done = subprocess.run(cli + ["--backbone", "other-model"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"report: {len(records)} runs" in done.stdout


def test_a_figure_undefined_for_some_seeds_is_averaged_over_the_others_and_says_so():
    from steerable.report.render import fmt

    nan = float("nan")
    assert fmt({1: 0.2, 2: 0.4, 3: 0.3}) == "+0.300 ± 0.100"
    assert fmt({1: 0.2, 2: nan, 3: 0.4}) == "+0.300 ± 0.141 (2 of 3 seeds)"
    assert fmt({1: nan, 2: 0.5}, pct=True) == "50.0 (1 of 2 seeds)"
    assert fmt({1: nan, 2: nan}) == "–"
