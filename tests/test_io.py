"""Atomic writes: all or nothing, and the permissions the umask allows (not a private 0600)."""

import os
import stat

import numpy as np
import pytest

from steerable.atomic import atomic_folder, atomic_write, atomic_write_json, read_json


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=["umask022", "umask002", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_and_folders_follow_the_umask(tmp_path, umask):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_write(tmp_path / "b.npy", lambda p: np.save(open(p, "wb"), np.zeros(3)))
    assert mode(tmp_path / "a.json") == mode(tmp_path / "b.npy") == 0o666 & ~umask
    with atomic_folder(tmp_path / "run") as tmp:
        atomic_write_json(tmp / "config.json", {})
    assert mode(tmp_path / "run") == 0o777 & ~umask
    assert mode(tmp_path / "run" / "config.json") == 0o666 & ~umask


class _Backbone:
    """Just enough of a backbone for the vector cache: fixed vectors, no model."""

    name, key, dim = "stub", "stub", 2

    def fingerprint(self) -> dict:
        return {"model": "stub"}

    def encode_uncached(self, texts, progress=False):
        return np.ones((len(texts), 2), np.float32)


def test_what_the_project_writes_follows_the_umask(tmp_path, umask):
    """A model's files, a results record, a cache shard and a streamed encoding."""
    from steerable.backbone import VectorCache
    from steerable.encoder import write_embeddings
    from steerable.runs import ResultsStore, RunRecord

    from conftest import synthetic_model
    from records import metrics_block

    model, _, _ = synthetic_model()
    model.save(tmp_path / "run")
    ResultsStore(tmp_path / "res").add(
        RunRecord("r1", "d", "v5", 42, "b", "mlp", {}, {}, ["l0", "l1"], {"standard": metrics_block()})
    )
    VectorCache(_Backbone(), tmp_path / "cache").get_or_encode(["a", "b"], progress=False)
    src = tmp_path / "texts.txt"
    src.write_text("a\nb\n")
    write_embeddings(src, tmp_path / "e.npy", lambda t: np.zeros((len(t), 2), np.float32), progress=False)
    files = [
        tmp_path / "run" / "config.json",
        tmp_path / "run" / "model.safetensors",
        tmp_path / "res" / "records" / "r1.json",
        tmp_path / "e.npy",
        *sorted((tmp_path / "cache" / "vectors" / "stub").iterdir()),
    ]
    assert len(files) == 6
    assert {f.name: mode(f) for f in files} == {f.name: 0o666 & ~umask for f in files}


def test_a_failed_folder_write_leaves_the_old_folder(tmp_path):
    (tmp_path / "run").mkdir()
    atomic_write_json(tmp_path / "run" / "old.json", 1)
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "run") as tmp:
            atomic_write_json(tmp / "new.json", 2)
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["old.json"]
    with atomic_folder(tmp_path / "run") as tmp:
        atomic_write_json(tmp / "new.json", 2)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["new.json"]
    assert read_json(tmp_path / "run" / "new.json") == 2
