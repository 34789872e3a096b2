"""Shard folders on one machine: the planner reads every input format exactly as ``steer encode`` reads
it; ``steer encode --out DIR`` writes the vectors of the one-file path bit for bit, resumes, refuses
what it did not write; ``steer cache build`` fills the cache with the vectors training computes. (The
same jobs on a Ray cluster: tests/runs/test_ray_encode.py.)"""

import gzip
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from steerable import SteerableModel
from steerable.backbone import Backbone, VectorCache, split_vectors
from steerable.cli import main
from steerable.data import DataError, Hierarchy, iter_text_chunks, load_dataset
from steerable.encoding import encode_to_shards
from steerable.heads import MLPHead
from steerable.shards import MANIFEST, iter_shards, plan_file, read_manifest, read_shard_texts, write_shard_folder

TEXTS = [f"please book a table for {i} people" + " at noon" * (i % 4) for i in range(70)]
TRICKY = ['a, quoted "word"', "two\nlines", "", "  spaced  ", "naïve café", "last"] * 9


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    h = Hierarchy(("domain", "intent"), (("a", "b"), ("a1", "a2", "b1")), (np.array([0, 0, 1]),))
    path = tmp_path_factory.mktemp("run")
    SteerableModel(MLPHead(384), h, "sentence-transformers/all-MiniLM-L6-v2").save(path)
    return path


def write_inputs(folder):
    """The same rows in every format, with what trips a naive reader: quotes, line breaks inside a
    CSV field, blank lines, CR LF, a last line with no line break, row groups."""
    folder.mkdir()
    flat = [t.replace("\n", " ") for t in TRICKY]
    (folder / "a.txt").write_bytes(("\r\n".join(flat)).encode())  # CR LF, and no final line break
    pd.DataFrame({"text": TRICKY, "id": range(len(TRICKY))}).to_csv(folder / "b.csv", index=False)
    with open(folder / "b.csv", "a") as f:
        f.write("\n\n")  # blank lines are no rows
    lines = [json.dumps({"text": t, "id": i}) for i, t in enumerate(TRICKY)]
    (folder / "c.jsonl").write_text("\n\n".join(lines) + "\n")
    with gzip.open(folder / "d.jsonl.gz", "wt") as f:
        f.write("\n".join(lines))
    pd.DataFrame({"text": TRICKY, "id": range(len(TRICKY))}).to_parquet(folder / "e.parquet", row_group_size=10)
    return folder


@pytest.mark.parametrize("name", ["a.txt", "b.csv", "c.jsonl", "d.jsonl.gz", "e.parquet"])
def test_planned_shards_read_the_rows_steer_encode_reads(tmp_path, name):
    path = write_inputs(tmp_path / "in") / name
    id_col = None if name.endswith(".txt") else "id"
    shards = plan_file(path, 8, None, id_col)
    texts, ids = [], []
    for shard in shards:
        t, i = read_shard_texts(shard)
        assert len(t) == shard["rows"]
        texts += t
        ids += i or []
    expected = [t for chunk in iter_text_chunks(path, 8) for t in chunk]
    assert texts == expected and len(texts) == len(TRICKY)
    assert [s["start"] for s in shards] == list(range(0, len(TRICKY), 8))
    if id_col:
        assert ids == [str(i) for i in range(len(TRICKY))]


def test_a_file_changed_after_planning_is_an_error_naming_it(tmp_path):
    path = write_inputs(tmp_path / "in") / "c.jsonl"
    shards = plan_file(path, 8, None, None)
    path.write_text("\n".join(json.dumps({"text": "x"}) for _ in range(20)) + "\n")
    with pytest.raises(DataError, match="c.jsonl: changed since the job was planned"):
        for shard in shards:
            read_shard_texts(shard)


def encode(args):
    return main(["encode", *map(str, args), "--quiet"])


def test_a_shard_folder_holds_the_one_file_path_s_vectors_bit_for_bit(run_dir, tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    assert encode([src, "--model", run_dir, "--out", tmp_path / "shards", "--dim", "64,256", "--chunk-size", 16]) == 0
    for dim in (64, 256):
        assert (
            encode([src, "--model", run_dir, "--out", tmp_path / f"e{dim}.npy", "--dim", dim, "--chunk-size", 16]) == 0
        )
        shards = list(iter_shards(tmp_path / "shards", dims=[dim]))
        assert [len(s.rows) for s in shards] == [16, 16, 16, 16, 6]
        np.testing.assert_array_equal(
            np.concatenate([s.vectors[dim] for s in shards]), np.load(tmp_path / f"e{dim}.npy")
        )
    table = pq.read_table(tmp_path / "shards" / "shard-000000.parquet")
    assert table.column_names == ["row", "embedding_64", "embedding_256"]
    assert read_manifest(tmp_path / "shards")["settings"]["dims"] == [64, 256]


def test_ids_float16_and_a_folder_of_inputs(run_dir, tmp_path):
    folder = write_inputs(tmp_path / "in")
    (folder / "a.txt").unlink()  # a text file has no id column
    out = tmp_path / "shards"
    assert (
        encode([folder, "--model", run_dir, "--out", out, "--id-col", "id", "--dtype", "float16", "--level", "coarse"])
        == 0
    )
    shards = list(iter_shards(out))
    rows = np.concatenate([s.rows for s in shards])
    np.testing.assert_array_equal(rows, np.arange(4 * len(TRICKY)))  # numbered across the files, in name order
    assert sum((s.ids for s in shards), []) == [str(i) for i in range(len(TRICKY))] * 4
    assert pq.read_table(out / "shard-000000.parquet").schema.field("embedding").type.value_type == "halffloat"
    from steerable import SteerableEncoder

    exact = SteerableEncoder.from_pretrained(run_dir, cache=False).encode(TRICKY, level="coarse")
    got = np.concatenate([s.vectors[64] for s in shards])[: len(TRICKY)]
    np.testing.assert_allclose(got, exact, atol=1e-3)  # float16's rounding, no more


def test_an_interrupted_job_resumes_only_the_missing_shards(run_dir, tmp_path, monkeypatch):
    import steerable.encoding as encoding

    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    real, calls = encoding.write_shard, []

    def fail_on_the_third(path, *args, **kwargs):
        calls.append(path.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(encoding, "write_shard", fail_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        encode_to_shards(src, tmp_path / "out", run_dir, shard_rows=16, progress=False)
    manifest = read_manifest(tmp_path / "out")
    assert sorted(manifest["shards"]) == ["shard-000000.parquet", "shard-000001.parquet"]
    assert not manifest["complete"]
    with pytest.raises(DataError, match="has not finished .2 of 5 shards"):
        list(iter_shards(tmp_path / "out"))
    monkeypatch.setattr(encoding, "write_shard", real)
    summary = encode_to_shards(src, tmp_path / "out", run_dir, shard_rows=16, progress=False)
    assert (summary["shards_encoded"], summary["shards_resumed"]) == (3, 2)
    encode_to_shards(src, tmp_path / "whole", run_dir, shard_rows=16, progress=False)
    for a, b in zip(iter_shards(tmp_path / "out"), iter_shards(tmp_path / "whole")):
        np.testing.assert_array_equal(a.vectors[256], b.vectors[256])


def test_other_settings_are_refused_and_overwrite_removes_only_its_own_files(run_dir, tmp_path, capsys):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "out"
    assert encode([src, "--model", run_dir, "--out", out, "--chunk-size", 32]) == 0
    (out / "notes.md").write_text("mine")
    assert encode([src, "--model", run_dir, "--out", out, "--chunk-size", 16]) == 2
    assert "written by a job with another model, input or settings" in capsys.readouterr().err
    assert encode([src, "--model", run_dir, "--out", out, "--chunk-size", 16, "--overwrite"]) == 0
    assert (out / "notes.md").read_text() == "mine"
    assert len(list(out.glob("shard-*.parquet"))) == 5
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("x\n")
    assert encode([src, "--model", run_dir, "--out", other]) == 2
    assert "did not write (no manifest.json)" in capsys.readouterr().err
    assert (other / "data.csv").exists() and not (other / MANIFEST).exists()


def test_a_checksum_that_differs_is_named(tmp_path):
    folder = tmp_path / "v"
    write_shard_folder(folder, {8: np.ones((10, 8), np.float32)}, shard_rows=4)
    assert sum(len(s.rows) for s in iter_shards(folder)) == 10
    pq.write_table(pq.read_table(folder / "shard-000001.parquet").slice(0, 2), folder / "shard-000001.parquet")
    with pytest.raises(DataError, match="shard-000001.parquet: its checksum differs"):
        list(iter_shards(folder))


def test_cache_build_stores_the_vectors_training_computes(tiny_data_dir, tmp_path, capsys, monkeypatch):
    args = ["cache", "build", "--dataset", "tiny", "--data-dir", str(tiny_data_dir), "--quiet"]
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "built"))
    assert main(args) == 0
    assert "108 distinct texts, 0 already cached, 108 encoded" in capsys.readouterr().out
    assert main(args) == 0
    assert "108 already cached, 0 encoded" in capsys.readouterr().out
    ds, backbone = load_dataset("tiny", tiny_data_dir), Backbone()
    filled = VectorCache(backbone, root=tmp_path / "built")
    built = split_vectors(ds, backbone, cache=filled, progress=False)
    assert filled.encoded_count == 0
    fresh = split_vectors(ds, backbone, cache=VectorCache(backbone, root=tmp_path / "fresh"), progress=False)
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(built, split), getattr(fresh, split))


def test_the_backbone_s_vectors_do_not_depend_on_its_threads():
    backbone = Backbone()
    texts = TEXTS + ["a much longer text " * 20]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = backbone.encode_uncached(texts)
        torch.set_num_threads(2)
        two = backbone.encode_uncached(texts)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)
