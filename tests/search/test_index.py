"""steerable.search.index: exact, funnel and adaptive answers, and the same top 10 from every backend."""

import numpy as np
import pytest

from steerable.search.index import HNSW, EmbeddedIndex, QdrantIndex, build_index


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 32))
    docs = centres[rng.integers(0, 20, 600)] + 0.5 * rng.normal(size=(600, 32))
    queries = centres[rng.integers(0, 20, 25)] + 0.5 * rng.normal(size=(25, 32))
    full_d, full_q = _unit(docs), _unit(queries)
    return _unit(full_d[:, :8]), full_d, _unit(full_q[:, :8]), full_q


def test_exact_search_is_brute_force_cosine(data):
    pd, fd, pq, fq = data
    index = EmbeddedIndex(8, 32)
    index.add(pd, fd)
    ids, scores = index.search(pq, fq, k=10)
    expected = np.argsort(-(fq @ fd.T), axis=1)[:, :10]
    np.testing.assert_array_equal(ids, expected)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_multistage_with_every_document_shortlisted_equals_exact(data):
    pd, fd, pq, fq = data
    index = EmbeddedIndex(8, 32)
    index.add(pd, fd, ids=np.arange(1000, 1600))
    exact, _ = index.search(pq, fq, k=10)
    funnel, _ = index.search(pq, fq, k=10, shortlist=600)
    np.testing.assert_array_equal(funnel, exact)
    assert exact.min() >= 1000


def test_hnsw_shortlist_finds_the_prefix_neighbours(data):
    pd, fd, pq, fq = data
    flat, graph = EmbeddedIndex(8, 32), build_index("faiss", 8, 32)
    flat.add(pd, fd)
    graph.add(pd, fd)
    a, _ = flat.search(pq, fq, k=10, shortlist=50)
    b, _ = graph.search(pq, fq, k=10, shortlist=50)
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b)])
    assert overlap >= 0.95


def test_embedded_and_qdrant_local_mode_return_the_same_top_10(data):
    pd, fd, pq, fq = data
    embedded, qdrant = EmbeddedIndex(8, 32), QdrantIndex(8, 32)
    for index in (embedded, qdrant):
        index.add(pd, fd)
    assert len(qdrant) == len(embedded) == 600
    for shortlist in (None, 40):
        a, sa = embedded.search(pq, fq, k=10, shortlist=shortlist)
        b, sb = qdrant.search(pq, fq, k=10, shortlist=shortlist)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(sa, sb, atol=1e-5)


def test_adaptive_search_extends_only_unconfident_queries_on_both_backends(data):
    pd, fd, pq, fq = data
    embedded, qdrant = EmbeddedIndex(8, 32), QdrantIndex(8, 32)
    for index in (embedded, qdrant):
        index.add(pd, fd)
    never, _, ext = embedded.adaptive(pq, fq, k=10, shortlist=40, margin=-np.inf)
    assert not ext.any()
    np.testing.assert_array_equal(never, embedded.search_prefix(pq, 10)[0])
    always, _, ext = embedded.adaptive(pq, fq, k=10, shortlist=40, margin=np.inf)
    assert ext.all()
    np.testing.assert_array_equal(always, embedded.search(pq, fq, k=10, shortlist=40)[0])
    gaps = np.diff(embedded.search_prefix(pq, 2)[1], axis=1)[:, 0] * -1
    g = np.sort(gaps)
    margin = float(g[12] + g[13]) / 2  # between two queries' gaps: no ties between backends
    a, _, ea = embedded.adaptive(pq, fq, k=10, shortlist=40, margin=margin)
    b, _, eb = qdrant.adaptive(pq, fq, k=10, shortlist=40, margin=margin)
    np.testing.assert_array_equal(ea, gaps < margin)
    assert 0 < ea.sum() < len(ea)
    np.testing.assert_array_equal(ea, eb)
    np.testing.assert_array_equal(a, b)


def test_save_and_load(data, tmp_path):
    pd, fd, pq, fq = data
    index = EmbeddedIndex(8, 32, hnsw=True)
    index.add(pd, fd)
    index.save(tmp_path)
    again = EmbeddedIndex.load(tmp_path)
    for shortlist in (None, 50):
        np.testing.assert_array_equal(
            index.search(pq, fq, shortlist=shortlist)[0], again.search(pq, fq, shortlist=shortlist)[0]
        )


def test_the_hnsw_graph_is_saved_and_read_back_not_rebuilt(data, tmp_path, monkeypatch):
    pd, fd, pq, fq = data
    index = EmbeddedIndex(8, 32, hnsw=True)
    index.add(pd, fd, ids=np.arange(600) + 7)
    index.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "prefix.faiss", "vectors.safetensors"]
    monkeypatch.setattr(HNSW, "add", lambda *a: pytest.fail("the graph was rebuilt"))
    again = EmbeddedIndex.load(tmp_path)
    assert again.prefix.graph.ntotal == len(again) == 600
    assert again.memory_bytes() == index.memory_bytes()
    for shortlist in (None, 50):
        a, sa = index.search(pq, fq, shortlist=shortlist)
        b, sb = again.search(pq, fq, shortlist=shortlist)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(index.adaptive(pq, fq, shortlist=40)[0], again.adaptive(pq, fq, shortlist=40)[0])


def test_a_graph_that_does_not_match_the_vectors_is_refused(data, tmp_path):
    pd, fd, _, _ = data
    small = EmbeddedIndex(8, 32, hnsw=True)
    small.add(pd[:10], fd[:10])
    small.save(tmp_path / "small")
    index = EmbeddedIndex(8, 32, hnsw=True)
    index.add(pd, fd)
    index.save(tmp_path)
    (tmp_path / "small" / "prefix.faiss").replace(tmp_path / "prefix.faiss")
    with pytest.raises(ValueError, match=r"prefix.faiss: a graph of 10 8-d vectors, but the folder holds 600"):
        EmbeddedIndex.load(tmp_path)


def test_bad_shapes_are_refused():
    index = EmbeddedIndex(8, 32)
    with pytest.raises(ValueError, match=r"prefix must have shape \(n, 8\), got \(3, 7\)"):
        index.add(np.zeros((3, 7)), np.zeros((3, 32)))
    with pytest.raises(ValueError, match="unknown backend 'annoy'"):
        build_index("annoy", 8, 32)
