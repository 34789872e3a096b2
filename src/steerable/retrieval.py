"""Retrieval on a held-out test set: exact top-k search, label metrics, multi-stage and adaptive search.

A test set is split (seeded) into queries and documents; a document is relevant to a query at a
level when they share that level's label. All embeddings are unit-length, so cosine is the dot
product. Rankings are ``(n_queries, k)`` arrays of document indices, best first; similarity ties
go to the lower document index, so every ranking here is deterministic. Similarities are computed
over chunks of queries, so memory stays bounded whatever the number of queries.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch

KS = (1, 5, 10, 20)
MRR_CUTOFF = 100
SHORTLISTS = (10, 20, 50, 100, 200, 500)
_RERANK_BUDGET = 1 << 24  # floats of gathered candidate vectors held at once while reranking


def split_queries(n: int, seed: int = 0, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into (query_idx, doc_idx), each sorted, disjoint and together
    covering every index; ``floor(fraction * n)`` become queries."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    nq = int(np.floor(fraction * n))
    return np.sort(perm[:nq]), np.sort(perm[nq:])


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _topk_stable(sims: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(columns, values) of each row's k largest entries, best first; ties go to the lower column.

    ``torch.topk`` alone leaves the choice among tied values open. Its set is right unless more
    than k entries reach its k-th value; only in such rows, keep everything above that value and
    the leftmost entries equal to it. Then order the k by column and stable-sort by value,
    descending. Entries must be finite.
    """
    rows = len(sims)
    if k == 0:
        return torch.zeros((rows, 0), dtype=torch.long), sims.new_zeros((rows, 0))
    vals, cols = torch.topk(sims, k, dim=1)
    thr = vals[:, -1:]
    cut = torch.nonzero((sims >= thr).sum(1) > k).flatten()  # rows whose boundary tie topk cut
    if len(cut):
        s, t = sims[cut], thr[cut]
        above, equal = s > t, s == t
        keep = above | (equal & (torch.cumsum(equal, dim=1) <= k - above.sum(1, keepdim=True)))
        cols[cut] = torch.nonzero(keep)[:, 1].view(len(cut), k)
    cols = torch.sort(cols, dim=1).values
    vals = torch.gather(sims, 1, cols)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return torch.gather(cols, 1, order), torch.gather(vals, 1, order)


def _rank(queries: np.ndarray, docs: np.ndarray, k: int, chunk: int = 1024
          ) -> tuple[np.ndarray, np.ndarray]:
    """Top-``min(k, n_docs)`` (indices, similarities) per query, chunked over queries."""
    q, d = _tensor(queries), _tensor(docs)
    k = min(k, len(d))
    idx = np.empty((len(q), k), dtype=np.int64)
    sim = np.empty((len(q), k), dtype=np.float32)
    for s in range(0, len(q), chunk):
        cols, vals = _topk_stable(q[s:s + chunk] @ d.T, k)
        idx[s:s + chunk], sim[s:s + chunk] = cols.numpy(), vals.numpy()
    return idx, sim


def rank(queries: np.ndarray, docs: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Indices (n_queries, min(k, n_docs)) of each query's most cosine-similar documents, best
    first, ties to the lower document index; inputs unit-length, ``chunk`` queries at a time."""
    return _rank(queries, docs, k, chunk)[0]


def _rerank(q_full: np.ndarray, d_full: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The k candidates of each row most similar to the query by the full vectors, best first,
    ties to the lower document index; candidates are gathered a bounded number of rows at a time."""
    nq, width = candidates.shape
    k = min(k, width)
    cand = np.sort(candidates, axis=1)  # column order == document order, for the tie rule
    q, d = _tensor(q_full), _tensor(d_full)
    step = max(1, _RERANK_BUDGET // max(1, width * d.shape[1]))
    out = np.empty((nq, k), dtype=np.int64)
    for s in range(0, nq, step):
        c = torch.from_numpy(cand[s:s + step])
        sims = torch.bmm(d[c], q[s:s + step, :, None]).squeeze(-1)
        cols, _ = _topk_stable(sims, k)
        out[s:s + step] = torch.gather(c, 1, cols).numpy()
    return out


def _check_shortlist(shortlist: int, k: int, n_docs: int) -> int:
    shortlist = min(shortlist, n_docs)
    if shortlist < min(k, n_docs):
        raise ValueError(f"shortlist {shortlist} is smaller than k={k}")
    return shortlist


def multistage(q_short: np.ndarray, d_short: np.ndarray, q_full: np.ndarray, d_full: np.ndarray,
               shortlist: int, k: int = 10) -> np.ndarray:
    """Funnel search: the ``shortlist`` best documents by the short prefix, reranked by the full
    vector; returns the top-k indices (n_queries, k). A shortlist of every document gives exact
    full-vector search (up to float rounding of the similarities)."""
    shortlist = _check_shortlist(shortlist, k, len(d_short))
    return _rerank(q_full, d_full, rank(q_short, d_short, shortlist), k)


def overlap_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of the fraction of each row of ``exact`` (the exact top-k) that appears
    anywhere in the same row of ``approx``."""
    if exact.shape[1] == 0:
        return 1.0
    found = (exact[:, :, None] == approx[:, None, :]).any(axis=2)
    return float(found.mean())


def _cutoff(ranked: np.ndarray, d_labels: np.ndarray, k: int) -> int:
    """Columns of ``ranked`` a cutoff of k reads: k, or every document when k exceeds their number."""
    if k > ranked.shape[1] and ranked.shape[1] < len(d_labels):
        raise ValueError(f"cutoff {k} needs a ranking at least that deep, got {ranked.shape[1]}")
    return min(k, ranked.shape[1])


def _matches(ranked: np.ndarray, q_labels: np.ndarray, d_labels: np.ndarray) -> np.ndarray:
    """Bool (n_queries, depth, levels): does the ranked document share the query's label?"""
    return d_labels[ranked] == q_labels[:, None, :]


def recall_at_k(ranked: np.ndarray, q_labels: np.ndarray, d_labels: np.ndarray,
                ks: Sequence[int] = KS) -> dict[int, np.ndarray]:
    """{k: Recall@k per level (shape (levels,))}, labels being (n, levels) arrays.

    Recall@k for label match is the hit rate: the fraction of queries with at least one document
    of the same label at that level among the top k (the original's definition), not the fraction
    of all same-label documents retrieved. A k beyond the number of documents counts every one.
    """
    hits = _matches(ranked, q_labels, d_labels)
    return {k: hits[:, :_cutoff(ranked, d_labels, k)].any(axis=1).mean(axis=0) for k in ks}


def mrr(ranked: np.ndarray, q_labels: np.ndarray, d_labels: np.ndarray,
        cutoff: int = MRR_CUTOFF) -> np.ndarray:
    """Mean reciprocal rank per level (shape (levels,)): 1 / rank of the first same-label document
    within the top ``cutoff`` (rank 1 = best), 0 for a query with none there."""
    hits = _matches(ranked, q_labels, d_labels)[:, :_cutoff(ranked, d_labels, cutoff)]
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0).mean(axis=0)


def _gains(ranked_labels: np.ndarray, q_labels: np.ndarray) -> np.ndarray:
    same_fine = ranked_labels[..., -1] == q_labels[:, None, -1]
    same_coarse = ranked_labels[..., 0] == q_labels[:, None, 0]
    return np.where(same_fine, 2.0, np.where(same_coarse, 1.0, 0.0))


def ndcg_at_k(ranked: np.ndarray, q_labels: np.ndarray, d_labels: np.ndarray, k: int = 10) -> float:
    """Mean nDCG@k with graded hierarchy gains and a log2 discount.

    Gain (linear) of a document for a query: 2 when it shares the finest (last) level's label,
    else 1 when it shares the coarsest (first) level's label, else 0 — so with 3 levels a document
    sharing only the middle and coarse labels gains 1. DCG@k = sum_i gain_i / log2(i + 1) over
    ranks i = 1..k. The ideal DCG places this query's actual gain-2 documents first, then its
    gain-1 documents, counted over all documents, so nDCG <= 1; a query with no document of gain
    above 0 scores 0.
    """
    k = _cutoff(ranked, d_labels, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = _gains(d_labels[ranked[:, :k]], q_labels) @ discount
    # documents per gain for each query, from label counts (no query x document matrix)
    fine, coarse = q_labels[:, -1], q_labels[:, 0]
    nf = int(max(fine.max(initial=0), d_labels[:, -1].max(initial=0))) + 1
    nc = int(max(coarse.max(initial=0), d_labels[:, 0].max(initial=0))) + 1
    n_fine = np.bincount(d_labels[:, -1], minlength=nf)[fine]
    n_coarse = np.bincount(d_labels[:, 0], minlength=nc)[coarse]
    n_both = np.bincount(d_labels[:, 0] * nf + d_labels[:, -1], minlength=nc * nf)[coarse * nf + fine]
    n2, n1 = n_fine, n_coarse - n_both  # gain 2: same fine; gain 1: same coarse, other fine
    pos = np.arange(k)
    ideal_gains = np.where(pos < n2[:, None], 2.0, np.where(pos < (n2 + n1)[:, None], 1.0, 0.0))
    idcg = ideal_gains @ discount
    return float(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0).mean())


def ndcg_at_10(ranked: np.ndarray, q_labels: np.ndarray, d_labels: np.ndarray) -> float:
    """:func:`ndcg_at_k` with k = 10."""
    return ndcg_at_k(ranked, q_labels, d_labels, 10)


def retrieval_metrics(query_embs_by_dim: dict[int, np.ndarray], doc_embs_by_dim: dict[int, np.ndarray],
                      q_labels: np.ndarray, d_labels: np.ndarray, level_names: Sequence[str],
                      ks: Sequence[int] = KS, mrr_cutoff: int = MRR_CUTOFF) -> dict[str, float]:
    """Flat metrics for a metrics block's ``"extra"`` dict, for every prefix dim:
    ``"recall@{k}/{level}/{dim}"`` and ``"mrr/{level}/{dim}"`` per level, and ``"ndcg@10/{dim}"``."""
    out: dict[str, float] = {}
    for dim, q in query_embs_by_dim.items():
        ranked = rank(q, doc_embs_by_dim[dim], max(*ks, mrr_cutoff, 10))
        for k, per_level in recall_at_k(ranked, q_labels, d_labels, ks).items():
            out.update({f"recall@{k}/{lvl}/{dim}": float(v) for lvl, v in zip(level_names, per_level)})
        out.update({f"mrr/{lvl}/{dim}": float(v)
                    for lvl, v in zip(level_names, mrr(ranked, q_labels, d_labels, mrr_cutoff))})
        out[f"ndcg@10/{dim}"] = ndcg_at_10(ranked, q_labels, d_labels)
    return out


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def sweep_shortlist(q_short: np.ndarray, d_short: np.ndarray, q_full: np.ndarray, d_full: np.ndarray,
                    q_labels: np.ndarray, d_labels: np.ndarray, level_names: Sequence[str] | None = None,
                    shortlists: Sequence[int] = SHORTLISTS, k: int = 10, repeats: int = 3) -> list[dict]:
    """One row per shortlist size K (capped at the number of documents; repeats dropped).

    Each row: ``shortlist``; ``overlap@{k}``, the fraction of the exact full-vector top-k the funnel
    recovers; ``recall@{k}/{level}``, the funnel result's label Recall@k (hit rate) per level;
    ``ms_per_query_funnel`` and ``ms_per_query_exact``, wall time per query (median of ``repeats``
    timed runs, ``time.perf_counter``) of the whole funnel and of exact full-vector search; and
    ``speedup``, exact time over funnel time.
    """
    names = list(level_names) if level_names is not None else [f"l{i}" for i in range(q_labels.shape[1])]
    nq = max(1, len(q_full))
    exact = rank(q_full, d_full, k)
    t_exact = _median_seconds(lambda: rank(q_full, d_full, k), repeats)
    rows = []
    for K in sorted({min(s, len(d_full)) for s in shortlists}):
        funnel = multistage(q_short, d_short, q_full, d_full, K, k)
        t_funnel = _median_seconds(lambda: multistage(q_short, d_short, q_full, d_full, K, k), repeats)
        row = {"shortlist": K, f"overlap@{k}": overlap_at_k(funnel, exact)}
        row.update({f"recall@{k}/{lvl}": float(v)
                    for lvl, v in zip(names, recall_at_k(funnel, q_labels, d_labels, (k,))[k])})
        row.update({"ms_per_query_funnel": 1e3 * t_funnel / nq, "ms_per_query_exact": 1e3 * t_exact / nq,
                    "speedup": t_exact / t_funnel if t_funnel > 0 else float("inf")})
        rows.append(row)
    return rows


def adaptive(q_short: np.ndarray, d_short: np.ndarray, q_full: np.ndarray, d_full: np.ndarray,
             margin: float, k: int = 10, shortlist: int = 100) -> tuple[np.ndarray, float]:
    """Adaptive search; returns (ranked (n_queries, k), fraction of queries extended).

    Rule: rank the ``shortlist`` best documents by the short prefix. A query is confident when its
    short-prefix top-1 similarity exceeds its top-2 by at least ``margin`` (with a single document
    the gap counts as +inf); a confident query is answered by the short-prefix top-k as it stands,
    with no reranking. Every other query is extended: its shortlist is reranked by the full vector,
    exactly as in :func:`multistage`. So ``margin=inf`` extends every query and ``margin=-inf`` none.
    """
    n_docs = len(d_short)
    shortlist = _check_shortlist(max(shortlist, 2), k, n_docs)
    cand, sims = _rank(q_short, d_short, shortlist)
    gap = sims[:, 0] - sims[:, 1] if cand.shape[1] > 1 else np.full(len(cand), np.inf)
    extend = ~(gap >= margin)
    out = cand[:, :min(k, n_docs)].copy()
    if extend.any():
        out[extend] = _rerank(q_full[extend], d_full, cand[extend], k)
    return out, float(extend.mean()) if len(extend) else 0.0
