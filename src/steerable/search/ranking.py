"""Exact ranking of unit-length vectors by inner product: the one top-k, exact search and rerank.

Every ranking here follows one rule: best first, and among equal similarities the lower document
(row) index first. Rankings are ``(n_queries, k)`` arrays of row positions with their similarities.
Memory stays bounded whatever the number of queries: similarities are computed a chunk of queries at
a time.
"""

from __future__ import annotations

import numpy as np
import torch

_RERANK_BUDGET = 1 << 22  # candidate scores held at once while reranking tied queries


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, values) of each row's ``min(k, width)`` largest entries, best first; ties go to the
    lower column. Entries may be -inf (excluded), not NaN.

    Short rows are sorted whole (a stable sort keeps tied columns in order). Long rows go through
    ``torch.topk`` for k + 1 entries: the k it finds are right unless the (k+1)-th value equals the
    k-th, and only such rows are redone by the rule (everything above the k-th value, then the
    leftmost entries equal to it).
    """
    scores = np.asarray(scores)
    rows, width = scores.shape
    k = min(k, width)
    if 4 * k >= width or rows * width <= 4096:
        cols = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return cols, np.take_along_axis(scores, cols, axis=1)
    s = torch.from_numpy(scores)
    tvals, tcols = torch.topk(s, k + 1, dim=1)
    cut = torch.nonzero(tvals[:, k] == tvals[:, k - 1]).flatten()  # a tie across the boundary
    tcols = tcols[:, :k]
    if len(cut):
        sc, thr = s[cut], tvals[cut, k - 1 : k]
        above, equal = sc > thr, sc == thr
        keep = above | (equal & (torch.cumsum(equal, dim=1) <= k - above.sum(1, keepdim=True)))
        tcols[cut] = torch.nonzero(keep)[:, 1].view(len(cut), k)
    cols = torch.sort(tcols, dim=1).values.numpy()
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(vals, order, axis=1)


def rank(
    queries: np.ndarray, docs: np.ndarray, k: int, *, exclude_self: bool = False, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, similarities), each (n_queries, min(k, n_docs)): every query's nearest documents.

    ``exclude_self``: queries and documents are the same rows and a row is not its own neighbour
    (leave-one-out); then at most ``n_docs - 1`` are returned.
    """
    q, d = _tensor(queries), _tensor(docs)
    k = max(0, min(k, len(d) - exclude_self))
    idx = np.empty((len(q), k), dtype=np.int64)
    sim = np.empty((len(q), k), dtype=np.float32)
    for s in range(0, len(q), chunk):
        sims = q[s : s + chunk] @ d.T
        if exclude_self:
            rows = torch.arange(len(sims))
            sims[rows, rows + s] = -torch.inf
        idx[s : s + chunk], sim[s : s + chunk] = top_k(sims.numpy(), k)
    return idx, sim


def rerank(queries: np.ndarray, docs: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, similarities), each (n_queries, min(k, width)): the k candidates of each query most
    similar to it by ``docs``, best first, ties to the lower row. Candidates are row positions into
    ``docs``; -1 marks a missing one (an approximate index that found fewer), returned only when
    nothing else is left, as row -1 with similarity -inf.

    FAISS scores the candidate rows in place (no copy of the gathered vectors) and keeps the best
    k + 1 in a heap, which leaves the order of equal scores open: the few queries with a tie among
    them are ranked again by the rule (:func:`top_k` over every candidate's score).
    """
    cand = np.ascontiguousarray(candidates, dtype=np.int64)
    nq, width = cand.shape
    q = np.ascontiguousarray(queries, dtype=np.float32)
    docs = np.ascontiguousarray(docs, dtype=np.float32)
    if q.shape != (nq, docs.shape[1]):
        raise ValueError(f"queries must have shape ({nq}, {docs.shape[1]}), got {q.shape}")
    k = min(k, width)
    kk = min(k + 1, width)
    sims, rows = np.empty((nq, kk), dtype=np.float32), np.empty((nq, kk), dtype=np.int64)
    import faiss  # imported where used: training and encoding never load it

    ptr = faiss.swig_ptr
    faiss.knn_inner_products_by_idx(  # type: ignore[attr-defined]  # FAISS's C++ functions have no stubs
        ptr(q), ptr(docs), ptr(cand), docs.shape[1], nq, len(docs), width, kk, ptr(sims), ptr(rows), width
    )
    sims[rows < 0] = -np.inf
    tied = np.flatnonzero((sims[:, 1:] == sims[:, :-1]).any(axis=1))  # (consecutive misses tie too)
    rows, sims = rows[:, :k], sims[:, :k]
    for s in range(0, len(tied), _RERANK_BUDGET // max(1, width)):
        t = tied[s : s + _RERANK_BUDGET // max(1, width)]
        c = np.sort(cand[t], axis=1)  # column order == row order, for the tie rule
        qt, ids = q[t], np.maximum(c, 0)  # named: FAISS reads them through raw pointers
        scores = np.empty(c.shape, dtype=np.float32)
        faiss.fvec_inner_products_by_idx(  # type: ignore[attr-defined]
            ptr(scores), ptr(qt), ptr(docs), ptr(ids), docs.shape[1], len(t), width
        )
        scores[c < 0] = -np.inf
        cols, sims[t] = top_k(scores, k)
        rows[t] = np.take_along_axis(c, cols, axis=1)
    return rows, sims


def truncate(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The renormalised first ``dim`` dims of each row: the prefix of a Matryoshka-style vector."""
    prefix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[:, :dim])
    return prefix / np.maximum(np.linalg.norm(prefix, axis=1, keepdims=True), 1e-12)
