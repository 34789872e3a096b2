"""The coarse-only methods in the report: HEAL and the new methods side by side (Table 7), their
seed variance on five other seeds (Table 7b), the steerability dial (Table 8, Figure 5: steerability vs
multi-stage recall) and prefix leakage (Figure 6: what a linear probe reads off the 64-d prefix).

Every number comes from the records of a results store; significance is a paired t-test over
matched seeds, Holm-corrected across data sets, as for V5 vs MRL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steerable.data import HierarchicalDataset, load_dataset
from steerable.methods import label, mrl_reference, parse_dial, short_label
from steerable.metrics import coarse_only_accuracy
from steerable.report import Results, Table
from steerable.report.figures import plt, save
from steerable.report.render import fmt, fmt_p
from steerable.report.tables import steerability_tests
from steerable.runs import RunRecord

from .grids import CONFIRM_METHODS

BEYOND_ORDER = [
    "flat",
    "flat_pca",
    "coarse_onehot",
    "mrl",
    "v5",
    "mrl_supcon",
    "heal",
    "separated",
    "successive",
    "successive_balanced",
    "adversarial",
    "adversarial_mrl",
    "anchored",
    "bottleneck",
]
BASELINES = ("heal", "v5")
DIAL_MIDPOINT = "dial@0.5"  # listed with the methods: both prefix parts vary equally within a class
LISTED = BEYOND_ORDER + [DIAL_MIDPOINT]
FUNNEL_K = 20  # shortlist size of the Pareto figure's multi-stage search


def beyond_datasets(res: Results) -> list[str]:
    return [ds for ds in res.datasets if any(m == "heal" for (d, m, _) in res.blocks if d == ds)]


def dial_settings(res: Results, ds: str) -> list[tuple[float, str]]:
    """(dial value, method) of the dial runs on a data set, by value."""
    out = {(v, m) for (d, m, _) in res.blocks if d == ds and (v := parse_dial(m)) is not None}
    return sorted(out)


def beyond_tests(res: Results, protocol: str) -> dict[str, dict[str, dict]]:
    """tests[f"{method}|{baseline}"][dataset]: paired test of S, Holm across data sets."""
    methods = [m for m in LISTED if m in res.methods and m not in ("flat",)]
    out = {}
    for base in BASELINES:
        for m in methods:
            if m != base:
                out[f"{m}|{base}"] = {
                    ds: t for ds, t in steerability_tests(res, protocol, m, base).items() if ds in beyond_datasets(res)
                }
    return out


def table7(res: Results, protocol: str, tests: dict) -> Table:
    cols = [
        "data set",
        "method",
        "S",
        "ShortCoarse",
        "FullFine",
        "fine probe @64",
        "Δ S vs HEAL",
        "p (Holm) vs HEAL",
        "Δ S vs V5",
        "p (Holm) vs V5",
    ]
    rows = []
    for ds in beyond_datasets(res):
        fine = res.levels[ds][-1]
        for m in [m for m in LISTED if res.values(ds, m, protocol, "steerability_score")]:
            row = [ds, label(m)] + [
                fmt(res.values(ds, m, protocol, k)) for k in ("steerability_score", "short_coarse", "full_fine")
            ]
            row.append(fmt(res.probe(ds, m, fine), pct=True))
            for base in BASELINES:
                t = tests.get(f"{m}|{base}", {}).get(ds)
                row += [f"{t['mean_diff']:+.3f}", fmt_p(t["p_holm"])] if t else ["", ""]
            rows.append(row)
    return Table(
        f"Table 7: beyond V5 — steerability, accuracy and leakage, mean ± sd over seeds ({protocol} protocol)",
        cols,
        rows,
        res.describe(protocol) + " fine probe @64 = test accuracy (%) of a linear probe trained "
        "on the 64-d prefix to predict the finest label (what sharing the prefix leaks). Δ S "
        "and p: paired t-test over matched seeds, Holm-corrected across data sets.",
    )


def _funnel(res: Results, ds: str, m: str, K: int) -> dict[int, float]:
    fine = res.levels[ds][-1]
    return {
        s: r[f"funnel/recall@10/{fine}/{K}"]
        for s, r in res.retrieval.get((ds, m), {}).items()
        if f"funnel/recall@10/{fine}/{K}" in r
    }


def _overlap(res: Results, ds: str, m: str, K: int) -> dict[int, float]:
    return {
        s: r[f"funnel/overlap@10/{K}"]
        for s, r in res.retrieval.get((ds, m), {}).items()
        if f"funnel/overlap@10/{K}" in r
    }


def table8(res: Results, protocol: str) -> Table:
    cols = [
        "data set",
        "dial",
        "S",
        "ShortCoarse",
        "FullFine",
        f"funnel R@10 L1 (K={FUNNEL_K})",
        f"funnel overlap@10 (K={FUNNEL_K})",
        "fine probe @64",
    ]
    rows = []
    for ds in res.datasets:
        fine = res.levels[ds][-1]
        for value, m in dial_settings(res, ds):
            rows.append(
                [ds, f"{value:g}"]
                + [fmt(res.values(ds, m, protocol, k)) for k in ("steerability_score", "short_coarse", "full_fine")]
                + [
                    fmt(_funnel(res, ds, m, FUNNEL_K), pct=True),
                    fmt(_overlap(res, ds, m, FUNNEL_K)),
                    fmt(res.probe(ds, m, fine), pct=True),
                ]
            )
    return Table(
        f"Table 8: the steerability dial, mean ± sd over seeds ({protocol} protocol)",
        cols,
        rows,
        res.describe(protocol) + " One model per seed is trained for all settings; the dial "
        "sets how the 64-d prefix mixes its coarse-posterior and free parts (0: free, 1: "
        f"coarse posterior only). Funnel: the 64-d prefix shortlists {FUNNEL_K} documents, the "
        "full vector reranks them (seeded 50/50 query/document split of the test set).",
    )


def figure5(res: Results, protocol: str, path: Path) -> bool:
    """Pareto: steerability S vs multi-stage recall@10 along the dial, other methods as points."""
    dss = [ds for ds in res.datasets if dial_settings(res, ds)]
    if not dss:
        return False
    fig, axes = plt.subplots(1, len(dss), figsize=(4.4 * len(dss), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], dss):

        def point(m):
            s, f = res.values(ds, m, protocol, "steerability_score"), _funnel(res, ds, m, FUNNEL_K)
            seeds = sorted(set(s) & set(f))
            return (np.mean([f[k] for k in seeds]), np.mean([s[k] for k in seeds])) if seeds else None

        settings = [(v, m, point(m)) for v, m in dial_settings(res, ds)]
        settings = [(v, m, p) for v, m, p in settings if p]
        ax.plot(
            [p[0] for *_, p in settings], [p[1] for *_, p in settings], "-o", color="tab:purple", label="dial", zorder=3
        )
        for v, _, p in settings:
            ax.annotate(f"{v:g}", p, fontsize=7, xytext=(4, 2), textcoords="offset points")
        for m, marker in (
            ("mrl", "s"),
            ("v5", "^"),
            ("mrl_supcon", "X"),
            ("heal", "D"),
            ("separated", "v"),
            ("successive_balanced", "P"),
            ("adversarial", "h"),
            ("adversarial_mrl", "H"),
            ("anchored", "8"),
            ("bottleneck", "*"),
        ):
            p = point(m)
            if p:
                ax.scatter(*p, marker=marker, s=40, label=label(m), zorder=4)
        ax.set_title(ds, fontsize=10)
        ax.set_xlabel(f"funnel recall@10, fine label (K={FUNNEL_K})", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("steerability S")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(
        f"Figure 5: steerability vs multi-stage search along the dial ({protocol} protocol; mean "
        f"over seeds; funnel = 64-d shortlist of {FUNNEL_K}, full-vector rerank)",
        fontsize=10,
    )
    save(fig, path)
    return True


def coarse_only_references(records: list[RunRecord], data_dir: str | None = None) -> dict[str, float]:
    """Per data set: what the coarse label alone tells about the fine one (majority child of the true
    coarse class, mean over the runs' seeded caps). Taken from the records' probes where they hold
    it, else recomputed from the data (labels only; no model involved); data sets that cannot be
    loaded are left out."""
    out: dict[str, list[float]] = {}
    loaded: dict[str, HierarchicalDataset] = {}
    for r in records:
        if r.probe is None:
            continue
        fine = r.level_names[-1]
        if r.probe.coarse_only:
            out.setdefault(r.dataset, []).append(r.probe.coarse_only[fine])
            continue
        try:
            ds = loaded.setdefault(r.dataset, load_dataset(r.dataset, data_dir))
        except Exception:  # noqa: BLE001 - the reference is optional
            continue
        y_tr = ds.train.cap(r.spec.get("max_train"), r.seed).labels
        y_te = ds.test.cap(r.spec.get("max_test"), r.seed).labels
        out.setdefault(r.dataset, []).append(coarse_only_accuracy(y_tr, y_te, y_tr.shape[1] - 1))
    return {ds: float(np.mean(v)) for ds, v in out.items()}


def figure6(res: Results, path: Path, references: dict[str, float] | None = None) -> bool:
    """Leakage: fine-label accuracy of a linear probe on the 64-d prefix, per method and data set."""
    dss = [ds for ds in res.datasets if any(res.probe(ds, m, res.levels[ds][-1]) for m in LISTED)]
    if not dss:
        return False
    fig, axes = plt.subplots(1, len(dss), figsize=(4.2 * len(dss), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        fine = res.levels[ds][-1]
        methods = [m for m in LISTED if res.probe(ds, m, fine)]
        vals = [list(res.probe(ds, m, fine).values()) for m in methods]
        ax.bar(
            [short_label(m) for m in methods],
            [np.mean(v) for v in vals],
            yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals],
            capsize=3,
            color=[
                "tab:gray"
                if m == "flat"
                else "tab:blue"
                if m == "mrl"
                else "tab:red"
                if m == "v5"
                else "tab:orange"
                if m == "heal"
                else "tab:green"
                for m in methods
            ],
        )
        if references and ds in references:
            ax.axhline(
                references[ds], color="black", ls=":", lw=1, label="the coarse label alone (its most frequent child)"
            )
            ax.legend(fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(ds, fontsize=10)
        ax.tick_params(axis="x", labelsize=7, rotation=40)
        for t in ax.get_xticklabels():
            t.set_ha("right")
    axes[0][0].set_ylabel("fine-label accuracy of a linear probe")
    fig.suptitle("Figure 6: what the 64-d prefix leaks about the fine label (mean ± sd over seeds)", fontsize=10)
    save(fig, path)
    return True


def confirmation_tests(confirm: Results, protocol: str) -> dict[str, dict[str, dict]]:
    """tests[method][dataset]: paired tests of S, each of :data:`~paper.grids.CONFIRM_METHODS`
    present vs HEAL, over the fresh seeds (Holm across data sets)."""
    if protocol not in confirm.protocols or "heal" not in confirm.methods:
        return {}
    return {
        m: t
        for m in CONFIRM_METHODS
        if m in confirm.methods and (t := steerability_tests(confirm, protocol, m, "heal"))
    }


def prefix_ranks(res: Results, ds: str, method: str) -> list[tuple[int, int]]:
    """(numerical rank, full rank) of each run's test-set prefixes, for the runs that recorded it;
    full rank = min(prefix dim, test examples - 1), the most a centred prefix matrix can have."""
    out = []
    for r in res.records:
        if r.dataset == ds and r.method == method and r.probe is not None and r.probe.rank is not None:
            out.append((r.probe.rank, int(min(r.probe.dim, r.n_test - 1))))
    return out


def table7b(confirm: Results, protocol: str, tests: dict[str, dict[str, dict]]) -> Table:
    cols = [
        "method",
        "data set",
        "S",
        "S HEAL",
        "Δ S",
        "p",
        "p (Holm)",
        "seeds",
        "prefix rank",
        "prefix rank HEAL",
        "ShortCoarse / FullFine (%)",
        "MRL",
        "MRL, same recipe",
    ]

    def accuracies(ds: str, m: str) -> str:
        sc, ff = (confirm.values(ds, m, protocol, k) for k in ("short_coarse", "full_fine"))
        return f"{100 * np.mean(list(sc.values())):.1f} / {100 * np.mean(list(ff.values())):.1f}" if sc else "–"

    rows = []
    for m, by_ds in tests.items():
        same = mrl_reference(m)
        for ds, t in by_ds.items():
            ranks = [prefix_ranks(confirm, ds, x) for x in (m, "heal")]
            rows.append(
                [
                    label(m),
                    ds,
                    fmt(confirm.values(ds, m, protocol, "steerability_score")),
                    fmt(confirm.values(ds, "heal", protocol, "steerability_score")),
                    f"{t['mean_diff']:+.3f}",
                    fmt_p(t["p"]),
                    fmt_p(t["p_holm"]),
                    ", ".join(map(str, t["seeds"])),
                    *[f"{min(r)[0]}–{max(r)[0]} of {r[0][1]}" if r else "–" for r in ranks],
                    accuracies(ds, m),
                    accuracies(ds, "mrl"),
                    "(the same)" if same == "mrl" else accuracies(ds, same),
                ]
            )
    return Table(
        f"Table 7b: seed variance: the methods chosen on the main grid against HEAL again on five "
        f"other seeds ({protocol} protocol)",
        cols,
        rows,
        "Each method here was chosen after seeing the main grid (a setting picked among several, see "
        "paper/selections.md). Other seeds measure how much the comparison moves with the seed; they "
        "are not fresh data (TREC's test split is smaller than the cap, so every seed tests the same "
        "texts), and the claims are confirmed on the confirmation data sets instead. Paired t-test "
        "over the seeds, Holm across data sets per method; prefix rank = numerical rank of the 64-d "
        "test-set prefixes (singular values above 1e-3 of the largest) of the full rank possible. "
        "Accuracies: means over the same seeds; MRL is the paper's, the same-recipe MRL is trained with "
        "the method's recipe.",
    )


def write_section(
    res: Results, out: Path, protocol: str = "standard", data_dir: str | None = None, confirm: Results | None = None
) -> tuple[list[str], dict]:
    """Markdown lines and a summary for the report; empty when no beyond-V5 runs are present.

    ``confirm``: the seed-variance reruns (:func:`~paper.grids.confirm_sweep`'s records), for Table 7b.
    """
    if protocol not in res.protocols:
        return [], {}
    tests = beyond_tests(res, protocol)
    md, summary = [], {}
    t7, t8 = table7(res, protocol, tests), table8(res, protocol)
    if not t7.rows and not t8.rows:
        return [], {}
    md += [f"## Beyond V5: HEAL, the new methods and the steerability dial ({protocol} protocol)", ""]
    confirmed = confirmation_tests(confirm, protocol) if confirm is not None else {}
    t7b = table7b(confirm, protocol, confirmed) if confirm is not None and confirmed else None
    for t, stem in ((t7, "table7_beyond"), (t7b, "table7b_confirmation"), (t8, "table8_dial")):
        if t is not None and t.rows:
            t.write(out, f"{stem}_{protocol}")
            md += [t.markdown(), ""]
    if figure5(res, protocol, out / f"fig5_dial_pareto_{protocol}.png"):
        md += [f"![Figure 5: steerability vs multi-stage recall along the dial](fig5_dial_pareto_{protocol}.png)", ""]
    references = coarse_only_references(res.records, data_dir)
    if figure6(res, out / "fig6_leakage.png", references):
        md += ["![Figure 6: prefix leakage](fig6_leakage.png)", ""]
    summary = {
        "tests": tests,
        "confirmation_tests": confirmed,
        "coarse_only_reference": references,
        "means": {
            f"{ds}/{m}": {
                k: float(np.mean(list(v.values())))
                for k in ("steerability_score", "short_coarse", "full_fine")
                if (v := res.values(ds, m, protocol, k))
            }
            | ({"fine_probe": float(np.mean(list(p.values())))} if (p := res.probe(ds, m, res.levels[ds][-1])) else {})
            | (
                {f"funnel_recall@10_K{FUNNEL_K}": float(np.mean(list(f.values())))}
                if (f := _funnel(res, ds, m, FUNNEL_K))
                else {}
            )
            for ds in res.datasets
            for m in res.methods
            if m in BEYOND_ORDER or parse_dial(m) is not None
        },
    }
    return md, summary
