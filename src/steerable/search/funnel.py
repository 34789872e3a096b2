"""The two search rules over a short prefix and a full vector, written once for every backend.

- **funnel** (multi-stage): the ``shortlist`` documents nearest by the prefix, reranked by the full
  vector. A shortlist of every document is exact full-vector search.
- **adaptive**: the prefix answers the queries it is confident about. A query is confident when its
  prefix top-1 similarity beats its top-2 by at least ``margin`` (with a single document the gap
  counts as +inf) and is answered by the prefix ranking as it stands; every other query is
  *extended*: its shortlist is reranked by the full vector, exactly as in the funnel. So
  ``margin=inf`` extends every query and ``margin=-inf`` none.

A rule works on two :class:`Stage` s, one per vector: anything that can rank documents for queries
and rerank given candidates. :class:`Exact` is the in-memory one (used by the retrieval metrics and
the embedded index); an index backend may bring its own (an HNSW graph, a server).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .ranking import rank, rerank


class Stage(Protocol):
    """Ranks documents by one of their vectors; rows are positions, -1 = no document."""

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class Exact:
    """Exact search over unit-length vectors held in memory."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rank(queries, self.vectors, k)

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rerank(queries, self.vectors, candidates, k)


def checked(name: str, x: np.ndarray, dim: int) -> np.ndarray:
    """``x`` as a contiguous float32 (n, dim) array, or a ValueError naming it."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {x.shape}")
    return x


def _check_shortlist(shortlist: int, k: int, n_docs: int) -> int:
    shortlist = min(shortlist, n_docs)
    if shortlist < min(k, n_docs):
        raise ValueError(f"shortlist {shortlist} is smaller than k={k}")
    return shortlist


def funnel(
    prefix: Stage, full: Stage, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, full-vector similarities), each (n_queries, k): the prefix shortlists, the full
    vector reranks."""
    shortlist = _check_shortlist(shortlist, k, len(prefix))
    candidates, _ = prefix.search(q_prefix, shortlist)
    return full.rerank(q_full, candidates, k)


def adaptive(
    prefix: Stage,
    full: Stage,
    q_prefix: np.ndarray,
    q_full: np.ndarray,
    k: int = 10,
    shortlist: int = 100,
    margin: float = 0.02,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, similarities, extended): confident queries get the prefix ranking (and prefix
    similarities), the others the funnel's answer from the same shortlist; ``extended`` marks them."""
    shortlist = _check_shortlist(max(shortlist, 2), k, len(prefix))
    candidates, sims = prefix.search(q_prefix, shortlist)
    gap = sims[:, 0] - sims[:, 1] if candidates.shape[1] > 1 else np.full(len(candidates), np.inf)
    extended = ~(gap >= margin)
    width = min(k, candidates.shape[1])
    rows, scores = candidates[:, :width].copy(), sims[:, :width].copy()
    if extended.any():
        rows[extended], scores[extended] = full.rerank(q_full[extended], candidates[extended], k)
    return rows, scores, extended
