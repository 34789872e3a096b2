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


def _best(candidates: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` candidates by score, best first, ties to the lower row."""
    order = np.lexsort((candidates, -scores), axis=1)[:, :k]
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(scores, order, axis=1)


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
        return _best(cand, scores, k)

    def nbytes(self) -> int:
        """Memory of the bits (and the HNSW graph's links, if any)."""
        import faiss

        return int(faiss.serialize_index_binary(self.index).nbytes) if self.hnsw_m else self.bits.nbytes


RESCORE = ("int8", "float16")  # how a binary stage's shortlist may be reranked by the float prefix
_DECODE_BUDGET = 1 << 22  # prefix values decoded to float32 at a time (16 MiB)


class QuantizedPrefix:
    """The float prefix kept small, to rerank a sign-bit shortlist before the full vectors are read:
    ``float16`` (2 bytes a dimension) or ``int8`` (1 byte: each dimension scaled by the largest
    magnitude it takes in the first documents added, later ones clipped to it). Scores are the inner
    product of the float32 query with the decoded prefix."""

    def __init__(self, dim: int, kind: str):
        if kind not in RESCORE:
            raise ValueError(f"unknown rescoring {kind!r}; choose {', '.join(RESCORE)}")
        self.dim, self.kind = dim, kind
        self.codes = np.zeros((0, dim), np.int8 if kind == "int8" else np.float16)
        self.scale: np.ndarray | None = None  # int8: float32 (dim,), the value of code 1 per dimension

    def __len__(self) -> int:
        return len(self.codes)

    def encode(self, prefix: np.ndarray) -> np.ndarray:
        prefix = checked("prefix", prefix, self.dim)
        if self.kind == "float16":
            return prefix.astype(np.float16)
        if self.scale is None:
            self.scale = (np.maximum(np.abs(prefix).max(axis=0, initial=0.0), 1e-12) / 127).astype(np.float32)
        return np.clip(np.rint(prefix / self.scale), -127, 127).astype(np.int8)

    def add(self, prefix: np.ndarray) -> None:
        self.add_codes(self.encode(prefix))

    def add_codes(self, codes: np.ndarray, scale: np.ndarray | None = None) -> None:
        if codes.dtype != self.codes.dtype or codes.ndim != 2 or codes.shape[1] != self.dim:
            raise ValueError(f"{self.kind} codes must be ({codes.shape[0]}, {self.dim}) {self.codes.dtype}")
        if scale is not None:
            self.scale = np.asarray(scale, np.float32)
        self.codes = np.concatenate([self.codes, codes])

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` candidates with the highest decoded inner product, ties to the lower row."""
        q = checked("query prefix", queries, self.dim)
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.ndim != 2 or len(cand) != len(q):
            raise ValueError(f"candidates must have shape ({len(q)}, K), got {cand.shape}")
        scores = np.empty(cand.shape, np.float32)
        step = max(1, _DECODE_BUDGET // max(1, cand.shape[1] * self.dim))  # queries decoded at a time
        for s in range(0, len(q), step):
            rows = self.codes[np.maximum(cand[s : s + step], 0)].astype(np.float32)  # (step, K, dim)
            if self.scale is not None:
                rows *= self.scale
            scores[s : s + step] = np.matmul(rows, q[s : s + step, :, None])[..., 0]
        scores[cand < 0] = -np.inf
        return _best(cand, scores, k)

    def nbytes(self) -> int:
        return self.codes.nbytes + (0 if self.scale is None else self.scale.nbytes)


class Rescored:
    """A sign-bit shortlist ``oversample`` times longer than asked for, reranked by the quantised float
    prefix down to the length asked for (a :class:`~steerable.search.funnel.Stage`): the first stage of
    a funnel whose full-vector rerank then reads only that many rows."""

    def __init__(self, bits: BinaryStage, middle: QuantizedPrefix, oversample: int = 4):
        if oversample < 1:
            raise ValueError(f"oversample must be at least 1, got {oversample}")
        self.bits, self.middle, self.oversample = bits, middle, int(oversample)

    def __len__(self) -> int:
        return len(self.bits)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        candidates, _ = self.bits.search(queries, k * self.oversample)
        return self.middle.rerank(queries, candidates, k)

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.middle.rerank(queries, candidates, k)
