"""Shared data of the engine tests: a few thousand clustered documents and their queries."""

import numpy as np
import pytest

from steerable.search import EmbeddedIndex, overlap_at_k


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n_docs=3000, n_queries=50, seed=0):
    """(doc prefixes 64-d, doc full vectors 256-d, query prefixes, query full vectors): clusters that
    show in the first 64 dims, so the prefix shortlists well but not perfectly."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 256))
    centres[:, 64:] *= 0.3

    def sample(n):
        return unit(centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, 256)))

    docs, queries = sample(n_docs), sample(n_queries)
    return unit(docs[:, :64]), docs, unit(queries[:, :64]), queries


def adaptive_margin(embedded, q_prefix):
    """A margin halfway between two queries' prefix top-1/top-2 gaps, so no query sits on it."""
    gaps = np.sort(-np.diff(embedded.search_prefix(q_prefix, 2)[1], axis=1)[:, 0])
    mid = len(gaps) // 2
    return float(gaps[mid - 1] + gaps[mid]) / 2


def assert_same_answers(embedded, other, pq, fq, shortlist=100):
    """The same top 10 (and scores to float rounding) for exact, funnel, prefix-alone and adaptive
    search as the embedded backend."""
    for sl in (None, shortlist):
        a, sa = embedded.search(pq, fq, k=10, shortlist=sl)
        b, sb = other.search(pq, fq, k=10, shortlist=sl)
        np.testing.assert_array_equal(b, a)
        np.testing.assert_allclose(sb, sa, atol=1e-5)
    np.testing.assert_array_equal(other.search_prefix(pq, 10)[0], embedded.search_prefix(pq, 10)[0])
    margin = adaptive_margin(embedded, pq)
    a, _, ea = embedded.adaptive(pq, fq, k=10, shortlist=shortlist, margin=margin)
    b, _, eb = other.adaptive(pq, fq, k=10, shortlist=shortlist, margin=margin)
    assert 0 < ea.sum() < len(ea)
    np.testing.assert_array_equal(eb, ea)
    np.testing.assert_array_equal(b, a)


@pytest.fixture(scope="module")
def data():
    return clustered()


@pytest.fixture(scope="module")
def embedded(data):
    """The embedded index of ``data``'s documents, the answers every engine is compared with."""
    pd, fd, _, _ = data
    index = EmbeddedIndex(64, 256)
    index.add(pd, fd)
    return index


@pytest.fixture(scope="module")
def embedded_binary(data):
    """The embedded index with the prefix as sign bits: the answers the engines' binary indexes are
    compared with."""
    pd, fd, _, _ = data
    index = EmbeddedIndex(64, 256, quantize="binary")
    index.add(pd, fd)
    return index


def assert_binary_answers(embedded_binary, other, pq, fq):
    """An engine's binary funnel against the embedded one: with a shortlist of 300 documents the same
    top 10; with 100 (where the Hamming distance ties at the cut and each engine keeps its own tied
    documents) at least 99 % of it; the prefix's own top 10 at the same Hamming distances."""
    every, _ = embedded_binary.search(pq, fq, k=10, shortlist=300)
    np.testing.assert_array_equal(other.search(pq, fq, k=10, shortlist=300)[0], every)
    short, _ = embedded_binary.search(pq, fq, k=10, shortlist=100)
    assert overlap_at_k(other.search(pq, fq, k=10, shortlist=100)[0], short) >= 0.99
    _, want = embedded_binary.search_prefix(pq, 10)
    _, got = other.search_prefix(pq, 10)
    np.testing.assert_allclose(got, want, atol=1e-6)
