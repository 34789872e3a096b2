"""A first stage in sign bits: each document's prefix as one bit per dimension, ranked by Hamming distance.

A 64-d prefix becomes 8 bytes a document (a float32 prefix is 256 bytes, the full 256-d vector 1 KiB),
so the first stage of the funnel fits in memory for far more documents than a float index, and the full
vectors, which only the shortlist's rerank reads, can stay on disk (:class:`~steerable.search.index.EmbeddedIndex`
memory-maps them when it loads a binary index). The bits are the signs of the prefix's dimensions; two
prefixes' Hamming distance ``h`` over ``d`` bits is scored ``1 - 2 h / d`` (1 when every sign agrees, the
cosine of the angle between the two sign vectors). The scan is FAISS's (``IndexBinaryFlat``: exact Hamming
over every document), or its HNSW graph over the bits (``IndexBinaryHNSW``: approximate, no scan).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .funnel import checked

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)  # set bits of each byte value


def sign_bits(x: np.ndarray) -> np.ndarray:
    """(n, ceil(d / 8)) uint8: bit j of row i is 1 where ``x[i, j] > 0`` (numpy's bit order)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"sign_bits needs a 2-D array, got shape {x.shape}")
    return np.packbits(x > 0, axis=1)


def hamming_score(distance: np.ndarray, dim: int) -> np.ndarray:
    """``1 - 2 h / dim`` as float32: the agreement of two sign vectors of ``dim`` bits."""
    return (1.0 - 2.0 * np.asarray(distance, dtype=np.float32) / dim).astype(np.float32)


class BinaryStage:
    """Documents ranked by the Hamming distance of their prefix's sign bits to the query's (a
    :class:`~steerable.search.funnel.Stage`): an exact scan (``hnsw_m=0``) or an HNSW graph over the bits.
    ``dim`` must be a multiple of 8 (FAISS's binary indexes work in whole bytes)."""

    def __init__(self, dim: int, hnsw_m: int = 0, ef_search: int = 128):
        if dim % 8:
            raise ValueError(f"a binary index needs a prefix of a multiple of 8 dims, got {dim}")
        import faiss  # imported where used: training and encoding never load it

        self.dim, self.hnsw_m, self.ef_search = dim, hnsw_m, ef_search
        self.index: Any = faiss.IndexBinaryHNSW(dim, hnsw_m) if hnsw_m else faiss.IndexBinaryFlat(dim)
        self.bits = np.zeros((0, dim // 8), np.uint8)

    def __len__(self) -> int:
        return len(self.bits)

    def add(self, prefix: np.ndarray) -> None:
        """Add documents by their float prefixes (only the signs are kept)."""
        self.add_bits(sign_bits(checked("prefix", prefix, self.dim)))

    def add_bits(self, bits: np.ndarray) -> None:
        bits = np.ascontiguousarray(bits, dtype=np.uint8)
        if bits.ndim != 2 or bits.shape[1] != self.dim // 8:
            raise ValueError(f"sign bits must have shape (n, {self.dim // 8}), got {bits.shape}")
        self.index.add(bits)
        self.bits = np.concatenate([self.bits, bits])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores), each (n_queries, min(k, n)), by Hamming distance; -1 where an HNSW graph found fewer."""
        q = sign_bits(checked("query prefix", queries, self.dim))
        k = min(k, len(self))
        if self.hnsw_m:
            self.index.hnsw.efSearch = max(self.ef_search, k)
        distance, rows = self.index.search(q, k)
        return rows.astype(np.int64), hamming_score(distance, self.dim)

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` candidates nearest by Hamming distance, nearest first, ties to the lower row."""
        q = sign_bits(checked("query prefix", queries, self.dim))
        cand = np.asarray(candidates, dtype=np.int64)
        distance = _POPCOUNT[self.bits[np.maximum(cand, 0)] ^ q[:, None, :]].sum(-1, dtype=np.int64)
        scores = np.where(cand >= 0, hamming_score(distance, self.dim), -np.inf).astype(np.float32)
        order = np.lexsort((cand, -scores), axis=1)[:, :k]  # by score, then by row
        return np.take_along_axis(cand, order, axis=1), np.take_along_axis(scores, order, axis=1)

    def nbytes(self) -> int:
        """Memory of the bits (and the HNSW graph's links, if any)."""
        import faiss

        return int(faiss.serialize_index_binary(self.index).nbytes) if self.hnsw_m else self.bits.nbytes
