"""steerable.search.qdrant on Qdrant's own engine (qdrant-edge-py, in process): the same answers as
the embedded backend, and collections that are never silently recreated."""

import numpy as np
import pytest

from steerable.search import QdrantEdgeIndex, QdrantIndex, open_index_folder, write_index_folder

from conftest import require
from engines import assert_binary_answers, assert_same_answers, data, embedded, embedded_binary  # noqa: F401

require("qdrant_edge", "search")


@pytest.fixture(scope="module")
def edge(data, tmp_path_factory):
    pd, fd, _, _ = data
    index = QdrantEdgeIndex(64, 256, path=tmp_path_factory.mktemp("edge") / "docs", ef_search=1000)
    index.add(pd, fd)
    yield index
    index.close()


def test_the_engine_searches_a_graph_on_the_prefix(edge):
    info = edge.shard.info()
    assert len(edge) == info.points_count == 3000
    assert info.indexed_vectors_count >= 3000  # the optimizer built the prefix's graph


@pytest.mark.parametrize("exact", [False, True], ids=["hnsw ef 1000", "exact scan"])
def test_qdrant_edge_returns_the_embedded_top_10(edge, embedded, data, exact):
    """The HNSW graph searched with efSearch 1000 over 3,000 documents finds the exact prefix
    shortlist here; ``exact=True`` makes Qdrant scan instead of walking the graph."""
    _, _, pq, fq = data
    edge.exact = exact
    try:
        assert_same_answers(embedded, edge, pq, fq)
    finally:
        edge.exact = False


def test_binary_quantisation_ranks_the_shortlist_by_sign_bits(data, embedded, embedded_binary, tmp_path):
    """``quantize="binary"``: Qdrant's binary quantisation (kept in memory, no rescoring) ranks the
    shortlist, the float vectors stay on disk; scores as the embedded binary index gives them."""
    pd, fd, pq, fq = data
    index = QdrantEdgeIndex(64, 256, path=tmp_path / "bits", ef_search=1000, quantize="binary")
    index.add(pd, fd)
    assert_binary_answers(embedded_binary, index, pq, fq)
    index.close()
    again = QdrantEdgeIndex(64, 256, path=tmp_path / "bits", create=False, quantize="binary", ef_search=1000)
    np.testing.assert_array_equal(
        again.search(pq, fq, shortlist=300)[0], embedded_binary.search(pq, fq, shortlist=300)[0]
    )
    again.exact = True  # Qdrant's exact search ignores quantisation: it scans the float prefix
    np.testing.assert_array_equal(again.search_prefix(pq, 10)[0], embedded.search_prefix(pq, 10)[0])
    again.close()


def test_a_shard_reopens_with_the_same_answers(data, tmp_path):
    pd, fd, pq, fq = data
    index = QdrantEdgeIndex(64, 256, path=tmp_path / "docs")
    index.add(pd[:500], fd[:500], ids=np.arange(500) * 3)
    before = index.search(pq, fq, shortlist=50)
    index.close()
    again = QdrantEdgeIndex(64, 256, path=tmp_path / "docs", create=False)
    assert len(again) == 500
    after = again.search(pq, fq, shortlist=50)
    np.testing.assert_array_equal(after[0], before[0])
    assert set(after[0].ravel()) <= set(range(0, 1500, 3))
    again.close()


def test_an_existing_collection_is_refused_unless_overwritten(data, tmp_path):
    pd, fd, _, _ = data
    QdrantEdgeIndex(64, 256, path=tmp_path / "docs").close()
    with pytest.raises(ValueError, match=r"docs: Qdrant Edge collection already exists; pass --overwrite"):
        QdrantEdgeIndex(64, 256, path=tmp_path / "docs")
    with pytest.raises(ValueError, match=r"nowhere: no Qdrant Edge collection there"):
        QdrantEdgeIndex(64, 256, path=tmp_path / "nowhere", create=False)
    local = QdrantIndex(64, 256, path=str(tmp_path / "local"), collection="docs")
    local.close()
    with pytest.raises(ValueError, match=r"collection 'docs' already exists; pass --overwrite to replace it"):
        QdrantIndex(64, 256, path=str(tmp_path / "local"), collection="docs")
    with pytest.raises(ValueError, match=r"no collection 'other'"):
        QdrantIndex(64, 256, path=str(tmp_path / "local"), collection="other", create=False)
    with pytest.raises(ValueError, match=r"Qdrant collection name 'a/b'"):
        QdrantIndex(64, 256, collection="a/b")


def test_index_folders_on_qdrant_edge(data, embedded, tmp_path):
    pd, fd, pq, fq = data
    texts = [f"doc {i}" for i in range(len(pd))]
    write_index_folder(tmp_path / "idx", pd, fd, texts, backend="qdrant-edge", collection="news").close()
    assert (tmp_path / "idx" / "qdrant-edge" / "news").is_dir()
    assert not list((tmp_path / "idx" / "qdrant-edge").glob(".*"))  # nothing left of the build
    index, meta, again = open_index_folder(tmp_path / "idx")
    assert (meta["backend"], meta["collection"], again) == ("qdrant-edge", "news", texts)
    index.ef_search = 1000
    np.testing.assert_array_equal(index.search(pq, fq, shortlist=100)[0], embedded.search(pq, fq, shortlist=100)[0])
    index.close()
    with pytest.raises(ValueError, match=r"idx: already an index folder; pass --overwrite to replace it"):
        write_index_folder(tmp_path / "idx", pd, fd, texts, backend="qdrant-edge", collection="news")
    write_index_folder(
        tmp_path / "idx", pd[:100], fd[:100], texts[:100], backend="qdrant-edge", collection="news", overwrite=True
    ).close()
    index, meta, _ = open_index_folder(tmp_path / "idx")
    assert len(index) == meta["count"] == 100
    index.close()


def test_a_binary_index_folder_on_qdrant_edge(data, embedded_binary, tmp_path):
    pd, fd, pq, fq = data
    texts = [f"doc {i}" for i in range(len(pd))]
    write_index_folder(tmp_path / "idx", pd, fd, texts, backend="qdrant-edge", quantize="binary").close()
    index, meta, _ = open_index_folder(tmp_path / "idx")
    assert meta["quantize"] == index.quantize == "binary"
    index.ef_search = 1000
    want, _ = embedded_binary.search(pq, fq, shortlist=300)
    np.testing.assert_array_equal(index.search(pq, fq, shortlist=300)[0], want)
    index.close()
