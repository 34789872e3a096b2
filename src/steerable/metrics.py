"""Classification metrics: k-NN accuracy per level at every prefix, the steerability metrics, the
two protocols, and what a linear probe reads off the prefix.

Protocols (every result names the one that produced it):

- ``paper``: leave-one-out k-NN within ``n`` test examples drawn by a seeded shuffle (the original's
  main tables used the first 500 in file order, which on label-sorted files covers few classes);
- ``standard``: the training split is the reference set; every test example is a query.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from .data import SplitVectors
from .model import SteerableModel
from .search.ranking import rank

METRIC_NAMES = (
    "short_coarse",
    "full_fine",
    "specialization_gap",
    "coarse_gain",
    "fine_gain",
    "steerability_score",
    "control_auc",
)


@dataclass(frozen=True)
class Protocol:
    name: str
    k: int = 5
    n: int | None = None  # paper protocol: test examples in the leave-one-out pool
    seed: int = 0

    def describe(self) -> dict:
        return asdict(self)


def default_protocols(seed: int, paper_n: int = 500) -> list[Protocol]:
    """Both protocols, as every run reports them."""
    return [paper_protocol(paper_n, seed=seed), standard_protocol()]


def paper_protocol(n: int = 500, seed: int = 0, k: int = 5) -> Protocol:
    return Protocol("paper", k=k, n=n, seed=seed)


def standard_protocol(k: int = 5) -> Protocol:
    return Protocol("standard", k=k)


def _rank_weights(k: int) -> np.ndarray:
    """One vote per neighbour, plus tie-breakers: the nearest outweighs all farther ones."""
    return 1.0 + 1e-3 * 0.5 ** np.arange(k)


def vote(neighbour_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Majority vote over neighbours (nearest first); ties go to the class of the nearer neighbour."""
    nq, k = neighbour_labels.shape
    scores = np.zeros((nq, num_classes))
    np.add.at(scores, (np.repeat(np.arange(nq), k), neighbour_labels.ravel()), np.tile(_rank_weights(k), nq))
    return scores.argmax(1)


def knn_predict(
    query: np.ndarray, ref: np.ndarray | None, ref_labels: np.ndarray, k: int = 5, chunk: int = 2048
) -> np.ndarray:
    """k-NN predictions (n_queries, levels) by cosine; leave-one-out within ``query`` when ``ref`` is
    None (``ref_labels`` are then the queries' own).

    Every reference row tied with the k-th neighbour takes part in the vote: the rows strictly nearer
    vote once each (the nearest slightly more, to break even totals), and the rows at the k-th
    similarity share the remaining votes equally. So duplicates, or a prefix that is the same vector
    for a whole class (a one-hot code), are voted on as a group, not by their row order.
    """
    loo = ref is None
    ref = query if ref is None else ref
    idx, sims = rank(query, ref, k + 1, exclude_self=loo, chunk=chunk)
    k = min(k, idx.shape[1])
    num = [int(ref_labels[:, lvl].max()) + 1 for lvl in range(ref_labels.shape[1])]
    preds = np.stack([vote(ref_labels[idx[:, :k], lvl], n) for lvl, n in enumerate(num)], axis=1)
    if idx.shape[1] <= k:  # every reference row is a neighbour: no tie at the boundary
        return preds
    tied = np.flatnonzero(sims[:, k] == sims[:, k - 1])
    q, r = torch.from_numpy(np.ascontiguousarray(query)), torch.from_numpy(np.ascontiguousarray(ref))
    onehots = [torch.from_numpy(np.eye(n)[ref_labels[:, lvl]]) for lvl, n in enumerate(num)]
    for s in range(0, len(tied), chunk):
        rows = tied[s : s + chunk]
        full = (q[rows] @ r.T).double()
        if loo:
            full[torch.arange(len(rows)), torch.from_numpy(rows)] = -torch.inf
        # the k-th similarity and the nearest-first order are read off this product itself: rank()'s
        # product, of other shapes, may round the last bit differently
        top, order = torch.sort(full, dim=1, descending=True, stable=True)
        thr = top[:, k - 1 : k]
        above = full > thr
        equal = full == thr
        share = (k - above.sum(1, keepdim=True)) / equal.sum(1, keepdim=True)  # votes per tied row
        weights = above.double() * 1.0 + equal.double() * share
        for lvl, onehot in enumerate(onehots):
            scores = (weights @ onehot).numpy()
            n_above = above.sum(1).numpy()
            for i, a in enumerate(n_above):  # the nearest-first tie-breakers of the rows strictly above
                np.add.at(scores[i], ref_labels[order[i, :a].numpy(), lvl], _rank_weights(a) - 1.0)
            preds[rows, lvl] = scores.argmax(1)
    return preds


def knn_accuracy(
    query: np.ndarray,
    query_labels: np.ndarray,
    ref: np.ndarray | None = None,
    ref_labels: np.ndarray | None = None,
    k: int = 5,
) -> np.ndarray:
    """Accuracy per level; leave-one-out within ``query`` when no reference set is given."""
    if ref is None:
        pred = knn_predict(query, None, query_labels, k)
    elif ref_labels is None:
        raise ValueError("a reference set needs its labels (ref_labels)")
    else:
        pred = knn_predict(query, ref, ref_labels, k)
    return (pred == query_labels).mean(axis=0)


def accuracy_table(
    test: Sequence[np.ndarray],
    y_test: np.ndarray,
    protocol: Protocol,
    train: Sequence[np.ndarray] | None = None,
    y_train: np.ndarray | None = None,
) -> np.ndarray:
    """Accuracy[level, prefix step] under ``protocol``; ``test``/``train`` hold one array per prefix."""
    if protocol.name == "paper":
        n = min(protocol.n or len(y_test), len(y_test))
        idx = np.sort(np.random.default_rng(protocol.seed).permutation(len(y_test))[:n])
        cols = [knn_accuracy(e[idx], y_test[idx], k=protocol.k) for e in test]
    elif protocol.name == "standard":
        if train is None:
            raise ValueError("the standard protocol needs training-split embeddings as reference")
        cols = [knn_accuracy(e, y_test, r, y_train, k=protocol.k) for e, r in zip(test, train)]
    else:
        raise ValueError(f"unknown protocol {protocol.name!r}; expected 'paper' or 'standard'")
    return np.stack(cols, axis=1)


def steerability(acc: np.ndarray) -> dict[str, float]:
    """The steerability metrics from accuracy[level, prefix step] (coarse = level 0, fine = last)."""
    c, f = acc[0], acc[-1]
    coarse_gain = c[0] - c[-1]
    fine_gain = f[-1] - f[0]
    gap = c - f
    auc = float(np.sum((gap[1:] + gap[:-1]) / 2) / (len(gap) - 1)) if len(gap) > 1 else float(gap[0])
    return {
        "short_coarse": float(c[0]),
        "full_fine": float(f[-1]),
        "specialization_gap": float(gap[0]),
        "coarse_gain": float(coarse_gain),
        "fine_gain": float(fine_gain),
        "steerability_score": float(coarse_gain + fine_gain),
        "control_auc": auc,
    }


def metrics_block(acc: np.ndarray, dims: Sequence[int], level_names: Sequence[str], protocol: Protocol) -> dict:
    """One protocol's entry of ``metrics.json``: accuracy per level per dim, then each metric."""
    accuracy = {lvl: {str(d): float(acc[i, j]) for j, d in enumerate(dims)} for i, lvl in enumerate(level_names)}
    return {"protocol": protocol.describe(), "dims": list(dims), "accuracy": accuracy, **steerability(acc)}


def evaluate_embeddings(
    test: Sequence[np.ndarray],
    y_test: np.ndarray,
    train: Sequence[np.ndarray],
    y_train: np.ndarray,
    dims: Sequence[int],
    level_names: Sequence[str],
    protocols: Sequence[Protocol],
) -> dict:
    """``metrics.json`` content from embeddings at every prefix dim: one block per protocol."""
    return {
        p.name: metrics_block(accuracy_table(test, y_test, p, train, y_train), dims, level_names, p) for p in protocols
    }


def evaluate(
    model: SteerableModel, vectors: SplitVectors, level_names: Sequence[str], protocols: Sequence[Protocol]
) -> dict:
    """``metrics.json`` content of a model on a data set's (cached) backbone vectors."""
    return evaluate_embeddings(
        model.embed_vectors(vectors.test),
        vectors.y_test,
        model.embed_vectors(vectors.train),
        vectors.y_train,
        model.dims,
        level_names,
        protocols,
    )


def format_metrics(metrics: dict, test: int | None = None) -> str:
    """A compact human-readable table of a ``metrics.json`` dict (its protocols, and its open-set
    section when the run held classes out); ``test``: the test texts measured, so the paper protocol
    says how many it read."""
    lines = []
    for name, block in metrics.items():
        if name == "open_set":
            drawn = block.get("drawn", block["unseen"])
            grew = f", drawn as {drawn} to reach enough texts" if drawn != block["unseen"] else ""
            extra = (
                f"unseen {block['unseen']}{grew}: {block['queries']} held-out texts queried in a pool of "
                f"{block['pool']}"
            )
            lines.append(f"[open set] {block['k']}-NN leave-one-out, {extra}")
            named = [(lvl, names) for lvl, names in block.get("held_out_classes", {}).items() if names]
            if named:
                lvl, names = named[0]
                lines.append(f"  held out ({lvl}): " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else ""))
        else:
            p = block["protocol"]
            extra = f", n={min(p['n'], test) if test else p['n']}, seed={p['seed']}" if p["name"] == "paper" else ""
            lines.append(f"[{name}] {p['k']}-NN{extra}")
        dims = block["dims"]
        lines.append("  level  " + "".join(f"{d:>8}" for d in dims))
        for lvl, row in block["accuracy"].items():
            lines.append(f"  {lvl:<6} " + "".join(f"{row[str(d)]:>8.4f}" for d in dims))
        lines.append("  " + "  ".join(f"{m}={block[m]:+.4f}" for m in METRIC_NAMES))
        for what, c in block.get("clustering", {}).items():
            lines.append(
                f"  k-means on {what}: ARI {c['ari']:.4f}, V-measure {c['v_measure']:.4f} ({c['clusters']} clusters)"
            )
    return "\n".join(lines)


def linear_probe(
    train: np.ndarray,
    y_train: np.ndarray,
    test: np.ndarray,
    y_test: np.ndarray,
    *,
    weight_decay: float = 1e-4,
    iterations: int = 100,
    seed: int = 0,
) -> float:
    """Test accuracy of a multinomial logistic regression trained on ``train`` (what a linear reader
    recovers from an embedding). Standardised features, full-batch L-BFGS, seeded: deterministic."""
    torch.manual_seed(seed)
    xtr = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32))
    xte = torch.from_numpy(np.ascontiguousarray(test, dtype=np.float32))
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    ytr = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    lin = torch.nn.Linear(xtr.shape[1], n_classes)
    opt = torch.optim.LBFGS(
        lin.parameters(), lr=1.0, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xtr), ytr) + weight_decay * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = lin(xte).argmax(1).numpy()
    return float((pred == y_test).mean())


def coarse_only_accuracy(y_train: np.ndarray, y_test: np.ndarray, level: int) -> float:
    """What the coarsest label alone tells about ``level``: test accuracy of predicting, for each
    example, the most frequent ``level`` class (in training) of its true coarse class."""
    guess = {}
    for c in np.unique(y_train[:, 0]):
        guess[c] = np.bincount(y_train[y_train[:, 0] == c, level]).argmax()
    pred = np.array([guess.get(c, -1) for c in y_test[:, 0]])
    return float((pred == y_test[:, level]).mean())


def numerical_rank(x: np.ndarray, rel_tol: float = 1e-3) -> int:
    """Rank of the centred rows of ``x``: singular values above ``rel_tol`` times the largest.

    Tells a full-rank embedding (64 for a 64-d prefix) from one confined to a low-dimensional span,
    such as the coarse-posterior bottleneck's (at most the number of coarse classes).
    """
    x = np.asarray(x, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    return int((s > rel_tol * s[0]).sum()) if len(s) and s[0] > 0 else 0


def effective_rank(x: np.ndarray) -> float:
    """Participation ratio of the centred rows' singular values: (sum s^2)^2 / sum s^4.

    How many directions carry the variance, not just how many are non-zero: d for an isotropic cloud
    in d dimensions, about C for C tight classes, whatever :func:`numerical_rank` says.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.linalg.svd(x - x.mean(axis=0), compute_uv=False) ** 2
    return float(e.sum() ** 2 / (e**2).sum()) if len(e) and e.sum() > 0 else 0.0


def probe_prefix(
    train: np.ndarray,
    y_train: np.ndarray,
    test: np.ndarray,
    y_test: np.ndarray,
    level_names: Sequence[str],
    seed: int = 0,
) -> dict:
    """Leakage of a prefix: per level, the test accuracy of a linear probe trained on the training
    split's prefixes (what a party holding only the prefix could read off it), beside what the coarse
    label alone tells; and the test prefixes' numerical and effective rank."""
    return {
        "dim": int(test.shape[1]),
        "rank": numerical_rank(test),
        "effective_rank": effective_rank(test),
        "accuracy": {
            lvl: linear_probe(train, y_train[:, k], test, y_test[:, k], seed=seed) for k, lvl in enumerate(level_names)
        },
        "coarse_only": {lvl: coarse_only_accuracy(y_train, y_test, k) for k, lvl in enumerate(level_names)},
    }


GEOMETRY_TEXTS = 1000  # test texts whose pairs the geometry measures read (seeded): about 500,000 pairs


def _pair_cosines(x: np.ndarray, rows: np.ndarray, upper: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    v = np.asarray(x[rows], dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return (v @ v.T)[upper]


def tree_distance(labels: np.ndarray, rows: np.ndarray, upper: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Per pair of ``rows``: how many levels the two labels differ at (0: the same finest class; the
    number of levels: different coarse classes), the height of their lowest common ancestor."""
    y = labels[rows]
    return sum((y[:, k][:, None] != y[:, k][None, :])[upper] for k in range(y.shape[1])).astype(np.float64)


def geometry(
    embeddings: Sequence[np.ndarray],
    dims: Sequence[int],
    labels: np.ndarray,
    backbone: np.ndarray,
    seed: int = 0,
    texts: int = GEOMETRY_TEXTS,
) -> dict:
    """How the embedding's distances follow the label tree and the backbone, at every prefix dim, over
    every pair of a seeded sample of ``texts`` rows:

    - ``cpcc``: the cophenetic correlation, Pearson's r between cosine distance and the label tree's
      distance (:func:`tree_distance`): near 1 when distances are ordered as the hierarchy is;
    - ``backbone_spearman``: Spearman's rank correlation of the pairs' cosines with the backbone's own
      (``backbone``, the same rows' raw vectors): how much of the backbone's geometry is kept.
    """
    from scipy.stats import rankdata

    n = len(labels)
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:texts])
    upper = np.triu_indices(len(rows), k=1)
    tree = tree_distance(labels, rows, upper)
    reference = rankdata(_pair_cosines(backbone, rows, upper))
    cpcc, kept = {}, {}
    for e, d in zip(embeddings, dims):
        cos = _pair_cosines(e, rows, upper)
        cpcc[str(d)] = float(np.corrcoef(1.0 - cos, tree)[0, 1]) if tree.std() > 0 else float("nan")
        kept[str(d)] = float(np.corrcoef(rankdata(cos), reference)[0, 1])
    return {"texts": int(len(rows)), "pairs": int(len(tree)), "cpcc": cpcc, "backbone_spearman": kept}
