"""Open-set evaluation: classes held out of training, and what the embedding does with them.

A classifier cannot place a class it never saw; a steerable prefix should. :class:`Unseen` names the
classes a run holds out (a fraction of the fine classes under each coarse class, or whole coarse
classes); :func:`hold_out` removes them from training and validation; :func:`open_set_metrics`
queries their test texts against a seeded pool of test texts of every class (leave-one-out k-NN, so
folding an unseen class into a seen one costs) at every prefix, and measures how k-means clusters of
the queries agree with their coarse labels at the shortest prefix and their fine labels at the full
vector.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, v_measure_score

from .backbone import SplitVectors
from .data import DataError, HierarchicalDataset, LabelledTexts
from .metrics import knn_predict, steerability

POOL_SIZE = 3000  # test texts in the k-NN pool (every held-out one, the rest seen), seeded


@dataclass(frozen=True)
class Unseen:
    """Which classes a run holds out of training: ``fine:F`` (a seeded fraction F of the finest classes
    under each coarse class, at least one of each coarse class's kept) or ``coarse:K`` (K whole coarse
    classes, seeded, drawn so that their test texts number at least ``min_queries``; K grows by one
    while no draw of K classes has that many)."""

    kind: str
    amount: float
    min_queries: int = 200

    @classmethod
    def parse(cls, spec: str) -> "Unseen":
        kind, _, amount = spec.partition(":")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if kind == "fine" and 0 < value < 1:
            return cls("fine", value)
        if kind == "coarse" and value >= 1 and value == int(value):
            return cls("coarse", int(value))
        raise ValueError(f"bad unseen classes {spec!r}: write fine:F with 0 < F < 1 (a fraction of the "
                         "fine classes under each coarse class) or coarse:K with K >= 1 whole coarse classes")

    def __str__(self) -> str:
        return f"{self.kind}:{self.amount:g}"

    def draw(self, dataset: HierarchicalDataset, seed: int) -> np.ndarray:
        """The held-out finest classes (indices), drawn for ``seed``."""
        h, rng = dataset.hierarchy, np.random.default_rng(seed)
        parent = h.fine_to_level(0)
        if self.kind == "fine":
            out = []
            for c in range(h.num_classes(0)):
                children = np.flatnonzero(parent == c)
                n = min(int(round(self.amount * len(children))), len(children) - 1)
                out += list(rng.permutation(children)[:max(n, 0)])
            return np.sort(np.array(out, dtype=np.int64))
        coarse_test = np.bincount(dataset.test.labels[:, 0], minlength=h.num_classes(0))
        for k in range(int(self.amount), h.num_classes(0) - 1):  # keep at least two coarse classes seen
            for _ in range(1000):
                chosen = rng.permutation(h.num_classes(0))[:k]
                if coarse_test[chosen].sum() >= self.min_queries:
                    return np.flatnonzero(np.isin(parent, chosen))
        raise DataError(f"{dataset.name}: no draw of coarse classes that keeps two seen has "
                        f"{self.min_queries} test texts")


def hold_out(dataset: HierarchicalDataset, unseen: Unseen, seed: int) -> tuple[HierarchicalDataset, np.ndarray]:
    """(the data set without the held-out classes in its training and validation splits, the held-out
    finest classes). The hierarchy and the test split are kept whole."""
    held = unseen.draw(dataset, seed)
    if not len(held):
        raise DataError(f"{dataset.name}: {unseen} holds out no class (too few classes under each parent)")

    def seen(part: LabelledTexts) -> LabelledTexts:
        return part.subset(np.flatnonzero(~np.isin(part.labels[:, -1], held)))

    note = f"held out of training and validation ({unseen}, seed {seed}): {len(held)} finest classes"
    out = HierarchicalDataset(dataset.name, dataset.hierarchy, seen(dataset.train), seen(dataset.validation),
                              dataset.test, dataset.notes + [note])
    return out, held


def split_held_out(vectors: SplitVectors, held: np.ndarray | None) -> tuple[SplitVectors, np.ndarray]:
    """(the vectors with only the seen classes' test texts, a mask of the held-out test texts)."""
    mask = np.isin(vectors.y_test[:, -1], held) if held is not None else np.zeros(len(vectors.y_test), bool)
    return replace(vectors, test=vectors.test[~mask], y_test=vectors.y_test[~mask]), mask


def open_set_pool(unseen_mask: np.ndarray, seed: int, size: int = POOL_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(pool, queries): test rows in the k-NN pool (every held-out text, then seen ones drawn seeded up
    to ``size`` in all) and the pool positions of the held-out texts, the queries."""
    held, seen = np.flatnonzero(unseen_mask), np.flatnonzero(~unseen_mask)
    n_seen = min(len(seen), max(size - len(held), 0))
    pool = np.sort(np.concatenate([held, np.random.default_rng(seed).permutation(seen)[:n_seen]]))
    return pool, np.flatnonzero(unseen_mask[pool])


def _clusters(x: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    """k-means with as many clusters as labels, scored against them."""
    k = len(np.unique(labels))
    if k < 2 or len(x) <= k:
        return {"ari": float("nan"), "v_measure": float("nan"), "clusters": k}
    found = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return {"ari": float(adjusted_rand_score(labels, found)), "v_measure": float(v_measure_score(labels, found)),
            "clusters": k}


def open_set_metrics(embeddings: Sequence[np.ndarray], dims: Sequence[int], labels: np.ndarray,
                     unseen_mask: np.ndarray, level_names: Sequence[str], unseen: Unseen, seed: int,
                     k: int = 5, pool_size: int = POOL_SIZE) -> dict:
    """``metrics.json``'s ``open_set`` section from the test split's embeddings at every prefix dim.

    Held-out texts are queried against the pool by leave-one-out k-NN: accuracy per level per dim, and
    the steerability metrics from them; clustering agreement of the queries (k-means, as many clusters
    as labels) with their coarse labels at the shortest prefix and their finest labels at the full
    vector: adjusted Rand index and V-measure.
    """
    pool, queries = open_set_pool(unseen_mask, seed, pool_size)
    y = labels[pool]
    acc = np.zeros((labels.shape[1], len(dims)))
    for j, e in enumerate(embeddings):
        pred = knn_predict(e[pool], None, y, k)[queries]
        acc[:, j] = (pred == y[queries]).mean(axis=0)
    yq = y[queries]
    return {
        "unseen": str(unseen), "seed": seed, "queries": int(len(queries)), "pool": int(len(pool)), "k": k,
        "held_out": {lvl: int(len(np.unique(yq[:, i]))) for i, lvl in enumerate(level_names)},
        "dims": list(dims),
        "accuracy": {lvl: {str(d): float(acc[i, j]) for j, d in enumerate(dims)} for i, lvl in enumerate(level_names)},
        **steerability(acc),
        "clustering": {f"{level_names[0]}@{dims[0]}": _clusters(embeddings[0][pool][queries], yq[:, 0], seed),
                       f"{level_names[-1]}@{dims[-1]}": _clusters(embeddings[-1][pool][queries], yq[:, -1], seed)},
    }
