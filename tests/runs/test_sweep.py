"""steerable.runs: grids of runs, sweeps that record each finished run atomically, a killed sweep that
resumes with only the rest, and the executors."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from steerable.runs import LocalExecutor, RayExecutor, ResultsStore, RunSpec, SweepSpec, run_sweep
from steerable.runs.store import COLUMNS


def test_grid_and_run_ids():
    spec = SweepSpec(["a", "b"], ["v5", "mrl"], [1, 2], ablations=["inverted"], ablation_datasets=["a"])
    runs = spec.runs()
    assert len(runs) == 2 * 2 * 2 + 2
    assert len({r.run_id for r in runs}) == len(runs)
    assert RunSpec("a", "v5", 1).run_id == RunSpec("a", "v5", 1).run_id
    assert RunSpec("a", "v5", 1).run_id != RunSpec("a", "v5", 1, epochs=2).run_id
    # the recipe is pinned into the spec, so the id names what ran; the canonical method name too
    assert RunSpec("a", "heal", 1).epochs == 20 and RunSpec("a", "v5", 1).epochs == 5
    assert RunSpec("a", "dial0.5", 1).method == "dial@0.5"
    # ids are stable across versions: a results store keeps serving its records
    assert RunSpec("clinc150", "v5", 42, max_train=10_000, max_test=2_000).run_id == "clinc150__v5__s42__74af32f0"


def test_a_run_id_names_the_setting_a_bare_method_ran_at(monkeypatch):
    """Changing a method's default setting must not let a record of the old default stand for the new."""
    from steerable import methods

    old = RunSpec("a", "adversarial", 1)
    explicit = RunSpec("a", f"adversarial@{methods.coarse.ADVERSARIAL_STRENGTH:g}", 1)
    assert old.method == "adversarial" and old.run_id == explicit.run_id
    monkeypatch.setattr(methods.coarse, "ADVERSARIAL_STRENGTH", 0.5)
    new = RunSpec("a", "adversarial", 1)
    assert new.method == "adversarial" and new.run_id != old.run_id and new.run_id.startswith("a__adversarial@0.5__")
    assert methods.preset("adversarial").terms[-1].grad[0] == -0.5  # and the bare name trains at it
    assert RunSpec("a", "adversarial@1", 1).method == "adversarial@1"  # no longer the default: spelled out


def test_sweep_records_a_long_table_and_skips_finished_runs(tiny_data_dir, tmp_path):
    runs = [RunSpec("tiny", m, 1, head="linear", epochs=1) for m in ("v5", "flat")]
    logs = []
    new = run_sweep(runs, tmp_path / "res", data_dir=str(tiny_data_dir), progress=False, log=logs.append)
    assert len(new) == 2
    table = ResultsStore(tmp_path / "res").table()
    assert list(table.columns) == COLUMNS
    acc = table[(table.metric == "accuracy") & (table.method == "v5") & (table.protocol == "standard")]
    assert sorted(acc.dim.unique()) == [64, 128, 192, 256] and set(acc.level) == {"l0", "l1"}
    assert (table.metric == "steerability_score").sum() == 4  # 2 runs x 2 protocols
    parquet = ResultsStore(tmp_path / "res").write_parquet()
    assert pd.read_parquet(parquet).equals(table)
    again = run_sweep(runs, tmp_path / "res", data_dir=str(tiny_data_dir), progress=False, log=logs.append)
    assert again == [] and "2 already recorded, 0 to go" in logs[-1]
    (inv,) = ResultsStore(tmp_path / "res").invocations()  # the no-op rerun logs nothing
    assert inv["runs"] == 2 and inv["seconds"] >= inv["vector_seconds"] > 0


def test_killed_sweep_resumes_with_only_the_rest(tiny_data_dir, tmp_path):
    results = tmp_path / "res"
    cmd = [
        sys.executable,
        "-m",
        "steerable.cli",
        "sweep",
        "--datasets",
        "tiny",
        "--methods",
        "v5,mrl,inverted",
        "--seeds",
        "1,2",
        "--epochs",
        "15",
        "--head",
        "linear",
        "--results",
        str(results),
        "--quiet",
    ]
    env = os.environ | {"STEER_DATA_DIR": str(tiny_data_dir)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and not list((results / "records").glob("*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in (results / "records").glob("*.json")}
    assert 1 <= len(before) < 6, "the sweep must be killed midway"
    for blob in before.values():
        json.loads(blob)  # every record that exists is whole
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert f"{len(before)} already recorded, {6 - len(before)} to go" in out.stdout
    after = {p.name: p.read_bytes() for p in (results / "records").glob("*.json")}
    assert len(after) == 6
    assert all(after[name] == blob for name, blob in before.items())  # finished runs untouched


def test_local_executor_runs_in_worker_processes(tiny_data_dir, tmp_path):
    runs = [RunSpec("tiny", "flat", s) for s in (1, 2)]
    new = run_sweep(
        runs,
        tmp_path / "res",
        executor=LocalExecutor(workers=2, threads=1),
        data_dir=str(tiny_data_dir),
        progress=False,
        log=lambda _: None,
    )
    assert sorted(r.seed for r in new) == [1, 2]
    # each record keeps the thread count its worker ran at, which its last digits depend on
    assert all(r.environment == {"torch_threads": 1, "torch": torch.__version__} for r in new)


def test_ray_executor_against_a_local_instance(tiny_data_dir, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        runs = [RunSpec("tiny", m, 1, head="linear", epochs=1) for m in ("v5", "flat")]
        new = run_sweep(
            runs,
            tmp_path / "res",
            executor=RayExecutor(),
            data_dir=str(tiny_data_dir),
            progress=False,
            log=lambda _: None,
        )
        assert sorted(r.method for r in new) == ["flat", "v5"]
        assert ResultsStore(tmp_path / "res").has(runs[0].run_id)
    finally:
        ray.shutdown()


def test_a_run_with_unseen_classes_records_them_apart(tiny_data_dir, tmp_path):
    closed, held = (
        RunSpec("tiny", "v5", 1, head="linear", epochs=1, unseen=u, min_queries=5) for u in (None, "fine:0.4")
    )
    assert closed.run_id != held.run_id and held.unseen == "fine:0.4"
    (record,) = run_sweep([held], tmp_path / "res", data_dir=str(tiny_data_dir), progress=False, log=lambda _: None)
    assert set(record.metrics) == {"paper", "standard"} and record.unseen == "fine:0.4"
    o = record.open_set
    assert o is not None
    # 3 coarse classes of 3 intents: one intent of each held out, 3 of the 27 test texts each
    assert o.held_out == {"l0": 3, "l1": 3} and o.queries == 9 and o.pool == 27
    assert o.drawn == "fine:0.4" and len(o.held_out_classes["l1"]) == 3
    assert set(o.accuracy) == {"l0", "l1"} and set(o.clustering) == {"l0@64", "l1@256"}
    assert ResultsStore(tmp_path / "res").get(held.run_id).open_set == o


def test_a_selection_run_is_measured_on_the_validation_split(tiny_data_dir, tmp_path, monkeypatch):
    from steerable.data import load_dataset
    from steerable.report import Results

    spec = RunSpec("tiny", "v5", 1, head="linear", epochs=1, split="validation")
    assert spec.run_id != RunSpec("tiny", "v5", 1, head="linear", epochs=1).run_id
    (record,) = run_sweep([spec], tmp_path / "res", data_dir=str(tiny_data_dir), progress=False, log=lambda _: None)
    n_val = len(load_dataset("tiny", tiny_data_dir).validation)
    assert record.split == "validation" and record.metrics["paper"].protocol.n == 500
    assert record.retrieval and record.probe is not None and record.probe.dim == 64
    # measured on the 9 validation texts, not the 27 test texts: 5 retrieval documents, too few for a
    # shortlist of 10 (the test split's 14 have one)
    assert n_val == 9 and "funnel/overlap@10/10" not in record.retrieval and "recall@10/l1/64" in record.retrieval
    with pytest.raises(ValueError, match="no results to report"):
        Results([record])  # selection runs are not reported
    with pytest.raises(ValueError, match="measured on the test or the validation split, not 'train'"):
        RunSpec("tiny", "v5", 1, split="train")


def test_an_episodic_selection_run_queries_the_held_out_classes_validation_texts(tiny_data_dir, tmp_path):
    """With classes held out and the validation split measured, the held-out classes' validation texts
    are the queries (episodic held-out classes): the test split is never read, and training never sees
    the held-out classes."""
    from steerable.data import load_dataset

    spec = RunSpec("tiny", "gep@1", 1, split="validation", unseen="coarse:1", min_queries=2)
    (record,) = run_sweep([spec], tmp_path / "res", data_dir=str(tiny_data_dir), progress=False, log=lambda _: None)
    ds = load_dataset("tiny", tiny_data_dir)
    assert record.open_set is not None
    (held,) = record.open_set.held_out_classes["l0"]
    coarse = ds.hierarchy.classes[0].index(held)
    assert record.open_set.queries == int((ds.validation.labels[:, 0] == coarse).sum()) >= 2
    assert record.open_set.pool == len(ds.validation)  # every validation text; none of the test split's
    assert record.dataset_stats["test"] == len(ds.test) != record.open_set.pool


def _measured(record) -> dict:
    """What a run measured (no wall times, no record of how it executed)."""
    history = dict(
        record.history,
        epochs=[{k: v for k, v in e.items() if k != "seconds"} for e in record.history.get("epochs", [])],
    )
    return {
        "metrics": record.metrics,
        "retrieval": record.retrieval,
        "probe": record.probe,
        "cost": record.cost,
        "history": history,
    }


def test_seeds_trained_together_record_what_each_seed_records_alone(tiny_data_dir, tmp_path):
    """A sweep groups runs that differ only by seed into one stacked training (by default); every
    record it writes measures exactly what the run trained alone (--no-group) measures."""
    runs = [
        RunSpec("tiny", m, s, head=head, epochs=2)
        for m, head in (("v5", "mlp"), ("heal", "linear"), ("flat", "mlp"))
        for s in (1, 2, 3)
    ]
    kw = dict(data_dir=str(tiny_data_dir), progress=False, log=lambda _: None)
    grouped = {r.run_id: r for r in run_sweep(runs, tmp_path / "grouped", **kw)}
    alone = {r.run_id: r for r in run_sweep(runs, tmp_path / "alone", group=0, **kw)}
    assert set(grouped) == set(alone) == {r.run_id for r in runs}
    for run_id, record in grouped.items():
        assert _measured(record) == _measured(alone[run_id]), run_id
        trains = record.method != "flat"
        assert record.environment.get("trained_together") == (3 if trains else None), run_id
        assert "trained_together" not in alone[run_id].environment


def test_seed_groups_hold_runs_that_differ_only_by_seed():
    from steerable.runs import seed_groups

    runs = [RunSpec("a", m, s) for m in ("v5", "mrl") for s in (1, 2, 3)] + [RunSpec("a", "v5", 4, epochs=2)]
    groups = seed_groups(runs)
    assert [[r.seed for r in g] for g in groups] == [[1, 2, 3], [1, 2, 3], [4]]
    assert [[r.seed for r in g] for g in seed_groups(runs, 2)] == [[1, 2], [3], [1, 2], [3], [4]]
    # listed seed by seed, each setting's first seeds come before any setting's next ones
    by_seed = [RunSpec("a", m, s) for s in (1, 2, 3) for m in ("v5", "mrl")]
    got = [(g[0].method, [r.seed for r in g]) for g in seed_groups(by_seed, 2)]
    assert got == [("v5", [1, 2]), ("mrl", [1, 2]), ("v5", [3]), ("mrl", [3])]


def test_the_sweep_command_groups_seeds_unless_told_not_to():
    from steerable.cli import build_parser
    from steerable.runs.sweep import DEFAULT_GROUP

    def group(*flags):
        return build_parser().parse_known_args(["sweep", "--results", "r", "--datasets", "x", *flags])[0].group

    assert group() == DEFAULT_GROUP and group("--no-group") == 0 and group("--group", "2") == 2
