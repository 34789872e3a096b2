"""Encoding on a real two-node Ray cluster (:mod:`cluster`): ``steer encode --executor ray`` writes the
shards the one-machine path would, bit for bit, even when its worker is killed mid-job; ``steer cache
build --executor ray`` fills the driver's vector cache with the vectors training would compute."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")

from steerable import SteerableModel  # noqa: E402
from steerable.backbone import Backbone, VectorCache, split_vectors  # noqa: E402
from steerable.data import Hierarchy, load_dataset  # noqa: E402
from steerable.heads import MLPHead  # noqa: E402
from steerable.shards import iter_shards, read_manifest  # noqa: E402

from cluster import two_node_cluster  # noqa: E402,F401  (the fixture)

STEER = str(Path(sys.executable).with_name("steer"))


def corpus(n: int) -> list[str]:
    """Texts of varied length (so batches by token count differ from shard to shard)."""
    rng = np.random.default_rng(0)
    words = "book a table flight hotel for two people tonight in paris please my card was lost".split()
    return [" ".join(rng.choice(words, int(rng.integers(2, 30)))) for _ in range(n)]


def actor_pids(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_ray_encoding_survives_a_killed_worker_and_matches_one_machine(two_node_cluster, tmp_path):
    address, _, env = two_node_cluster
    env = env | {"STEER_CACHE_DIR": os.environ["STEER_CACHE_DIR"]}
    torch.manual_seed(0)
    h = Hierarchy(("domain", "intent"), (("a", "b"), ("a1", "a2", "b1")), (np.array([0, 0, 1]),))
    SteerableModel(MLPHead(384), h, "sentence-transformers/all-MiniLM-L6-v2").save(tmp_path / "run")
    texts = corpus(3000)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    common = ["--model", "run", "--chunk-size", "100", "--quiet"]
    job = subprocess.Popen(
        [STEER, "encode", "in.txt", "--out", "shards", "--dim", "64,256", *common]
        + ["--executor", "ray", "--ray-address", address],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # once some shards are written and most are not, kill the worker that encodes them
    killed = []
    deadline = time.time() + 400
    while job.poll() is None and not killed and time.time() < deadline:
        if len(list((tmp_path / "shards").glob("shard-*.parquet"))) >= 3:
            for pid in actor_pids("ShardEncoder"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.1)
    out, _ = job.communicate(timeout=600)
    assert job.returncode == 0, out
    assert killed, "the job ended before a worker could be killed"
    manifest = read_manifest(tmp_path / "shards")
    assert manifest["complete"] and manifest["rows"] == 3000 and manifest["planned"] == 30
    assert "30 shards encoded" in out

    # the one-machine path, chunk by chunk into one file, at each dim
    for dim in (64, 256):
        local = subprocess.run(
            [STEER, "encode", "in.txt", "--out", f"local{dim}.npy", "--dim", str(dim), *common],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert local.returncode == 0, local.stdout + local.stderr
        shards = list(iter_shards(tmp_path / "shards"))
        np.testing.assert_array_equal(np.concatenate([s.rows for s in shards]), np.arange(3000))
        np.testing.assert_array_equal(
            np.concatenate([s.vectors[dim] for s in shards]), np.load(tmp_path / f"local{dim}.npy")
        )


def test_ray_cache_build_fills_the_drivers_cache_with_training_s_vectors(two_node_cluster, tiny_data_dir, tmp_path):
    address, worker_dir, env = two_node_cluster
    cache = tmp_path / "cache"
    cmd = [STEER, "cache", "build", "--dataset", "tiny", "--data-dir", str(tiny_data_dir), "--quiet"]
    out = subprocess.run(
        [*cmd, "--executor", "ray", "--ray-address", address],
        env=env | {"STEER_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "108 distinct texts, 0 already cached, 108 encoded" in out.stdout
    # the worker encoded them (its own cache holds nothing: vectors go to the driver)
    assert not list((worker_dir / "cache").rglob("shard-*.safetensors"))
    again = subprocess.run(
        [*cmd, "--executor", "ray", "--ray-address", address],
        env=env | {"STEER_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "108 already cached, 0 encoded" in again.stdout, again.stdout + again.stderr

    ds = load_dataset("tiny", tiny_data_dir)
    backbone = Backbone()
    filled = VectorCache(backbone, root=cache)
    built = split_vectors(ds, backbone, cache=filled, progress=False)
    assert filled.encoded_count == 0  # every text was there
    trained = split_vectors(ds, backbone, cache=VectorCache(backbone, root=tmp_path / "fresh"), progress=False)
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(built, split), getattr(trained, split))
