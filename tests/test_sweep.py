"""Sweeps record each finished run atomically; a killed sweep resumes with only the rest."""

import json
import os
import signal
import subprocess
import sys
import time

from steerable.store import COLUMNS, ResultsStore
from steerable.sweep import LocalExecutor, RunSpec, SweepSpec, paper_sweep, run_sweep


def test_grid_and_run_ids():
    spec = SweepSpec(["a", "b"], ["v5", "mrl"], [1, 2], ablations=["inverted"], ablation_datasets=["a"])
    runs = spec.runs()
    assert len(runs) == 2 * 2 * 2 + 2
    assert len({r.run_id for r in runs}) == len(runs)
    assert RunSpec("a", "v5", 1).run_id == RunSpec("a", "v5", 1).run_id
    assert RunSpec("a", "v5", 1).run_id != RunSpec("a", "v5", 1, epochs=2).run_id
    full = paper_sweep(["clinc150", "trec", "goemotions"]).runs()
    assert len(full) == 3 * 3 * 5 + 2 * 3 * 5
    assert {r.max_train for r in full} == {10_000}
    assert len(paper_sweep(["clinc150", "trec"], quick=True).runs()) == 6 * 2


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
    import pandas as pd

    parquet = ResultsStore(tmp_path / "res").write_parquet()
    assert pd.read_parquet(parquet).equals(table)
    again = run_sweep(runs, tmp_path / "res", data_dir=str(tiny_data_dir), progress=False,
                      log=logs.append)
    assert again == [] and "2 already recorded, 0 to go" in logs[-1]
    (inv,) = ResultsStore(tmp_path / "res").invocations()  # the no-op rerun logs nothing
    assert inv["runs"] == 2 and inv["seconds"] >= inv["vector_seconds"] > 0


def test_killed_sweep_resumes_with_only_the_rest(tiny_data_dir, tmp_path):
    results = tmp_path / "res"
    cmd = [sys.executable, "-m", "steerable.cli", "sweep", "--datasets", "tiny", "--methods",
           "v5,mrl,inverted", "--seeds", "1,2", "--epochs", "15", "--head", "linear",
           "--results", str(results), "--quiet"]
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
    new = run_sweep(runs, tmp_path / "res", executor=LocalExecutor(workers=2),
                    data_dir=str(tiny_data_dir), progress=False, log=lambda _: None)
    assert sorted(r["seed"] for r in new) == [1, 2]


def test_ray_executor_against_a_local_instance(tiny_data_dir, tmp_path):
    ray = __import__("pytest").importorskip("ray")
    from steerable.sweep import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        runs = [RunSpec("tiny", m, 1, head="linear", epochs=1) for m in ("v5", "flat")]
        new = run_sweep(runs, tmp_path / "res", executor=RayExecutor(), data_dir=str(tiny_data_dir),
                        progress=False, log=lambda _: None)
        assert sorted(r["method"] for r in new) == ["flat", "v5"]
        assert ResultsStore(tmp_path / "res").has(runs[0].run_id)
    finally:
        ray.shutdown()
