"""The goal's report: a prefix that steers on the classes it trained and generalises to those it did not.

Table 10 puts every method's closed-set figures (S, ShortCoarse, FullFine, the fine probe, CPCC and the
rank correlation with the backbone's cosines at 64 dims) beside its coarse accuracy at 64 dims on
unseen coarse classes and on unseen fine classes; Table 11 says what each open-set draw held out and
how many texts it queried; Figure 10 (one per data set) is the Pareto view, S on the known classes against reach on
unseen coarse classes, one point per method and setting, the floors marked.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from steerable.methods import display_order, label, parse_setting, short_label
from steerable.report import Results
from steerable.report.figures import color, plt, save
from steerable.report.render import Table, fmt
from steerable.report.tables import open_set_values
from steerable.runs import OpenSet

FLOORS = ("flat_pca", "flat_random", "flat", "coarse_onehot")
FLOOR_MARKERS = {"flat_pca": "*", "flat_random": "X", "flat": "P", "coarse_onehot": "D"}


def _unseen_kind(res: Results, ds: str, m: str, kind: str) -> str | None:
    specs = sorted(u for d, mm, u in res.open_set if d == ds and mm == m and u.startswith(kind))
    return specs[0] if specs else None


def unseen_accuracy(res: Results, ds: str, m: str, kind: str) -> dict[int, float]:
    """Seed -> coarse k-NN accuracy at the shortest prefix on the held-out texts of ``kind`` runs."""
    spec = _unseen_kind(res, ds, m, kind)
    return open_set_values(res, ds, m, spec, f"accuracy/{res.levels[ds][0]}/0") if spec else {}


def goal_methods(res: Results) -> list[str]:
    """Every method with closed-set or open-set runs, in registry order (the dial's settings left out)."""
    present = {m for _, m, _ in res.blocks} | {m for _, m, _ in res.open_set}
    return [m for m in display_order(present) if parse_setting(m)[0] != "dial"]


def goal_table(res: Results, protocol: str = "standard") -> Table:
    cols = [
        "data set",
        "method",
        "S",
        "ShortCoarse (%)",
        "FullFine (%)",
        "fine probe @64 (%)",
        "CPCC @64",
        "backbone ρ @64",
        "unseen coarse: coarse @64 (%)",
        "unseen fine: coarse @64 (%)",
        "seeds",
    ]
    rows = []
    datasets = sorted({ds for ds, _, _ in res.blocks} | {ds for ds, _, _ in res.open_set})
    for ds in datasets:
        fine = res.levels[ds][-1]
        for m in goal_methods(res):
            closed = res.values(ds, m, protocol, "steerability_score")
            coarse, fine_open = unseen_accuracy(res, ds, m, "coarse"), unseen_accuracy(res, ds, m, "fine")
            if not (closed or coarse or fine_open):
                continue
            rows.append(
                [
                    ds,
                    label(m),
                    fmt(closed),
                    fmt(res.values(ds, m, protocol, "short_coarse"), pct=True),
                    fmt(res.values(ds, m, protocol, "full_fine"), pct=True),
                    fmt(res.probe(ds, m, fine), pct=True),
                    fmt(res.shape(ds, m, "cpcc")),
                    fmt(res.shape(ds, m, "backbone_spearman")),
                    fmt(coarse, pct=True),
                    fmt(fine_open, pct=True),
                    f"{len(closed)} / {len(coarse)} / {len(fine_open)}",
                ]
            )
    return Table(
        "Table 10: steer and generalise, mean ± sd over seeds",
        cols,
        rows,
        f"Closed-set figures under the {protocol} protocol, on the test texts of every class; the fine "
        "probe is a linear probe's fine-label accuracy on the 64-d prefix (lower: less fine information); "
        "CPCC: Pearson's r of prefix cosine distance against the label tree's distance; backbone ρ: "
        "Spearman's rank correlation of the prefix's pairwise cosines with the backbone's (how much of "
        "its geometry is kept); both over the pairs of 1,000 seeded test texts. Unseen: coarse k-NN "
        "accuracy at 64 dims of the texts of classes held out of training (whole coarse classes; a fifth "
        "of the fine classes of every coarse class), queried against a pool of every class (Table 11 "
        "says what each draw held out). Seeds: closed / unseen coarse / unseen fine.",
    )


def draws_table(res: Results) -> Table:
    """What each kind of open-set run held out on each data set: per seed the same for every method."""
    cols = ["data set", "asked for", "drawn", "seeds", "held out", "queries (min–max)"]
    rows = []
    for ds, unseen in sorted({(ds, u) for ds, _, u in res.open_set}):
        by_seed: dict[int, OpenSet] = {}
        for (d, _, u), seeds in res.open_set.items():
            if (d, u) == (ds, unseen):
                for seed, o in seeds.items():
                    by_seed.setdefault(seed, o)
        drawn = Counter(o.drawn for o in by_seed.values())
        names: Counter[str] = Counter()
        for o in by_seed.values():
            classes = o.held_out_classes
            coarse: list[str] = next(iter(classes.values()), [])
            if coarse:
                names[", ".join(coarse)] += 1
            elif classes:
                names[f"{len(list(classes.values())[-1])} fine classes"] += 1
        queries = [o.queries for o in by_seed.values()]
        rows.append(
            [
                ds,
                unseen,
                ", ".join(f"{k} ×{n}" for k, n in drawn.items()),
                len(by_seed),
                "; ".join(f"{k} ×{n}" for k, n in names.most_common()) or "–",
                f"{min(queries)}–{max(queries)}",
            ]
        )
    return Table(
        "Table 11: what the open-set draws held out",
        cols,
        rows,
        "Each seed draws its held-out classes (the same for every method of that seed) so that they hold "
        "at least 200 of the test texts queried (after the cap); where no draw of the amount asked for "
        "does, the amount grows and 'drawn' says so. Held out: the coarse classes held out whole, or how "
        "many fine classes, with how many seeds drew them.",
    )


def pareto_points(res: Results, ds: str, protocol: str = "standard") -> list[tuple[str, dict, dict]]:
    """(method, seed -> S, seed -> reach) of every method with closed-set runs and runs holding whole
    coarse classes out on ``ds``."""
    out = []
    for m in goal_methods(res):
        s, reach = res.values(ds, m, protocol, "steerability_score"), unseen_accuracy(res, ds, m, "coarse")
        if s and reach:
            out.append((m, s, reach))
    return out


def pareto_figure(res: Results, ds: str, path: Path, protocol: str = "standard") -> bool:
    """Figure 10 for one data set: S on the known classes against coarse accuracy at 64 dims on unseen
    coarse classes, one point per method and setting (mean ± sd over seeds); a method's settings joined
    by a line; the floors in black. False when no method has both kinds of runs there."""
    pts = pareto_points(res, ds, protocol)
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    families: dict[str, list] = {}
    for m, s, reach in pts:
        families.setdefault(parse_setting(m)[0], []).append((m, s, reach))
    for i, (base, members) in enumerate(families.items()):
        xs = [100 * np.mean(list(r.values())) for _, _, r in members]
        ys = [np.mean(list(s.values())) for _, s, _ in members]
        c = "black" if base in FLOORS else color(base, i)
        if len(members) > 1:
            ax.plot(xs, ys, "-", color=c, lw=0.8, alpha=0.6)
        for (m, s, r), x, y in zip(members, xs, ys):
            xe = 100 * np.std(list(r.values()), ddof=1) if len(r) > 1 else 0
            ye = np.std(list(s.values()), ddof=1) if len(s) > 1 else 0
            ax.errorbar(
                x,
                y,
                xerr=xe,
                yerr=ye,
                fmt=FLOOR_MARKERS.get(base, "o"),
                color=c,
                ms=8 if base in FLOORS else 4,
                lw=0.6,
                capsize=2,
                alpha=0.9,
            )
            ax.annotate(short_label(m), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    pca = [reach for m, _, reach in pts if m == "flat_pca"]
    if pca:
        ax.axvline(100 * np.mean(list(pca[0].values())), color="gray", ls=":", lw=0.8)
    ax.set_xlabel("unseen coarse classes: coarse k-NN accuracy @64 (%)")
    ax.set_ylabel(f"S on the known classes ({protocol} protocol)")
    ax.set_title(
        f"Figure 10 ({ds}): steerability against reach\n(mean ± sd over seeds; floors in black; "
        "dotted: PCA-64's reach)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    save(fig, path)
    return True


def write_goal_section(res: Results, out: Path, protocol: str = "standard") -> tuple[list[str], dict]:
    """The goal's tables and figure, written into ``out``; (Markdown lines, summary)."""
    if not res.open_set:
        return [], {}
    md = ["## Steer and generalise", ""]
    summary = {}
    for table, stem in ((goal_table(res, protocol), "table10_goal"), (draws_table(res), "table11_draws")):
        if table.rows:
            table.write(out, stem)
            md += [table.markdown(), ""]
            summary[stem] = len(table.rows)
    for ds in sorted({ds for ds, _, _ in res.blocks}):
        if pareto_figure(res, ds, out / f"fig10_pareto_{ds}.png", protocol):
            md += [f"![Figure 10 ({ds}): steerability against reach](fig10_pareto_{ds}.png)", ""]
    return md, summary
