"""The tables any results store can give: accuracy, steerability with paired tests, hierarchy
complexity, retrieval, the funnel, adaptive search and efficiency.

Each function takes :class:`~steerable.report.results.Results` and returns a
:class:`~steerable.report.table.Table`; ``methods`` picks and orders the rows or columns (default:
every method in the records in registry order, the dial's settings aside).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..methods import display_order, label
from ..stats import holm, paired_test, summarize
from ..training.cost import bytes_per_document
from .render import Table, fmt, fmt_p
from .results import Results

STEER_METRICS = ["steerability_score", "short_coarse", "full_fine", "specialization_gap", "control_auc"]


def _pick(res: Results, methods: Sequence[str] | None) -> list[str]:
    """The given methods that have records, in the given order; default: every listed method."""
    return [m for m in methods if m in res.methods] if methods is not None else res.listed_methods()


def accuracy_table(res: Results, protocol: str, methods: Sequence[str] | None = None) -> Table:
    """k-NN accuracy of the coarsest and finest level at the full dim."""
    methods = _pick(res, methods)
    cols = ["data set"]
    for m in methods:
        cols += [f"{label(m)} L0", f"{label(m)} L1"]
    rows = []
    for ds in res.datasets:
        coarse, fine = res.levels[ds][0], res.levels[ds][-1]
        row = [ds]
        for m in methods:
            row += [
                fmt(res.accuracy(ds, m, protocol, coarse, -1), pct=True),
                fmt(res.accuracy(ds, m, protocol, fine, -1), pct=True),
            ]
        rows.append(row)
    flat = " Flat is the raw backbone vector (all its dims)." if "flat" in methods else ""
    return Table(
        f"k-NN classification accuracy (%) of the full embedding, mean ± sd over seeds ({protocol} protocol)",
        cols,
        rows,
        res.describe(protocol) + " L0 = coarsest level, L1 = finest level." + flat,
    )


def steerability_tests(res: Results, protocol: str, a: str, b: str) -> dict[str, dict]:
    """Paired tests of S (a vs b) per data set over matched seeds, Holm-corrected across data sets."""
    out = {}
    for ds in res.datasets:
        va, vb = (res.values(ds, m, protocol, "steerability_score") for m in (a, b))
        seeds = sorted(set(va) & set(vb))
        if not seeds:
            continue
        t = paired_test([va[s] for s in seeds], [vb[s] for s in seeds])
        out[ds] = {"seeds": seeds, **t.to_dict()}
    for v, p in zip(out.values(), holm([v["p"] for v in out.values()])):
        v["p_holm"] = p
    return out


def steerability_table(
    res: Results, protocol: str, methods: Sequence[str], reference: str, tests: dict[str, dict[str, dict]]
) -> Table:
    """S with its interval and the other steerability metrics; for each method but the
    reference, the paired test against it (``tests[method][dataset]``, from
    :func:`steerability_tests`)."""
    methods = _pick(res, methods)
    cols = [
        "data set",
        "method",
        "S",
        "95% CI",
        "ShortCoarse",
        "FullFine",
        "SpecGap",
        "ControlAUC",
        f"Δ S vs {label(reference)}",
        "t",
        "p",
        "p (Holm)",
        "d",
    ]
    rows = []
    for ds in res.datasets:
        for m in methods:
            s = res.values(ds, m, protocol, "steerability_score")
            if not s:
                continue
            summ = summarize(list(s.values()))
            row = [ds, label(m), fmt(s), f"[{summ.ci_low:+.3f}, {summ.ci_high:+.3f}]"]
            row += [fmt(res.values(ds, m, protocol, k)) for k in STEER_METRICS[1:]]
            t = tests.get(m, {}).get(ds)
            row += (
                [f"{t['mean_diff']:+.3f}", f"{t['t']:.2f}", fmt_p(t["p"]), fmt_p(t["p_holm"]), f"{t['d']:.2f}"]
                if t
                else ["", "", "", "", ""]
            )
            rows.append(row)
    compared = ", ".join(label(m) for m in methods if m != reference)
    return Table(
        f"Steerability, mean ± sd over seeds ({protocol} protocol)",
        cols,
        rows,
        res.describe(protocol) + f" Paired t-test and paired Cohen's d of {compared} vs "
        f"{label(reference)} over matched seeds; p (Holm) corrects across data sets.",
    )


def hierarchy_table(res: Results) -> Table:
    cols = ["data set", "levels", "K0", "K1", "K2", "branching", "H(L0)", "H(L1|L0)", "train", "test"]
    rows = []
    for ds in res.datasets:
        st = res.stats[ds]
        rows.append(
            [
                ds,
                st["levels"],
                st["K0"],
                st["K1"],
                st.get("K2", "–"),
                f"{st['branching1']:.2f}",
                f"{st['H0']:.2f}",
                f"{st['H1|0']:.2f}",
                st["train"],
                st["test"],
            ]
        )
    return Table(
        "Hierarchy complexity (training split; entropies in bits)",
        cols,
        rows,
        "Branching = mean L1 classes per L0 class. Sizes before the sweep's caps.",
    )


def retrieval_mean(res: Results, ds: str, m: str, key: str) -> float | None:
    """Mean over seeds of one retrieval metric (None where no run recorded it)."""
    vals = [v[key] for v in res.retrieval.get((ds, m), {}).values() if key in v]
    return float(np.mean(vals)) if vals else None


def retrieval_dims(res: Results, ds: str, m: str) -> list[int]:
    return next(iter(res.retrieval[(ds, m)].values())).dims


def funnel_shortlists(res: Results, ds: str, m: str) -> list[int]:
    return next(iter(res.retrieval[(ds, m)].values())).shortlists


def _pct(v: float | None, digits: int = 1) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f}"


def retrieval_table(res: Results, methods: Sequence[str] | None = None) -> Table:
    """Recall@k, MRR and nDCG@10 at every prefix."""
    cols = ["data set", "method", "dim", "R@1 L1", "R@10 L0", "R@10 L1", "MRR L1", "nDCG@10"]
    rows = []
    for ds in res.datasets:
        fine, coarse = res.levels[ds][-1], res.levels[ds][0]
        for m in [m for m in _pick(res, methods) if (ds, m) in res.retrieval]:
            for dim in retrieval_dims(res, ds, m):
                keys = [
                    f"recall@1/{fine}/{dim}",
                    f"recall@10/{coarse}/{dim}",
                    f"recall@10/{fine}/{dim}",
                    f"mrr/{fine}/{dim}",
                    f"ndcg@10/{dim}",
                ]
                rows.append([ds, label(m), dim] + [_pct(retrieval_mean(res, ds, m, k)) for k in keys])
    return Table(
        "Retrieval at every prefix (%), mean over seeds",
        cols,
        rows,
        f"Queries vs documents: a seeded 50/50 split of each run's (capped) test set; cosine "
        f"ranking. R@k = fraction of queries with a same-label document in the top k; nDCG@10 "
        f"with gain 2 for the same fine label, 1 for the same coarse label only. Seeds "
        f"{', '.join(map(str, res.seeds))}; backbone {', '.join(res.backbones)}.",
    )


def funnel_table(res: Results, methods: Sequence[str] | None = None) -> Table:
    """The funnel's overlap with exact search and its label recall, per shortlist K."""
    cols = [
        "data set",
        "method",
        "shortlist K",
        "overlap with exact top 10",
        "R@10 L1 (funnel)",
        "R@10 L1 (exact full)",
    ]
    rows = []
    for ds in res.datasets:
        fine = res.levels[ds][-1]
        for m in [m for m in _pick(res, methods) if (ds, m) in res.retrieval]:
            exact = retrieval_mean(res, ds, m, f"recall@10/{fine}/{retrieval_dims(res, ds, m)[-1]}")
            for K in funnel_shortlists(res, ds, m):
                rows.append(
                    [
                        ds,
                        label(m),
                        K,
                        f"{retrieval_mean(res, ds, m, f'funnel/overlap@10/{K}'):.3f}",
                        _pct(retrieval_mean(res, ds, m, f"funnel/recall@10/{fine}/{K}")),
                        _pct(exact),
                    ]
                )
    return Table(
        "Multi-stage search (shortest prefix shortlists K, full vector reranks)",
        cols,
        rows,
        "Overlap = fraction of the exact full-vector top 10 that the funnel returns; "
        "mean over seeds. Speed is measured separately (bench/search.py).",
    )


def adaptive_table(res: Results, methods: Sequence[str] | None = None) -> Table:
    """Adaptive search per margin: queries extended, overlap and recall."""
    cols = [
        "data set",
        "method",
        "margin",
        "queries extended (%)",
        "overlap with exact top 10",
        "R@10 L1",
        "funnel, every query extended: overlap",
    ]
    rows = []
    for ds in res.datasets:
        fine = res.levels[ds][-1]
        for m in [m for m in _pick(res, methods) if (ds, m) in res.retrieval]:
            any_run = next(iter(res.retrieval[(ds, m)].values()))
            keys = sorted(
                {k.split("/")[0] for k in any_run if k.startswith("adaptive@")}, key=lambda k: float(k.split("@")[1])
            )
            for key in keys:
                K = next(int(k.rsplit("/", 1)[1]) for k in any_run if k.startswith(key + "/overlap"))
                ext, ov, rec, fun = (
                    retrieval_mean(res, ds, m, k)
                    for k in (
                        f"{key}/extended/{K}",
                        f"{key}/overlap@10/{K}",
                        f"{key}/recall@10/{fine}/{K}",
                        f"funnel/overlap@10/{K}",
                    )
                )
                rows.append(
                    [
                        ds,
                        label(m),
                        key.split("@")[1],
                        _pct(ext, 0),
                        "–" if ov is None else f"{ov:.3f}",
                        _pct(rec),
                        "–" if fun is None else f"{fun:.3f}",
                    ]
                )
    return Table(
        "Adaptive search (the prefix answers confident queries; the rest are reranked)",
        cols,
        rows,
        "A query is confident when its shortest-prefix top-1 similarity beats its "
        "top-2 by at least the margin; confident queries are answered by the prefix ranking, the "
        "others by the full-vector rerank of a shortlist of 100 (the last column: every query "
        "reranked). Mean over seeds.",
    )


def _method_dims(res: Results, method: str) -> list[int]:
    """Prefix dims of a method's runs (from any of its metrics blocks)."""
    return next(b for (_, m, _), by_seed in res.blocks.items() if m == method for b in by_seed.values()).dims


def efficiency_table(res: Results, methods: Sequence[str] | None = None) -> Table:
    """Parameters, training FLOPs and time, inference FLOPs and storage, per method."""
    cols = [
        "method",
        "head parameters",
        "training GFLOP / example",
        "median training time (s)",
        "head MFLOP / text (inference)",
        "bytes / doc per prefix dim (float32)",
    ]
    rows = []
    for m in [m for m in _pick(res, methods) if res.cost.get(m)]:
        c = res.cost[m]
        rows.append(
            [
                label(m),
                f"{int(np.median([x['head_parameters'] for x in c])):,}",
                f"{np.median([x['train_flops_per_example'] for x in c]) / 1e9:.4f}",
                f"{np.median([x['train_s'] for x in c]):.1f}",
                f"{np.median([x['encode_flops_per_text'] for x in c]) / 1e6:.2f}",
                ", ".join(f"{d}: {b['float32']}" for d, b in bytes_per_document(_method_dims(res, m)).items()),
            ]
        )
    return Table(
        "Efficiency",
        cols,
        rows,
        "FLOPs counted by torch's FlopCounterMode on a real training step (forward and backward, "
        "positives included) and a forward pass; training time measured on this machine, median "
        "over the runs of each method (all data sets). The backbone's cost is the same for every "
        "method and is not included.",
    )


def open_set_values(res: Results, ds: str, m: str, unseen: str, what: str) -> dict[int, float]:
    """Seed -> one open-set figure: ``accuracy/<level>/<dim index>`` (-1: full), ``clustering/<i>/<ari or
    v_measure>`` (0: coarse at the shortest prefix, 1: finest at the full vector), ``queries`` or a
    steerability metric."""
    out = {}
    for seed, o in res.open_set.get((ds, m, unseen), {}).items():
        parts = what.split("/")
        if parts[0] == "accuracy":
            out[seed] = o.at(parts[1], int(parts[2]))
        elif parts[0] == "clustering":
            out[seed] = list(o.clustering.values())[int(parts[1])][parts[2]]
        elif what == "queries":
            out[seed] = o.queries
        else:
            out[seed] = o.metric(what)
    return out


def _span(values: Sequence[int]) -> str:
    """``n``, or ``lo–hi`` where the values differ."""
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def open_set_table(res: Results, methods: Sequence[str] | None = None) -> Table:
    """Classes never seen in training, queried against a pool of every class."""
    cols = [
        "data set",
        "unseen",
        "method",
        "queries",
        "classes held out",
        "coarse @ shortest (%)",
        "coarse @ full (%)",
        "fine @ full (%)",
        "S",
        "k-means ARI, coarse @ shortest",
        "k-means ARI, fine @ full",
    ]
    rows = []
    keys = sorted({(ds, u) for ds, _, u in res.open_set})
    present = display_order(m for _, m, _ in res.open_set)
    for ds, unseen in keys:
        coarse, fine = res.levels[ds][0], res.levels[ds][-1]
        for m in [m for m in (methods or present) if (ds, m, unseen) in res.open_set]:
            v = lambda what: open_set_values(res, ds, m, unseen, what)
            seeds = res.open_set[(ds, m, unseen)].values()
            rows.append(
                [
                    ds,
                    unseen,
                    label(m),
                    _span([o.queries for o in seeds]),
                    " / ".join(f"{_span([o.held_out[lvl] for o in seeds])} {lvl}" for lvl in res.levels[ds]),
                    fmt(v(f"accuracy/{coarse}/0"), pct=True),
                    fmt(v(f"accuracy/{coarse}/-1"), pct=True),
                    fmt(v(f"accuracy/{fine}/-1"), pct=True),
                    fmt(v("steerability_score")),
                    fmt(v("clustering/0/ari")),
                    fmt(v("clustering/1/ari")),
                ]
            )
    return Table(
        "Open set: classes held out of training, mean ± sd over seeds",
        cols,
        rows,
        "Each run holds classes out of training and validation (unseen fine:F: a fraction F of the "
        "fine classes under each coarse class; coarse:K: K whole coarse classes), drawn per seed. "
        "Their test texts are queried by leave-one-out 5-NN against a seeded pool of test texts of "
        "every class (queries: the held-out texts; classes held out: among them, per level; each the "
        "range over seeds), so folding an unseen class into "
        "a seen one costs. k-means with as many clusters as labels, on the queries (– where the queries "
        "hold a single coarse class: no coarse grouping to score).",
    )
