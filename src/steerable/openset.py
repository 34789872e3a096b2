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

from .data import DataError, HierarchicalDataset, Hierarchy, LabelledTexts, SplitVectors
from .metrics import knn_predict, steerability

POOL_SIZE = 3000  # test texts in the k-NN pool (every held-out one, the rest seen), seeded


@dataclass(frozen=True)
class Unseen:
    """Which classes a run holds out of training: ``fine:F`` (a seeded fraction F of the finest classes
    under each coarse class, at least one of each coarse class's kept) or ``coarse:K`` (K whole coarse
    classes, seeded, at least two kept). Either way a draw must hold at least ``min_queries`` of the
    texts that will be queried (the test split after its cap); where no draw of the amount asked for
    does, the amount grows (K by one, F by a tenth) until one does, and :class:`HeldOut` says what was
    drawn."""

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
        raise ValueError(
            f"bad unseen classes {spec!r}: write fine:F with 0 < F < 1 (a fraction of the "
            "fine classes under each coarse class) or coarse:K with K >= 1 whole coarse classes"
        )

    def __str__(self) -> str:
        return f"{self.kind}:{self.amount:g}"

    def draw(self, hierarchy: Hierarchy, query_labels: np.ndarray, seed: int, name: str = "data") -> "HeldOut":
        """The held-out classes for ``seed``, drawn so that the rows of ``query_labels`` (the labels of
        the texts that will be queried) hold at least ``min_queries`` of them. ``name`` names the data
        set in errors."""
        rng = np.random.default_rng(seed)
        parent = hierarchy.fine_to_level(0)
        n_coarse = hierarchy.num_classes(0)
        per_fine = np.bincount(query_labels[:, -1], minlength=len(parent))
        if self.kind == "coarse":
            largest = n_coarse - 2  # keep at least two coarse classes seen
            if self.amount > largest:
                raise DataError(
                    f"{name}: {self} holds out more coarse classes than it has to spare: it has "
                    f"{n_coarse}, so at most coarse:{largest} keeps two seen"
                )
            amounts = [float(k) for k in range(int(self.amount), largest + 1)]
        else:
            amounts = [a / 10 for a in range(int(np.ceil(self.amount * 10 - 1e-9)), 10)]
            amounts = [self.amount] + [a for a in amounts if a > self.amount]
        best = 0
        for amount in amounts:
            for _ in range(1000):
                fine = self._one_draw(amount, parent, n_coarse, rng)
                queries = int(per_fine[fine].sum())
                if len(fine) and queries >= self.min_queries:
                    drawn = Unseen(self.kind, amount, self.min_queries)
                    return HeldOut(str(self), str(drawn), tuple(int(f) for f in fine), queries, _names(hierarchy, fine))
                best = max(best, queries)
        raise DataError(
            f"{name}: no draw of {self} or more keeps classes seen and holds {self.min_queries} texts "
            f"to query (the most any draw held: {best})"
        )

    def _one_draw(self, amount: float, parent: np.ndarray, n_coarse: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "coarse":
            chosen = rng.permutation(n_coarse)[: int(amount)]
            return np.flatnonzero(np.isin(parent, chosen))
        out = []
        for c in range(n_coarse):
            children = np.flatnonzero(parent == c)
            n = min(int(round(amount * len(children))), len(children) - 1)
            out += list(rng.permutation(children)[: max(n, 0)])
        return np.sort(np.array(out, dtype=np.int64))


def _names(hierarchy: Hierarchy, fine: np.ndarray) -> dict[str, list[str]]:
    """Per level, the names of the classes every finest descendant of which is in ``fine``."""
    out = {}
    held = np.zeros(hierarchy.num_classes(hierarchy.num_levels - 1), bool)
    held[fine] = True
    for level, lvl in enumerate(hierarchy.level_names):
        anc = hierarchy.fine_to_level(level)
        whole = [c for c in range(hierarchy.num_classes(level)) if held[anc == c].all()]
        out[lvl] = [hierarchy.classes[level][c] for c in whole]
    return out


@dataclass(frozen=True)
class HeldOut:
    """What a draw of :class:`Unseen` held out: the amount asked for and the amount drawn (more where the
    draw had to grow to reach the query minimum), the finest classes (indices), how many texts they
    give to query, and the held-out classes by name at each level (a coarse class is named only when
    every class under it is held out)."""

    requested: str
    drawn: str
    fine: tuple[int, ...]
    queries: int
    classes: dict[str, list[str]]

    @property
    def indices(self) -> np.ndarray:
        return np.asarray(self.fine, dtype=np.int64)

    def describe(self) -> str:
        """One line: what was drawn, by name, and how many texts it gives to query."""
        coarse, finest = list(self.classes.values())[0], list(self.classes.values())[-1]
        grew = f" ({self.requested} held too few texts)" if self.drawn != self.requested else ""
        what = (
            f"coarse classes {', '.join(coarse)}"
            if coarse
            else f"{len(finest)} fine classes ({', '.join(finest[:6])}{', ...' if len(finest) > 6 else ''})"
        )
        return f"held out {self.drawn}{grew}: {what}; {self.queries} texts to query"

    def to_dict(self) -> dict:
        return {"requested": self.requested, "drawn": self.drawn, "queries": self.queries, "classes": self.classes}

    @classmethod
    def from_names(cls, hierarchy: Hierarchy, d: dict, query_labels: np.ndarray) -> "HeldOut":
        """The held-out classes a run recorded (:meth:`to_dict`), looked up by name in ``hierarchy``."""
        finest = hierarchy.level_names[-1]
        index = {n: i for i, n in enumerate(hierarchy.classes[-1])}
        missing = [n for n in d["classes"][finest] if n not in index]
        if missing:
            raise DataError(f"the run held out classes this data does not have: {', '.join(missing[:5])}")
        fine = np.sort(np.array([index[n] for n in d["classes"][finest]], dtype=np.int64))
        queries = int(np.isin(query_labels[:, -1], fine).sum())
        return cls(d["requested"], d["drawn"], tuple(int(f) for f in fine), queries, _names(hierarchy, fine))


def hold_out(
    dataset: HierarchicalDataset,
    unseen: Unseen | HeldOut,
    seed: int,
    *,
    max_test: int | None = None,
    measured_on: str = "test",
) -> tuple[HierarchicalDataset, HeldOut]:
    """(the data set without the held-out classes in its training and validation splits, what was held
    out). The hierarchy and the test split are kept whole. The draw counts its queries on the split the
    run is measured on, as queried: the test split after its seeded cap (``max_test``, ``seed``), or the
    whole validation split. A :class:`HeldOut` (a run's recorded draw) is used as it is."""
    queried = dataset.test.cap(max_test, seed) if measured_on == "test" else dataset.validation
    held = unseen if isinstance(unseen, HeldOut) else unseen.draw(dataset.hierarchy, queried.labels, seed, dataset.name)

    def seen(part: LabelledTexts) -> LabelledTexts:
        return part.subset(np.flatnonzero(~np.isin(part.labels[:, -1], held.indices)))

    note = (
        f"held out of training and validation ({held.drawn}, seed {seed}): {len(held.fine)} finest classes, "
        f"{held.queries} texts to query"
    )
    out = HierarchicalDataset(
        dataset.name,
        dataset.hierarchy,
        seen(dataset.train),
        seen(dataset.validation),
        dataset.test,
        dataset.notes + [note],
    )
    return out, held


def split_held_out(vectors: SplitVectors, held: HeldOut | None) -> tuple[SplitVectors, np.ndarray]:
    """(the vectors with only the seen classes' test texts, a mask of the held-out test texts)."""
    mask = np.isin(vectors.y_test[:, -1], held.indices) if held is not None else np.zeros(len(vectors.y_test), bool)
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
    return {
        "ari": float(adjusted_rand_score(labels, found)),
        "v_measure": float(v_measure_score(labels, found)),
        "clusters": k,
    }


def open_set_metrics(
    embeddings: Sequence[np.ndarray],
    dims: Sequence[int],
    labels: np.ndarray,
    unseen_mask: np.ndarray,
    level_names: Sequence[str],
    held: HeldOut,
    seed: int,
    k: int = 5,
    pool_size: int = POOL_SIZE,
) -> dict:
    """``metrics.json``'s ``open_set`` section from the test split's embeddings at every prefix dim.

    Held-out texts are queried against the pool by leave-one-out k-NN: accuracy per level per dim, and
    the steerability metrics from them; clustering agreement of the queries (k-means, as many clusters
    as labels) with their coarse labels at the shortest prefix and their finest labels at the full
    vector: adjusted Rand index and V-measure. ``held`` (what was held out) is recorded by name.
    """
    pool, queries = open_set_pool(unseen_mask, seed, pool_size)
    y = labels[pool]
    acc = np.zeros((labels.shape[1], len(dims)))
    for j, e in enumerate(embeddings):
        pred = knn_predict(e[pool], None, y, k)[queries]
        acc[:, j] = (pred == y[queries]).mean(axis=0)
    yq = y[queries]
    return {
        "unseen": held.requested,
        "drawn": held.drawn,
        "seed": seed,
        "queries": int(len(queries)),
        "pool": int(len(pool)),
        "k": k,
        "held_out": {lvl: int(len(np.unique(yq[:, i]))) for i, lvl in enumerate(level_names)},
        "held_out_classes": held.classes,
        "dims": list(dims),
        "accuracy": {lvl: {str(d): float(acc[i, j]) for j, d in enumerate(dims)} for i, lvl in enumerate(level_names)},
        **steerability(acc),
        "clustering": {
            f"{level_names[0]}@{dims[0]}": _clusters(embeddings[0][pool][queries], yq[:, 0], seed),
            f"{level_names[-1]}@{dims[-1]}": _clusters(embeddings[-1][pool][queries], yq[:, -1], seed),
        },
    }
