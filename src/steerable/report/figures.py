"""Figures any results store can give (PNG): accuracy along the prefix, and the funnel's recall
against its cost. Shared plotting helpers for other figures too."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_write  # noqa: E402
from ..methods import COLOURS, display_order, label, short_label  # noqa: E402
from .results import Results  # noqa: E402
from .tables import funnel_shortlists, retrieval_dims  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS = COLOURS  # the methods that have a colour of their own
OTHER_COLORS = (
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
    "darkgoldenrod",
)  # black: floors


def color(method: str, i: int = 0) -> str:
    """A method's colour in every figure; the ``i``-th of the others takes the next colour none of
    those uses."""
    return COLORS.get(method, OTHER_COLORS[i % len(OTHER_COLORS)])


def _numbered(number: str, title: str) -> str:
    """A figure title, headed by its number where it has one (``Figure 1: ...``), else capitalised."""
    return f"{number}: {title}" if number else title[0].upper() + title[1:]


def save(fig: Figure, path: Path) -> None:
    """Write a figure as PNG atomically and free it."""
    atomic_write(path, lambda p: fig.savefig(p, dpi=130, bbox_inches="tight", format="png"))
    plt.close(fig)


def prefix_curves(
    res: Results, protocol: str, path: Path, methods: Sequence[str] = ("v5", "mrl"), number: str = ""
) -> bool:
    """Coarse and fine k-NN accuracy against prefix dims, mean ± sd bands; False when no data set has
    the methods. ``number`` (``"Figure 1"``) heads the title where a document numbers its figures."""
    dss = [d for d in res.datasets if any(res.blocks.get((d, m, protocol)) for m in methods)]
    if not dss:
        return False
    fig, axes = plt.subplots(1, len(dss), figsize=(3.6 * len(dss), 3.3), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        for i, m in enumerate(methods):
            blocks = res.blocks.get((ds, m, protocol), {})
            if not blocks:
                continue
            dims = next(iter(blocks.values())).dims
            for level, style in zip((res.levels[ds][0], res.levels[ds][-1]), ("-", "--")):
                acc = np.array([[b.accuracy[level][str(d)] for d in dims] for b in blocks.values()])
                mean, sd = acc.mean(0), acc.std(0, ddof=1) if len(acc) > 1 else np.zeros(len(dims))
                name = "L0" if level == res.levels[ds][0] else "L1"
                ax.plot(dims, mean, style, color=color(m, i), marker="o", ms=3, label=f"{label(m)} {name}")
                ax.fill_between(dims, mean - sd, mean + sd, color=color(m, i), alpha=0.15)
            ax.set_xticks(dims)
        ax.set_title(ds, fontsize=10)
        ax.set_xlabel("prefix dims")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("k-NN accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(
        _numbered(number, f"accuracy vs prefix length ({protocol} protocol; bands: ± sd over seeds)"), fontsize=10
    )
    save(fig, path)
    return True


def funnel_curves(res: Results, path: Path, methods: Sequence[str] = ("v5", "mrl"), number: str = "") -> bool:
    """The funnel's overlap with exact search against its compute, per data set where
    every one of ``methods`` has retrieval metrics; False when none has."""
    dss = [d for d in res.datasets if all((d, m) in res.retrieval for m in methods)]
    if not dss:
        return False
    fig, axes = plt.subplots(1, len(dss), figsize=(3.8 * len(dss), 3.3), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        for i, m in enumerate(methods):
            runs = list(res.retrieval[(ds, m)].values())
            dims = retrieval_dims(res, ds, m)
            Ks = funnel_shortlists(res, ds, m)
            cost = [dims[0] / dims[-1] + K / res.n_docs[ds] for K in Ks]
            ov = [np.mean([r[f"funnel/overlap@10/{K}"] for r in runs]) for K in Ks]
            ax.plot(cost, ov, marker="o", color=color(m, i), label=label(m))
            for K, x, y in zip(Ks, cost, ov):
                ax.annotate(str(K), (x, y), fontsize=6, xytext=(2, -8), textcoords="offset points")
        ax.set_xlabel("FLOPs vs exact scan: d_prefix/d_full + K/N")
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("overlap with exact top 10")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(_numbered(number, "multi-stage search, recall vs cost (labels: shortlist K)"), fontsize=10)
    save(fig, path)
    return True


def _open_set_panel(
    ax: Axes, res: Results, ds: str, unseen: str, methods: Sequence[str] | None, others: list[str]
) -> None:
    """One panel of the open-set figure: a bar per method (mean ± sd over seeds), ``others`` fixing the colours of
    the methods :data:`COLORS` does not name."""
    coarse = res.levels[ds][0]
    present = display_order(m for d, m, u in res.open_set if (d, u) == (ds, unseen))
    shown = [m for m in (methods or present) if m in present]
    vals = [[o.at(coarse, 0) for o in res.open_set[(ds, m, unseen)].values()] for m in shown]
    ax.bar(
        [short_label(m) for m in shown],
        [np.mean(v) for v in vals],
        yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals],
        capsize=3,
        color=[color(m, others.index(m) if m in others else 0) for m in shown],
    )
    queries = np.mean([o.queries for m in shown for o in res.open_set[(ds, m, unseen)].values()])
    ax.set_title(f"{ds}, unseen {unseen} ({queries:.0f} queries)", fontsize=9)
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", labelsize=7, rotation=40)
    for t in ax.get_xticklabels():
        t.set_horizontalalignment("right")


def open_set_bars(res: Results, path: Path, methods: Sequence[str] | None = None, number: str = "") -> bool:
    """Coarse k-NN accuracy of unseen classes at the shortest prefix, per method, one panel
    per data set and kind of held-out class (one row per kind); False when no run held classes out."""
    keys = sorted({(ds, u) for ds, _, u in res.open_set})
    if not keys:
        return False
    rows = [[k for k in keys if k[1].split(":")[0] == kind] for kind in sorted({u.split(":")[0] for _, u in keys})]
    ncols = max(len(r) for r in rows)
    others = [m for m in display_order(m for _, m, _ in res.open_set) if m not in COLORS]  # one colour each
    fig, axes = plt.subplots(len(rows), ncols, figsize=(4.2 * ncols, 3.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for ax, (ds, unseen) in zip(axes[r], row):
            _open_set_panel(ax, res, ds, unseen, methods, others)
        for ax in axes[r][len(row) :]:
            ax.set_visible(False)
        axes[r][0].set_ylabel("coarse k-NN accuracy of unseen classes\nat the shortest prefix")
    fig.suptitle(_numbered(number, "open set, classes held out of training (mean ± sd over seeds)"), fontsize=10)
    fig.subplots_adjust(hspace=0.6)
    save(fig, path)
    return True
