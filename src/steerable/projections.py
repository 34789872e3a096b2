"""Closed-form projections of the backbone: a coarse view fitted on the training vectors and their labels.

Each projection is a rotation-like map of the centred backbone vector whose first rows (the prefix)
are chosen for the coarse level, fitted in one pass of linear algebra (no gradient steps). The rows
after the prefix are the principal axes of what the prefix leaves out, so the whole map keeps every
direction of the backbone and the full vector stays the backbone's fine view.

From the training vectors (centred, float64) and the labels, three scatter matrices:

- ``total``: the covariance of the vectors;
- ``between``: the scatter of the coarse-class means around the overall mean;
- ``nuisance``: the scatter of the finest-class means around their coarse class's mean, the directions
  along which the fine classes spread inside their coarse class.

The projections (:data:`PROJECTIONS`, each with one setting):

- ``gep`` (λ): the top generalised eigenvectors of (``between`` + λ ``total``) against (``nuisance`` +
  ε I): directions that separate coarse classes and carry the backbone's variance, but along which the
  fine classes of one coarse class hardly spread. The prefix is in the eigenvectors' own scale (the
  nuisance whitened), scaled as a whole to the variance the backbone has in that subspace.
- ``nuisance`` (k): remove the top k eigenvectors of ``nuisance``, then PCA of what is left.
- ``lda`` (w): the coarse discriminant directions (``between`` against the within-coarse scatter + ε I),
  each weighted w times a principal axis's mean variance, then PCA of the rest of the space.
- ``pca``: principal axes alone (no labels; the raw backbone's PCA-64 prefix).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.linalg import eigh

RIDGE = 1e-2  # ε: this fraction of the mean per-dim variance, added to the matrices inverted (fixed)


def _signed(rows: np.ndarray) -> np.ndarray:
    """Each row signed so that its largest loading is positive (a deterministic orientation)."""
    return rows * np.sign(rows[np.arange(len(rows)), np.abs(rows).argmax(1)])[:, None]


def _top_eig(a: np.ndarray, k: int, b: np.ndarray | None = None) -> np.ndarray:
    """The k eigenvectors of the largest eigenvalues of ``a`` (generalised against ``b``), as columns."""
    n = a.shape[0]
    _, vecs = eigh(a, b, subset_by_index=[n - k, n - 1])
    return vecs[:, ::-1]


def _orthonormal(rows: np.ndarray) -> np.ndarray:
    """An orthonormal basis (columns) of the span of ``rows``."""
    q, _ = np.linalg.qr(rows.T)
    return q


def _complement(span: np.ndarray, dim: int) -> np.ndarray:
    """An orthonormal basis (columns) of the orthogonal complement of the columns of ``span`` (orthonormal)."""
    _, _, vt = np.linalg.svd(span.T, full_matrices=True)
    return vt[span.shape[1] : dim].T


def _principal_axes(total: np.ndarray, basis: np.ndarray, k: int | None = None) -> np.ndarray:
    """The principal axes (rows, largest variance first) of the subspace spanned by ``basis``."""
    inner = basis.T @ total @ basis
    k = inner.shape[0] if k is None else k
    return _signed((basis @ _top_eig(inner, k)).T)


class Scatter:
    """The training vectors' mean and the three scatter matrices of the module docstring."""

    def __init__(self, x: np.ndarray, labels: np.ndarray):
        x = np.asarray(x, dtype=np.float64)
        self.mean = x.mean(0)
        xc = x - self.mean
        self.n, self.dim = xc.shape
        self.total = xc.T @ xc / self.n
        coarse, fine = labels[:, 0], labels[:, -1]
        self.coarse_means, self.coarse_counts = _means(xc, coarse)
        fine_means, fine_counts = _means(xc, fine)
        parent = np.zeros(len(fine_counts), dtype=np.int64)
        parent[fine] = coarse
        present = fine_counts > 0
        d = (fine_means - self.coarse_means[parent])[present]
        self.nuisance = (d * fine_counts[present, None] / self.n).T @ d
        c = self.coarse_counts > 0
        self.between = (self.coarse_means[c] * self.coarse_counts[c, None] / self.n).T @ self.coarse_means[c]
        self.ridge = RIDGE * np.trace(self.total) / self.dim * np.eye(self.dim)
        self.n_coarse = int(c.sum())


def _means(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the mean row of each label, each label's count), for labels 0 .. max(y)."""
    counts = np.bincount(y)
    order = np.argsort(y, kind="stable")
    present = np.flatnonzero(counts)
    sums = np.zeros((len(counts), x.shape[1]))
    sums[present] = np.add.reduceat(x[order], np.concatenate([[0], np.cumsum(counts[present])[:-1]]), axis=0)
    return sums / np.maximum(counts, 1)[:, None], counts.astype(np.float64)


def _complete(prefix: np.ndarray, s: Scatter) -> np.ndarray:
    """The full map: ``prefix`` rows, then the principal axes of the orthogonal complement of their span."""
    rest = _principal_axes(s.total, _complement(_orthonormal(prefix), s.dim))
    return np.concatenate([prefix, rest])


def _scaled_to_subspace(rows: np.ndarray, s: Scatter) -> np.ndarray:
    """``rows`` times one scalar, so that their coordinates' total variance is the backbone's variance in
    their span (the prefix weighs in the full vector as that subspace weighs in the backbone)."""
    q = _orthonormal(rows)
    have, want = np.trace(rows @ s.total @ rows.T), np.trace(q.T @ s.total @ q)
    return rows * np.sqrt(want / have)


def pca(s: Scatter, width: int, setting: float | None = None) -> np.ndarray:
    return _principal_axes(s.total, np.eye(s.dim))


def gep(s: Scatter, width: int, setting: float) -> np.ndarray:
    v = _top_eig(s.between + setting * s.total, width, s.nuisance + s.ridge)
    return _complete(_scaled_to_subspace(_signed(v.T), s), s)


def nuisance(s: Scatter, width: int, setting: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(s.nuisance)  # ascending
    rank = int((values > values[-1] * s.dim * np.finfo(float).eps).sum())  # as numpy's matrix_rank counts
    k = min(int(setting), rank, s.dim - width)
    kept = _complement(vectors[:, ::-1][:, :k], s.dim) if k else np.eye(s.dim)
    return _complete(_principal_axes(s.total, kept, width), s)


def lda(s: Scatter, width: int, setting: float) -> np.ndarray:
    k = min(s.n_coarse - 1, width)
    d = _signed(_top_eig(s.between, k, s.total - s.between + s.ridge).T)
    rest = _principal_axes(s.total, _complement(_orthonormal(d), s.dim), width - k)
    axis_var = np.trace(rest @ s.total @ rest.T) / len(rest) if len(rest) else np.trace(s.total) / s.dim
    d = d * np.sqrt(setting * axis_var / np.einsum("ij,jk,ik->i", d, s.total, d))[:, None]
    return _complete(np.concatenate([d, rest]), s)


PROJECTIONS: dict[str, Callable[[Scatter, int, Any], np.ndarray]] = {  # (scatter, width, setting)
    "pca": pca,
    "gep": gep,
    "nuisance": nuisance,
    "lda": lda,
}


def fit_projection(
    kind: str, x: np.ndarray, labels: np.ndarray | None, width: int, setting: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components): the projection ``kind`` at ``setting`` fitted on training vectors ``x`` and
    their ``labels`` (n, levels; coarsest first), as a (dim, dim) map whose first ``width`` rows are the
    prefix: a vector's coordinates are ``(v - mean) @ components.T``."""
    if kind not in PROJECTIONS:
        raise ValueError(f"unknown projection {kind!r}; choose from {', '.join(PROJECTIONS)}")
    if kind != "pca" and labels is None:
        raise ValueError(f"the {kind} projection is fitted on labelled training vectors")
    s = Scatter(x, labels if labels is not None else np.zeros((len(x), 1), dtype=np.int64))
    if width >= s.dim:
        raise ValueError(f"a {width}-d prefix needs more than {width} input dims, got {s.dim}")
    return s.mean, PROJECTIONS[kind](s, width, setting)
