"""steerable.search.binary: a first stage in the prefix's sign bits, and binary index folders."""

import json

import numpy as np
import pytest

from steerable.cli import main
from steerable.search import (
    BinaryStage,
    EmbeddedIndex,
    QuantizedPrefix,
    open_index_folder,
    overlap_at_k,
    sign_bits,
    write_index_folder,
)

from engines import unit


@pytest.fixture(scope="module")
def data():
    """600 documents in 20 clusters; the 16-d prefix is the renormalised truncation of the 64-d vector."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 64))
    docs = centres[rng.integers(0, 20, 600)] + 0.4 * rng.normal(size=(600, 64))
    queries = centres[rng.integers(0, 20, 30)] + 0.4 * rng.normal(size=(30, 64))
    full_d, full_q = unit(docs), unit(queries)
    return unit(full_d[:, :16]), full_d, unit(full_q[:, :16]), full_q


def _hamming(a_bits, b_bits):
    return np.unpackbits(a_bits[:, None, :] ^ b_bits[None, :, :], axis=-1).sum(-1)


def test_sign_bits_and_the_hamming_ranking(data):
    pd, _, pq, _ = data
    bits = sign_bits(pd)
    assert bits.shape == (600, 2) and bits.dtype == np.uint8
    np.testing.assert_array_equal(np.unpackbits(bits, axis=1), (pd > 0).astype(np.uint8))
    stage = BinaryStage(16)
    stage.add(pd)
    rows, scores = stage.search(pq, 10)
    distance = _hamming(sign_bits(pq), bits)
    # the scan returns the 10 smallest distances (which of equal ones is FAISS's choice)
    np.testing.assert_array_equal(np.take_along_axis(distance, rows, axis=1), np.sort(distance, axis=1)[:, :10])
    np.testing.assert_allclose(scores, 1 - 2 * np.sort(distance, axis=1)[:, :10] / 16)
    # rerank over given candidates: by distance, ties to the lower row
    cand = np.tile(np.arange(50), (len(pq), 1))[:, ::-1].copy()
    r_rows, r_scores = stage.rerank(pq, cand, 5)
    d50 = distance[:, :50]
    expected = np.lexsort((np.tile(np.arange(50), (len(pq), 1)), d50), axis=1)[:, :5]
    np.testing.assert_array_equal(r_rows, expected)
    assert (np.diff(r_scores, axis=1) <= 0).all()


def test_binary_funnel_is_exact_with_every_document_and_close_with_a_shortlist(data):
    pd, fd, pq, fq = data
    exact, binary = EmbeddedIndex(16, 64), EmbeddedIndex(16, 64, quantize="binary")
    for index in (exact, binary):
        index.add(pd, fd)
    truth, _ = exact.search(pq, fq, k=10)
    every, _ = binary.search(pq, fq, k=10, shortlist=600)
    np.testing.assert_array_equal(every, truth)
    short, _ = binary.search(pq, fq, k=10, shortlist=150)
    recall = overlap_at_k(short, truth)
    assert recall >= 0.9, recall
    memory = binary.memory_bytes()
    assert memory["prefix_bits"] == 600 * 2 and "prefix" not in memory


def test_a_saved_binary_index_reads_its_full_vectors_from_disk(data, tmp_path):
    pd, fd, pq, fq = data
    for hnsw in (False, True):
        index = EmbeddedIndex(16, 64, quantize="binary", hnsw=hnsw, hnsw_m=8)
        index.add(pd, fd, ids=np.arange(100, 700))
        folder = tmp_path / f"hnsw{hnsw}"
        index.save(folder)
        loaded = EmbeddedIndex.load(folder)
        assert isinstance(loaded.prefix, BinaryStage) and loaded.quantize == "binary"
        assert isinstance(loaded.full.vectors, np.memmap)  # on disk, read as the rerank needs it
        for shortlist in (None, 80):
            a, sa = index.search(pq, fq, k=10, shortlist=shortlist)
            b, sb = loaded.search(pq, fq, k=10, shortlist=shortlist)
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(sa, sb)
        assert json.loads((folder / "index.json").read_text())["quantize"] == "binary"
    # saved again from a loaded index: the full vectors are linked to the file they are read from, not copied
    loaded = EmbeddedIndex.load(tmp_path / "hnswFalse")
    loaded.save(tmp_path / "again")
    assert (tmp_path / "again" / "full.npy").samefile(tmp_path / "hnswFalse" / "full.npy")
    np.testing.assert_array_equal(
        EmbeddedIndex.load(tmp_path / "again").search(pq, fq, k=10)[0], loaded.search(pq, fq, k=10)[0]
    )
    loaded.save(tmp_path / "hnswFalse")  # into its own folder: the file stays as it is
    assert np.load(tmp_path / "hnswFalse" / "full.npy").shape == (600, 64)
    (tmp_path / "hnswFalse" / "full.npy").unlink()  # a link of its own: the other folder keeps its vectors
    assert np.load(tmp_path / "again" / "full.npy").shape == (600, 64)
    (tmp_path / "hnswFalse" / "full.npy").write_bytes(b"")
    with pytest.raises(ValueError):
        EmbeddedIndex.load(tmp_path / "hnswFalse")


def test_binary_needs_whole_bytes_and_a_backend_that_has_it(data, tmp_path):
    pd, fd, _, _ = data
    with pytest.raises(ValueError, match="multiple of 8"):
        EmbeddedIndex(12, 64, quantize="binary")
    with pytest.raises(ValueError, match="unknown quantization"):
        EmbeddedIndex(16, 64, quantize="int4")
    with pytest.raises(ValueError, match="qdrant-edge and pgvector backends, not qdrant$"):
        write_index_folder(tmp_path / "q", pd, fd, ["t"] * 600, backend="qdrant", quantize="binary")
    assert not (tmp_path / "q").exists()


def test_steer_index_quantize_binary(data, tmp_path, capsys):
    pd, fd, pq, fq = data
    np.savez(tmp_path / "emb.npz", prefix=pd, full=fd)
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"document {i}\n" for i in range(600)))
    out = tmp_path / "idx"
    assert (
        main(
            [
                "index",
                "--texts",
                str(texts),
                "--embeddings",
                str(tmp_path / "emb.npz"),
                "--quantize",
                "binary",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert "sign bits" in capsys.readouterr().out
    index, meta, names = open_index_folder(out)
    assert meta["quantize"] == "binary" and len(names) == 600
    assert isinstance(index, EmbeddedIndex) and isinstance(index.prefix, BinaryStage)
    assert (out / "full.npy").exists()
    base = ["index", "--texts", str(texts), "--embeddings", str(tmp_path / "emb.npz"), "--quiet"]
    assert main(base + ["--rescore", "int8", "--out", str(tmp_path / "no")]) == 2
    assert "--rescore int8 reranks a binary shortlist: it needs --quantize binary" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    args = base + ["--quantize", "binary", "--rescore", "float16", "--oversample", "3", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    index, meta, _ = open_index_folder(tmp_path / "r")
    assert meta["rescore"] == index.rescore == "float16" and index.oversample == 3


@pytest.mark.parametrize("kind, tolerance, clipped", [("float16", 1e-3, 1e-3), ("int8", 0.01, 0.05)])
def test_the_quantised_prefix_scores_as_the_float_one(data, kind, tolerance, clipped):
    pd, _, pq, _ = data
    middle = QuantizedPrefix(16, kind)
    middle.add(pd[:300])
    middle.add(pd[300:])  # int8: scaled by the first documents, the rest clipped to them
    cand = np.tile(np.arange(600), (len(pq), 1))
    rows, scores = middle.rerank(pq, cand, 600)
    error = np.abs(scores - np.take_along_axis(pq @ pd.T, rows, axis=1))
    assert error[rows < 300].max() < tolerance and error.max() < clipped
    assert middle.nbytes() == 600 * 16 * (2 if kind == "float16" else 1) + (16 * 4 if kind == "int8" else 0)


def test_a_rescored_binary_shortlist_reads_fewer_full_vectors_for_the_same_recall(data, tmp_path):
    """The bits shortlist four times K, the int8 prefix keeps the best K for the full rerank: on these
    documents that recovers at K = 40 what the bits alone need K = 150 for."""
    pd, fd, pq, fq = data
    exact, bits = EmbeddedIndex(16, 64), EmbeddedIndex(16, 64, quantize="binary")
    rescored = EmbeddedIndex(16, 64, quantize="binary", rescore="int8", oversample=4)
    for index in (exact, bits, rescored):
        index.add(pd, fd)
    truth, _ = exact.search(pq, fq, k=10)

    def recall(index, K):
        rows, _ = index.search(pq, fq, k=10, shortlist=K)
        return overlap_at_k(rows, truth)

    assert recall(bits, 40) < 0.9 < recall(rescored, 40) and recall(bits, 150) < recall(rescored, 40) + 0.02
    assert set(rescored.memory_bytes()) == {"prefix_bits", "prefix_int8", "full"}
    rescored.save(tmp_path / "idx")
    loaded = EmbeddedIndex.load(tmp_path / "idx")
    assert (loaded.rescore, loaded.oversample) == ("int8", 4)
    for K in (None, 40):
        np.testing.assert_array_equal(loaded.search(pq, fq, shortlist=K)[0], rescored.search(pq, fq, shortlist=K)[0])
    with pytest.raises(ValueError, match="needs quantize='binary'"):
        EmbeddedIndex(16, 64, rescore="int8")
    with pytest.raises(ValueError, match="needs --quantize binary and the embedded or faiss backend"):
        write_index_folder(
            tmp_path / "p", pd, fd, ["t"] * 600, backend="qdrant-edge", quantize="binary", rescore="int8"
        )
    assert not (tmp_path / "p").exists()
