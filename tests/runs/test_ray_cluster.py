"""A sweep on a real two-node Ray cluster on this machine: a head node with no CPUs (so every run goes
to the worker node) and a worker node started with ``ray start`` in its own temporary folder, working
directory and vector cache, without the data folder's environment variable. ``steer sweep --executor
ray --ray-address`` drives it; every record must come back to the driver's store, and the worker gets
the data and the vectors from the driver."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")

from steerable.runs import ResultsStore  # noqa: E402

from cluster import two_node_cluster  # noqa: E402,F401  (the fixture)


def test_a_sweep_on_a_two_node_cluster_records_every_run_in_the_drivers_store(
    two_node_cluster, tiny_data_dir, tmp_path
):
    address, worker_dir, env = two_node_cluster
    assert tiny_data_dir == tmp_path / "data"
    # paths relative to the driver's working directory: meaningless on the worker, whose own is elsewhere
    cmd = [
        str(Path(sys.executable).with_name("steer")),
        "sweep",
        "--results",
        "res",
        "--datasets",
        "tiny",
        "--methods",
        "v5,flat",
        "--seeds",
        "1,2",
        "--head",
        "linear",
        "--epochs",
        "1",
        "--data-dir",
        "data",
        "--executor",
        "ray",
        "--ray-address",
        address,
        "--quiet",
    ]
    out = subprocess.run(
        cmd,
        env=env | {"STEER_CACHE_DIR": os.environ["STEER_CACHE_DIR"]},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    records = ResultsStore(tmp_path / "res").records()
    assert sorted((r.method, r.seed) for r in records) == [("flat", 1), ("flat", 2), ("v5", 1), ("v5", 2)]
    assert "[4/4]" in out.stdout
    # the runs ran on the worker node, from the vectors the driver shipped into its own cache ...
    assert list((worker_dir / "cache" / "vectors").rglob("shard-*.safetensors"))
    # ... and wrote nothing where the worker runs
    assert not any((worker_dir / "cwd").iterdir())
