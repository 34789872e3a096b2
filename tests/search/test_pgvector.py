"""steerable.search.pgvector against a real PostgreSQL server with pgvector, started by the tests
(``postgres_url`` in conftest)."""

import numpy as np
import pytest

from steerable.search import PgvectorIndex, open_index_folder, write_index_folder
from steerable.search.pgvector import safe_url

from conftest import require
from engines import assert_binary_answers, assert_same_answers, data, embedded, embedded_binary  # noqa: F401

require("psycopg", "pgvector")


@pytest.fixture(scope="module")
def url(postgres_url):
    return postgres_url


@pytest.fixture(scope="module")
def table(url, data):
    pd, fd, _, _ = data
    index = PgvectorIndex(64, 256, url=url, table="docs", ef_search=1000)
    index.add(pd, fd)
    yield index
    index.close()


def test_the_funnel_is_one_statement_that_walks_the_hnsw_index(table, data):
    _, _, pq, fq = data
    assert len(table) == 3000
    plan = table.explain(pq, fq, shortlist=100)
    assert "Index Scan using docs_prefix_hnsw on docs" in plan
    table.exact = True
    try:
        assert "Index Scan" not in table.explain(pq, fq, shortlist=100)
    finally:
        table.exact = False


@pytest.mark.parametrize("exact", [False, True], ids=["hnsw ef_search 1000", "exact scan"])
def test_pgvector_returns_the_embedded_top_10(table, embedded, data, exact):
    """HNSW searched with ef_search 1000 over 3,000 documents finds the exact prefix shortlist here;
    ``exact=True`` turns index scans off, so PostgreSQL scans the table."""
    _, _, pq, fq = data
    table.exact = exact
    try:
        assert_same_answers(embedded, table, pq, fq)
    finally:
        table.exact = False


def test_a_binary_index_ranks_the_shortlist_by_sign_bits(url, data, embedded_binary, tmp_path):
    """``quantize="binary"``: an HNSW index on ``binary_quantize(prefix)::bit(64)`` serves the
    shortlist, scored as the embedded binary index scores it; the table reopens only as binary."""
    pd, fd, pq, fq = data
    index = PgvectorIndex(64, 256, url=url, table="bits", ef_search=1000, quantize="binary")
    index.add(pd, fd)
    plan = index.explain(pq, fq, shortlist=100)
    assert "Index Scan using bits_prefix_bits on bits" in plan and "<~>" in plan
    assert_binary_answers(embedded_binary, index, pq, fq)
    index.close()
    with pytest.raises(ValueError, match=r"table 'bits' has no float index on its prefix"):
        PgvectorIndex(64, 256, url=url, table="bits", create=False)
    with pytest.raises(ValueError, match=r"table 'docs' has no binary \(sign-bit\) index on its prefix"):
        PgvectorIndex(64, 256, url=url, table="docs", create=False, quantize="binary")
    texts = [f"doc {i}" for i in range(len(pd))]
    write_index_folder(
        tmp_path / "idx", pd, fd, texts, backend="pgvector", url=url, collection="bits_folder", quantize="binary"
    ).close()
    again, meta, _ = open_index_folder(tmp_path / "idx")  # reopened as it was built: binary
    assert meta["quantize"] == again.quantize == "binary"
    again.ef_search = 1000
    np.testing.assert_array_equal(
        again.search(pq, fq, shortlist=300)[0], embedded_binary.search(pq, fq, shortlist=300)[0]
    )
    again.close()


def test_shortlists_longer_than_ef_search_are_complete(table, embedded, data):
    _, _, pq, fq = data
    table.ef_search = 40
    try:
        ids, _ = table.prefix.search(pq[:5], 1500)  # past pgvector's ef_search ceiling of 1000
    finally:
        table.ef_search = 1000
    assert (ids >= 0).all() and all(len(set(row)) == 1500 for row in ids)


def test_shortlists_longer_than_the_scan_limit_are_complete(url):
    """pgvector's iterative scan stops after ``hnsw.max_scan_tuples`` (20,000 by default) index tuples;
    a longer shortlist must still come back whole."""
    rng = np.random.default_rng(0)
    full = rng.standard_normal((24_000, 16)).astype(np.float32)
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    prefix = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    index = PgvectorIndex(8, 16, url=url, table="many", hnsw_m=8, ef_construction=16)
    index.add(prefix, full)
    try:
        ids, _ = index.prefix.search(prefix[:2], 22_000)
    finally:
        index.close()
    assert (ids >= 0).all() and all(len(set(row)) == 22_000 for row in ids)


def test_an_existing_table_is_refused_unless_overwritten(url, data):
    pd, fd, _, _ = data
    PgvectorIndex(64, 256, url=url, table="kept").close()
    with pytest.raises(ValueError, match=r"^PostgreSQL at .*: table 'kept' already exists; pass --overwrite"):
        PgvectorIndex(64, 256, url=url, table="kept")
    with pytest.raises(ValueError, match=r"^PostgreSQL at .*: no table 'missing'$"):
        PgvectorIndex(64, 256, url=url, table="missing", create=False)
    with pytest.raises(ValueError, match=r"table 'docs' holds 64-d prefixes and 256-d vectors, not 32 and 256"):
        PgvectorIndex(32, 256, url=url, table="docs", create=False)
    with pytest.raises(ValueError, match=r"pgvector table name 'Bad-Name'"):
        PgvectorIndex(64, 256, url=url, table="Bad-Name")
    index = PgvectorIndex(64, 256, url=url, table="kept", overwrite=True)
    index.add(pd[:10], fd[:10])
    index.close()
    assert len(PgvectorIndex(64, 256, url=url, table="kept", create=False)) == 10


def test_a_failed_build_leaves_the_database_as_it_was(url, data):
    pd, fd, _, _ = data
    index = PgvectorIndex(64, 256, url=url, table="half")
    psycopg = pytest.importorskip("psycopg")
    with pytest.raises(psycopg.Error):
        index.add(pd[:10], fd[:10], ids=[1] * 10)  # duplicate ids: the copy fails
    index.conn.close()
    with pytest.raises(ValueError, match="no table 'half'"):
        PgvectorIndex(64, 256, url=url, table="half", create=False)


def test_a_server_that_is_not_there_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"^cannot connect to PostgreSQL at postgresql://u@/db\?host=.*nowhere: "):
        PgvectorIndex(64, 256, url=f"postgresql://u:secret@/db?host={tmp_path}/nowhere")


def test_index_folders_on_pgvector(url, data, embedded, tmp_path):
    pd, fd, pq, fq = data
    texts = [f"doc {i}" for i in range(len(pd))]
    with pytest.raises(ValueError, match="the pgvector backend needs --url"):
        write_index_folder(tmp_path / "idx", pd, fd, texts, backend="pgvector")
    write_index_folder(tmp_path / "idx", pd, fd, texts, backend="pgvector", url=url, collection="news").close()
    index, meta, again = open_index_folder(tmp_path / "idx")
    assert (meta["backend"], meta["collection"], meta["url"], again) == ("pgvector", "news", safe_url(url), texts)
    index.ef_search = 1000
    np.testing.assert_array_equal(index.search(pq, fq, shortlist=100)[0], embedded.search(pq, fq, shortlist=100)[0])
    index.close()
    with pytest.raises(ValueError, match="table 'news' already exists; pass --overwrite"):
        write_index_folder(tmp_path / "other", pd, fd, texts, backend="pgvector", url=url, collection="news")


def test_steer_index_refuses_an_existing_table_before_encoding(url, data, tmp_path, capsys):
    """The model folder does not exist: an error about the table proves nothing was encoded first."""
    from steerable.cli import main

    pd, fd, _, _ = data
    write_index_folder(
        tmp_path / "idx", pd[:10], fd[:10], ["t"] * 10, backend="pgvector", url=url, collection="taken"
    ).close()
    (tmp_path / "docs.txt").write_text("a\nb\n")
    args = [
        "index",
        "--texts",
        str(tmp_path / "docs.txt"),
        "--model",
        str(tmp_path / "no-such-run"),
        "--backend",
        "pgvector",
        "--url",
        url,
        "--collection",
        "taken",
        "--out",
        str(tmp_path / "new"),
    ]
    assert main(args) == 2
    assert "table 'taken' already exists; pass --overwrite" in capsys.readouterr().err
    assert main(args[:-6] + ["--url", url, "--collection", "free", "--out", str(tmp_path / "new")]) == 2
    assert "no-such-run" in capsys.readouterr().err  # a free table gets as far as the model


def test_a_password_is_not_stored():
    assert (
        safe_url("postgresql://me:s3cret@db.example:5433/app?sslmode=require")
        == "postgresql://me@db.example:5433/app?sslmode=require"
    )
    assert safe_url("postgresql://me@db/app") == "postgresql://me@db/app"
