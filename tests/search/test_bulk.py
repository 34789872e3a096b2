"""steerable.search.bulk: a shard folder loaded into each engine answers as the embedded index of the
same vectors does; a load that stops half-way leaves nothing under the final name, and run again it
loads only the shards that were not in."""

import json

import numpy as np
import pytest

import steerable.search.bulk
import steerable.shards
from steerable.data import DataError
from steerable.search import EmbeddedIndex, bulk_load, open_index_folder, write_index_folder
from steerable.search.bulk import RECORD, _EmbeddedLoader
from steerable.search.index import HNSW
from steerable.search.pgvector import copy_binary, table_exists
from steerable.shards import fingerprint_inputs, shard_name, write_shard_folder

from conftest import require
from engines import assert_binary_answers, assert_same_answers, data, embedded, embedded_binary  # noqa: F401

SHARD_ROWS = 500  # the 3,000 documents in 6 shards
BACKENDS = ["embedded", "faiss", "qdrant-edge", "pgvector"]


@pytest.fixture(scope="module")
def shards(data, tmp_path_factory):
    pd, fd, _, _ = data
    folder = tmp_path_factory.mktemp("shards") / "docs"
    write_shard_folder(folder, {64: pd, 256: fd}, shard_rows=SHARD_ROWS)
    return folder


@pytest.fixture(scope="module")
def few_shards(data, tmp_path_factory):
    """Other shards: the first 1,000 documents."""
    pd, fd, _, _ = data
    folder = tmp_path_factory.mktemp("shards") / "few"
    write_shard_folder(folder, {64: pd[:1000], 256: fd[:1000]}, shard_rows=SHARD_ROWS)
    return folder


def where(request, backend, table):
    """The engine's place: pgvector the session's server (and ``table``), the others the folder."""
    if backend == "qdrant-edge":
        require("qdrant_edge", "search")
    if backend != "pgvector":
        return {}
    require("psycopg", "pgvector")
    return {"url": request.getfixturevalue("postgres_url"), "collection": table}


def opened(folder):
    """The index folder opened as `steer search` opens it, its graph searched with ef 1000 (which
    finds the exact prefix shortlist of 3,000 documents)."""
    index, meta, texts = open_index_folder(folder)
    if isinstance(index, EmbeddedIndex):
        if isinstance(index.prefix, HNSW):
            index.prefix.ef_search = 1000
        if index.bits is not None:
            index.bits.ef_search = 1000
    else:
        index.ef_search = 1000
    return index, meta, texts


def assert_nothing_staged(tmp_path, kw):
    """Only the index folder is left beside itself; in PostgreSQL no staging table or log."""
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    if "url" in kw:
        t = kw["collection"]
        assert not table_exists(kw["url"], f"{t}_loading") and not table_exists(kw["url"], f"{t}_loading_log")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loaded_folder_answers_as_the_embedded_index(request, shards, embedded, data, tmp_path, backend):
    _, _, pq, fq = data
    kw = where(request, backend, "bulk_float")
    summary = bulk_load(shards, tmp_path / "idx", backend, progress=False, **kw)
    assert {k: summary[k] for k in ("rows", "shards", "loaded", "already_loaded", "texts")} == {
        "rows": 3000,
        "shards": 6,
        "loaded": 6,
        "already_loaded": 0,
        "texts": "rows",
    }
    assert_nothing_staged(tmp_path, kw)
    index, meta, texts = opened(tmp_path / "idx")
    assert (meta["backend"], meta["count"], meta["prefix_dim"], meta["full_dim"]) == (backend, 3000, 64, 256)
    assert len(index) == 3000 and texts == [str(i) for i in range(3000)]
    assert_same_answers(embedded, index, pq, fq)
    if backend == "pgvector":  # the staging table's indexes and constraints were renamed with it
        assert "Index Scan using bulk_float_prefix_hnsw on bulk_float" in index.explain(pq, fq, shortlist=100)
        names = index.conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'bulk_float' "
            "UNION SELECT conname FROM pg_constraint WHERE conrelid = 'bulk_float'::regclass"
        ).fetchall()
        assert {"bulk_float_pkey", "bulk_float_prefix_hnsw"} <= {n for (n,) in names}
        assert not [n for (n,) in names if "loading" in n]
    index.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_binary_load_ranks_the_shortlist_by_sign_bits(request, shards, embedded_binary, data, tmp_path, backend):
    _, _, pq, fq = data
    kw = where(request, backend, "bulk_bits")
    bulk_load(shards, tmp_path / "idx", backend, quantize="binary", progress=False, **kw)
    index, meta, _ = opened(tmp_path / "idx")
    assert meta["quantize"] == index.quantize == "binary"
    assert_binary_answers(embedded_binary, index, pq, fq)
    if backend == "pgvector":
        assert "Index Scan using bulk_bits_prefix_bits on bulk_bits" in index.explain(pq, fq, shortlist=100)
    if backend in ("embedded", "faiss"):  # no float prefixes kept: the bits, and the full vectors on disk
        assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == sorted(
            ["full.npy", "index.json", "meta.json", "texts.jsonl", "vectors.safetensors"]
            + (["prefix.faiss"] if backend == "faiss" else [])
        )
    index.close()


def test_a_binary_load_keeps_the_prefix_it_rescores_by(shards, data, tmp_path):
    pd, fd, pq, fq = data
    bulk_load(shards, tmp_path / "idx", quantize="binary", rescore="int8", oversample=3, progress=False)
    want = EmbeddedIndex(64, 256, quantize="binary", rescore="int8", oversample=3)
    want.add(pd, fd)
    index, meta, _ = open_index_folder(tmp_path / "idx")
    assert (meta["rescore"], index.rescore, index.oversample) == ("int8", "int8", 3)
    np.testing.assert_array_equal(index.search(pq, fq, shortlist=50)[0], want.search(pq, fq, shortlist=50)[0])


def stop_at(monkeypatch, k=2):
    """Shard ``k``'s checksum differs, so a load stops after ``k`` shards."""
    real = steerable.shards.file_sha256
    monkeypatch.setattr(steerable.shards, "file_sha256", lambda p: "damaged" if p.name == shard_name(k) else real(p))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stopped_load_leaves_nothing_and_resumes(request, shards, embedded, data, tmp_path, monkeypatch, backend):
    _, _, pq, fq = data
    kw = where(request, backend, "bulk_resumed")
    stop_at(monkeypatch)
    with pytest.raises(DataError, match=r"shard-000002\.parquet: its checksum differs"):
        bulk_load(shards, tmp_path / "idx", backend, progress=False, **kw)
    assert not (tmp_path / "idx").exists()
    if "url" in kw:
        assert not table_exists(kw["url"], "bulk_resumed")
    monkeypatch.undo()
    summary = bulk_load(shards, tmp_path / "idx", backend, progress=False, **kw)
    assert (summary["loaded"], summary["already_loaded"], summary["rows"]) == (4, 2, 3000)
    assert_nothing_staged(tmp_path, kw)
    index, _, _ = opened(tmp_path / "idx")
    assert len(index) == 3000
    assert_same_answers(embedded, index, pq, fq)
    index.close()


def test_shards_loaded_but_not_recorded_are_loaded_again(shards, embedded, data, tmp_path, monkeypatch):
    """A load killed before it recorded anything (a checkpoint comes every 30 s) starts over: the
    files are laid out anew and every shard is written again."""
    _, _, pq, fq = data
    stop_at(monkeypatch)
    monkeypatch.setattr(_EmbeddedLoader, "checkpoint", lambda self: None)
    with pytest.raises(DataError):
        bulk_load(shards, tmp_path / "idx", progress=False)
    assert json.loads((tmp_path / ".idx.loading" / RECORD).read_text())["loaded"] == []
    monkeypatch.undo()
    summary = bulk_load(shards, tmp_path / "idx", progress=False)
    assert (summary["loaded"], summary["already_loaded"]) == (6, 0)
    index, _, _ = open_index_folder(tmp_path / "idx")
    assert_same_answers(embedded, index, pq, fq)


def test_a_load_stopped_after_its_index_was_built_is_finished_without_building_it_again(
    shards, embedded_binary, data, tmp_path, monkeypatch
):
    """A binary index's staged float prefixes are deleted once its bits are built: the rerun puts the
    built index in place, and nothing else, under the final name."""
    _, _, pq, fq = data

    def fail(path, source):
        raise OSError("disk full")

    monkeypatch.setattr(steerable.search.bulk, "_write_texts", fail)
    with pytest.raises(OSError, match="disk full"):
        bulk_load(shards, tmp_path / "idx", "faiss", quantize="binary", progress=False)
    assert not (tmp_path / "idx").exists()
    assert json.loads((tmp_path / ".idx.loading" / RECORD).read_text())["finished"]
    monkeypatch.undo()
    built = (tmp_path / ".idx.loading" / "prefix.faiss").stat().st_mtime_ns
    summary = bulk_load(shards, tmp_path / "idx", "faiss", quantize="binary", progress=False)
    assert (summary["loaded"], summary["already_loaded"]) == (0, 6)
    assert (tmp_path / "idx" / "prefix.faiss").stat().st_mtime_ns == built
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "full.npy",
        "index.json",
        "meta.json",
        "prefix.faiss",
        "texts.jsonl",
        "vectors.safetensors",
    ]
    index, _, _ = opened(tmp_path / "idx")
    assert_binary_answers(embedded_binary, index, pq, fq)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_existing_index_is_replaced_only_with_overwrite(request, shards, few_shards, data, tmp_path, backend):
    pd, fd, pq, fq = data
    kw = where(request, backend, "bulk_kept")
    bulk_load(few_shards, tmp_path / "idx", backend, progress=False, **kw)
    with pytest.raises(ValueError, match=r"idx: already an index folder; pass --overwrite to replace it"):
        bulk_load(shards, tmp_path / "idx", backend, progress=False, **kw)
    if "url" in kw:
        with pytest.raises(ValueError, match=r"table 'bulk_kept' already exists; pass --overwrite to replace it"):
            bulk_load(shards, tmp_path / "other", backend, progress=False, **kw)
    assert_nothing_staged(tmp_path, kw)
    index, meta, _ = open_index_folder(tmp_path / "idx")
    assert len(index) == meta["count"] == 1000
    index.close()
    bulk_load(shards, tmp_path / "idx", backend, overwrite=True, progress=False, **kw)
    assert_nothing_staged(tmp_path, kw)
    index, meta, _ = opened(tmp_path / "idx")
    assert len(index) == meta["count"] == 3000
    exact = EmbeddedIndex(64, 256)
    exact.add(pd, fd)
    np.testing.assert_array_equal(index.search(pq, fq, shortlist=100)[0], exact.search(pq, fq, shortlist=100)[0])
    index.close()


def test_a_stopped_load_of_other_shards_is_not_resumed(request, shards, few_shards, tmp_path, monkeypatch):
    require("psycopg", "pgvector")
    kw = {"url": request.getfixturevalue("postgres_url"), "collection": "bulk_other"}
    stop_at(monkeypatch)
    for backend, extra in (("embedded", {}), ("pgvector", kw)):
        with pytest.raises(DataError):
            bulk_load(shards, tmp_path / backend, backend, progress=False, **extra)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"\.embedded\.loading: holds a stopped load of another shard folder"):
        bulk_load(few_shards, tmp_path / "embedded", progress=False)
    with pytest.raises(ValueError, match=r"\.embedded\.loading: holds a stopped load of backend embedded"):
        bulk_load(shards, tmp_path / "embedded", "faiss", progress=False)
    # pgvector records its shards in the database: the staging table is what refuses, from any folder
    for out in ("pgvector", "elsewhere"):
        with pytest.raises(ValueError, match=r"table 'bulk_other_loading' holds a stopped load of another shard"):
            bulk_load(few_shards, tmp_path / out, "pgvector", progress=False, **kw)
    summary = bulk_load(shards, tmp_path / "pgvector", "pgvector", progress=False, **kw)
    assert (summary["loaded"], summary["already_loaded"]) == (4, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stopped_load_with_no_shard_in_gives_way_to_any_other(request, shards, data, tmp_path, monkeypatch, backend):
    """Nothing of it is kept: a load of other shards, of other dims, starts anew in its place."""
    kw = where(request, backend, "bulk_empty")
    stop_at(monkeypatch, 0)
    with pytest.raises(DataError, match=r"shard-000000\.parquet: its checksum differs"):
        bulk_load(shards, tmp_path / "idx", backend, progress=False, **kw)
    monkeypatch.undo()
    _, fd, _, _ = data
    small = {8: fd[:20, :8] / np.linalg.norm(fd[:20, :8], axis=1, keepdims=True), 16: fd[:20, :16]}
    small[16] = small[16] / np.linalg.norm(small[16], axis=1, keepdims=True)
    write_shard_folder(tmp_path / "small", small, shard_rows=10)
    summary = bulk_load(tmp_path / "small", tmp_path / "idx", backend, progress=False, **kw)
    assert (summary["loaded"], summary["already_loaded"], summary["prefix_dim"], summary["full_dim"]) == (2, 0, 8, 16)
    index, _, _ = open_index_folder(tmp_path / "idx")
    assert len(index) == 20
    index.close()


def test_what_cannot_be_loaded_is_refused_before_anything_is_written(data, shards, tmp_path):
    pd, fd, _, _ = data
    write_shard_folder(tmp_path / "one", {256: fd[:10]})
    with pytest.raises(ValueError, match=r"one: vectors of one dim \(256\).*encode with --dim PREFIX,FULL"):
        bulk_load(tmp_path / "one", tmp_path / "idx", progress=False)
    with pytest.raises(ValueError, match=r"docs: no 32-dim prefix below the 256-dim vectors \(encoded at 64, 256\)"):
        bulk_load(shards, tmp_path / "idx", prefix_dim=32, progress=False)
    with pytest.raises(ValueError, match=r"a bulk load goes to .*, not 'qdrant'"):
        bulk_load(shards, tmp_path / "idx", "qdrant", progress=False)
    with pytest.raises(ValueError, match=r"the pgvector backend needs --url"):
        bulk_load(shards, tmp_path / "idx", "pgvector", progress=False)
    write_shard_folder(tmp_path / "half", {64: pd[:10], 256: fd[:10]})
    manifest = json.loads((tmp_path / "half" / "manifest.json").read_text())
    (tmp_path / "half" / "manifest.json").write_text(json.dumps(manifest | {"complete": False}))
    with pytest.raises(DataError, match=r"half: the encoding job has not finished"):
        bulk_load(tmp_path / "half", tmp_path / "idx", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half", "one"]


def test_texts_come_from_the_inputs_while_they_are_unchanged(data, tmp_path):
    pd, fd, _, _ = data
    docs = tmp_path / "docs.txt"
    docs.write_text("".join(f"text {i}\n" for i in range(300)))
    settings = {"inputs": fingerprint_inputs([docs]), "text_col": "text", "id_col": "id", "model": "/runs/model"}
    settings["dial"] = 0.5  # encoded at a dial: steer search encodes its queries there too
    settings["backbone"] = "all-MiniLM-L6-v2@max_seq_length=8"  # and with the backbone's settings
    ids = [f"doc-{i}" for i in range(300)]
    write_shard_folder(tmp_path / "shards", {64: pd[:300], 256: fd[:300]}, ids=ids, shard_rows=100, settings=settings)
    summary = bulk_load(tmp_path / "shards", tmp_path / "idx", progress=False)
    _, meta, texts = open_index_folder(tmp_path / "idx")
    assert summary["texts"] == "inputs" and "note" not in summary
    assert texts == [f"text {i}" for i in range(300)] and (meta["model"], meta["dial"]) == ("/runs/model", 0.5)
    assert meta["backbone"] == "all-MiniLM-L6-v2@max_seq_length=8"
    docs.write_text("changed\n")
    summary = bulk_load(tmp_path / "shards", tmp_path / "again", progress=False)
    assert summary["texts"] == "ids" and summary["note"].startswith(f"{docs}: missing or changed")
    assert open_index_folder(tmp_path / "again")[2] == ids


def test_the_copy_stream_is_what_postgresql_reads(request, data):
    """The binary COPY rows read back as the float32 vectors they were made from."""
    require("psycopg", "pgvector")
    psycopg = pytest.importorskip("psycopg")
    url = request.getfixturevalue("postgres_url")
    pd, fd, _, _ = data
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE copied (id bigint, prefix vector(64), embedding vector(256))")
        with conn.cursor() as cur, cur.copy("COPY copied (id, prefix, embedding) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(copy_binary(np.array([7, 2**40]), pd[:2], fd[:2]))
        rows = conn.execute("SELECT id, prefix::text, embedding::text FROM copied ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [7, 2**40]
    np.testing.assert_array_equal(np.array([json.loads(r[1]) for r in rows], np.float32), pd[:2])
    np.testing.assert_array_equal(np.array([json.loads(r[2]) for r in rows], np.float32), fd[:2])


def test_steer_index_loads_a_shard_folder(shards, data, tmp_path, capsys):
    from steerable.cli import main

    pd, fd, pq, fq = data
    assert main(["index", "--shards", str(shards), "--out", str(tmp_path / "idx"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3000 documents" in out and "6 shards" in out and "backend embedded" in out
    index, meta, _ = open_index_folder(tmp_path / "idx")
    assert (meta["prefix_dim"], meta["full_dim"]) == (64, 256)
    np.testing.assert_array_equal(index.search(pq, fq)[0], EmbeddedIndex.load(tmp_path / "idx").search(pq, fq)[0])
    args = ["index", "--shards", str(shards), "--out", str(tmp_path / "new")]
    with pytest.raises(SystemExit):
        main([*args, "--texts", "docs.txt"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert main([*args, "--model", "run"]) == 2
    assert "--shards holds the vectors" in capsys.readouterr().err
    assert main([*args, "--prefix-dim", "32"]) == 2
    assert "no 32-dim prefix" in capsys.readouterr().err
    write_index_folder(tmp_path / "plain", pd[:5], fd[:5], ["t"] * 5)
    assert main(["index", "--shards", str(shards), "--out", str(tmp_path / "plain")]) == 2
    assert "already an index folder" in capsys.readouterr().err
