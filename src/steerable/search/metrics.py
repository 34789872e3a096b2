"""Retrieval quality on a labelled test set: label metrics per prefix, and the funnel against exact.

A test set is split (seeded) into queries and documents; a document is relevant to a query at a
level when they share that level's label. Rankings are ``(n_queries, k)`` arrays of document rows,
best first (:mod:`steerable.search.ranking`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .funnel import Exact, adaptive, funnel
from .ranking import rank

KS = (1, 5, 10, 20)
MRR_CUTOFF = 100
FUNNEL_SHORTLISTS = (10, 20, 50, 100, 200)
ADAPTIVE_MARGINS = (0.005, 0.01, 0.02, 0.05)
ADAPTIVE_SHORTLIST = 100


def split_queries(n: int, seed: int = 0, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into (query_idx, doc_idx), each sorted, disjoint and together
    covering every index; ``floor(fraction * n)`` become queries."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    nq = int(np.floor(fraction * n))
    return np.sort(perm[:nq]), np.sort(perm[nq:])


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


def recall_at_k(
    ranked: np.ndarray, q_labels: np.ndarray, d_labels: np.ndarray, ks: Sequence[int] = KS
) -> dict[int, np.ndarray]:
    """{k: Recall@k per level (shape (levels,))}, labels being (n, levels) arrays.

    Recall@k for label match is the hit rate: the fraction of queries with at least one document
    of the same label at that level among the top k (the original's definition), not the fraction
    of all same-label documents retrieved. A k beyond the number of documents counts every one.
    """
    hits = _matches(ranked, q_labels, d_labels)
    return {k: hits[:, : _cutoff(ranked, d_labels, k)].any(axis=1).mean(axis=0) for k in ks}


def mrr(ranked: np.ndarray, q_labels: np.ndarray, d_labels: np.ndarray, cutoff: int = MRR_CUTOFF) -> np.ndarray:
    """Mean reciprocal rank per level (shape (levels,)): 1 / rank of the first same-label document
    within the top ``cutoff`` (rank 1 = best), 0 for a query with none there."""
    hits = _matches(ranked, q_labels, d_labels)[:, : _cutoff(ranked, d_labels, cutoff)]
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


def retrieval_metrics(
    query_embs_by_dim: dict[int, np.ndarray],
    doc_embs_by_dim: dict[int, np.ndarray],
    q_labels: np.ndarray,
    d_labels: np.ndarray,
    level_names: Sequence[str],
    ks: Sequence[int] = KS,
    mrr_cutoff: int = MRR_CUTOFF,
) -> dict[str, float]:
    """Label metrics of exact search at every prefix dim:
    ``"recall@{k}/{level}/{dim}"`` and ``"mrr/{level}/{dim}"`` per level, and ``"ndcg@10/{dim}"``."""
    out: dict[str, float] = {}
    for dim, q in query_embs_by_dim.items():
        ranked, _ = rank(q, doc_embs_by_dim[dim], max(*ks, mrr_cutoff, 10))
        for k, per_level in recall_at_k(ranked, q_labels, d_labels, ks).items():
            out.update({f"recall@{k}/{lvl}/{dim}": float(v) for lvl, v in zip(level_names, per_level)})
        out.update(
            {f"mrr/{lvl}/{dim}": float(v) for lvl, v in zip(level_names, mrr(ranked, q_labels, d_labels, mrr_cutoff))}
        )
        out[f"ndcg@10/{dim}"] = ndcg_at_10(ranked, q_labels, d_labels)
    return out


def evaluate_retrieval(
    embeddings: Sequence[np.ndarray],
    dims: Sequence[int],
    labels: np.ndarray,
    level_names: Sequence[str],
    seed: int,
    shortlists: Sequence[int] = FUNNEL_SHORTLISTS,
) -> dict[str, float]:
    """Retrieval on a seeded 50/50 query/document split of a test set, from its embeddings at every
    prefix dim (``embeddings[i]`` at ``dims[i]``, the shortest first and the full vector last).

    Recall@k per level, MRR per level and nDCG@10 (graded hierarchy gain) per dim; the funnel
    (shortest prefix shortlists K, full vector reranks): overlap with the exact full-vector top 10
    and label Recall@10, per K; and adaptive search from a shortlist of 100: overlap, Recall@10 and
    the fraction of queries extended, per margin. Keys are ``metric[/level]/dim``,
    ``funnel/metric[/level]/K`` or ``adaptive@<margin>/metric[/level]/K``.
    """
    q, d = split_queries(len(labels), seed=seed)
    yq, yd = labels[q], labels[d]
    out = retrieval_metrics(
        {dim: e[q] for dim, e in zip(dims, embeddings)},
        {dim: e[d] for dim, e in zip(dims, embeddings)},
        yq,
        yd,
        level_names,
    )
    short, full = Exact(embeddings[0][d]), Exact(embeddings[-1][d])
    q_short, q_full = embeddings[0][q], embeddings[-1][q]
    exact, _ = full.search(q_full, 10)
    for K in shortlists:
        if K > len(d):
            continue
        ranked, _ = funnel(short, full, q_short, q_full, 10, K)
        out[f"funnel/overlap@10/{K}"] = overlap_at_k(ranked, exact)
        for lvl, v in zip(level_names, recall_at_k(ranked, yq, yd, (10,))[10]):
            out[f"funnel/recall@10/{lvl}/{K}"] = float(v)
    K = min(ADAPTIVE_SHORTLIST, len(d))
    if K >= 10:
        for margin in ADAPTIVE_MARGINS:
            ranked, _, extended = adaptive(short, full, q_short, q_full, 10, K, margin)
            out[f"adaptive@{margin:g}/overlap@10/{K}"] = overlap_at_k(ranked, exact)
            out[f"adaptive@{margin:g}/extended/{K}"] = float(extended.mean()) if len(extended) else 0.0
            for lvl, v in zip(level_names, recall_at_k(ranked, yq, yd, (10,))[10]):
                out[f"adaptive@{margin:g}/recall@10/{lvl}/{K}"] = float(v)
    return out
