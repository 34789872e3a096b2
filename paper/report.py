"""The paper's report: the library's tables and figures for the outline's methods, plus the
outline's own (ablations, complexity), the coarse-only methods, and the search targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from steerable.report import (
    Results,
    figure_link,
    figure_path,
    finish_report,
    header,
    named,
    numbered,
    protocol_means,
    summary_of,
)
from steerable.report.figures import funnel_curves, prefix_curves
from steerable.report.tables import (
    accuracy_table,
    adaptive_table,
    efficiency_table,
    funnel_table,
    hierarchy_table,
    retrieval_table,
    steerability_table,
    steerability_tests,
)
from steerable.runs import RunRecord

from .backbones import backbones_section
from .beyond import write_section
from .figures import figure2, figure3
from .goal import write_goal_section
from .grids import OPEN_SET_METHODS
from .search_targets import latency_table, search_targets
from .tables import ablation_summary, complexity_fit, table3
from .verdicts import recall_loss, recall_loss_verdict

PAPER_METHODS = ("flat", "flat_pca", "coarse_onehot", "mrl", "v5", "inverted", "no_prefix", "uhmt")  # Table 1
COMPARED = ("v5", "mrl")  # Table 5 and Figures 1 and 4
STEERABILITY = ("v5", "mrl", "flat", "flat_pca", "coarse_onehot")  # Table 2: V5 and MRL beside the floors
# The paper's numbers for the library's tables and figures (the library names them by content); the
# paper's own tables and figures carry theirs where they are made.
NUMBERING = {
    "accuracy": "Table 1",
    "steerability": "Table 2",
    "retrieval": "Table 4",
    "multistage": "Table 5",
    "adaptive": "Table 5b",
    "efficiency": "Table 6",
    "open_set": "Table 9",
    "prefix_curves.png": "Figure 1",
    "multistage.png": "Figure 4",
    "open_set.png": "Figure 7",
}


def _write(md: list[str], out: Path, table, stem: str) -> None:
    if table is not None and table.rows:
        table.write(out, stem)
        md += [table.markdown(), ""]


def _write_numbered(md: list[str], out: Path, table, content: str, suffix: str = "") -> None:
    """A library table, named and numbered as the paper numbers it."""
    stem, number = named(content, NUMBERING, suffix)
    _write(md, out, numbered(table, number), stem)


def write_report(
    records: Sequence[RunRecord],
    out: str | Path,
    formats: Sequence[str] = ("md",),
    bench: str | Path | None = None,
    data_dir: str | None = None,
    confirm: Sequence[RunRecord] = (),
    backbones: Sequence[RunRecord] = (),
) -> dict:
    """Write every table and figure into ``out``; returns the summary also saved as summary.json.

    ``records``: the main grids' runs; ``confirm``: the confirmation grid's (fresh seeds), kept apart
    so that no table averages them with the main seeds. ``bench``: a ``bench/search.py`` result JSON
    whose latency figures and search targets join the efficiency tables. ``data_dir``: where the data
    sets are, for the leakage figure's coarse-label reference when the records do not hold it.
    ``backbones``: the two-backbone grid's runs (``--part backbones``); with runs on two backbones, the
    report shows them side by side, each claim judged on each.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res = Results(records)
    summary = summary_of(res) | {"confirmation_runs": len(confirm)}
    md = header(res)
    _write(md, out, hierarchy_table(res), "hierarchy")
    for protocol in res.protocols:
        md += [f"## Protocol: {protocol}", "", res.describe(protocol), ""]
        tests = steerability_tests(res, protocol, *COMPARED)
        abl = ablation_summary(res, protocol)
        fit = complexity_fit(res, protocol)
        _write_numbered(md, out, accuracy_table(res, protocol, PAPER_METHODS), "accuracy", f"_{protocol}")
        _write_numbered(
            md,
            out,
            steerability_table(res, protocol, STEERABILITY, "mrl", {"v5": tests}),
            "steerability",
            f"_{protocol}",
        )
        _write(md, out, table3(res, protocol, abl), f"table3_ablations_{protocol}")
        figs = []
        path, number = figure_path(out, "prefix_curves", NUMBERING, f"_{protocol}")
        if prefix_curves(res, protocol, path, COMPARED, number):
            figs.append((f"{number}: prefix accuracy curves", path.name))
        if fit["points"]:
            figure2(fit, protocol, out / f"fig2_complexity_{protocol}.png")
            figs.append(("Figure 2: steerability vs complexity", f"fig2_complexity_{protocol}.png"))
        if abl:
            figure3(res, protocol, abl, out / f"fig3_ablations_{protocol}.png")
            figs.append(("Figure 3: ablations", f"fig3_ablations_{protocol}.png"))
        md += [f"![{title}]({name})" for title, name in figs] + [""]
        if "spearman_rho" in fit:
            md += [
                f"Figure 2 trend: slope {fit['slope']:+.3f} per bit of H(L1|L0); Spearman ρ = "
                f"{fit['spearman_rho']:.2f} (p = {fit['spearman_p']:.2g}, {len(fit['points'])} data sets).",
                "",
            ]
        summary["protocols"][protocol] = {
            "tests_v5_vs_mrl": tests,
            "ablations": abl,
            "complexity": fit,
            "means": protocol_means(res, protocol),
        }
    if res.retrieval:
        md += ["## Retrieval, multi-stage search and efficiency", ""]
        _write_numbered(md, out, retrieval_table(res), "retrieval")
        _write_numbered(md, out, funnel_table(res, COMPARED), "multistage")
        _write_numbered(md, out, adaptive_table(res), "adaptive")
        _write_numbered(md, out, efficiency_table(res), "efficiency")
        if bench is not None and Path(bench).exists():
            measured = json.loads(Path(bench).read_text())
            _write(md, out, latency_table(measured), "table6b_latency")
            targets, verdicts = search_targets(measured)
            if targets.rows:
                targets.write(out, "table6c_search_targets")
                md += [targets.markdown(), "", *[f"- {v}" for v in verdicts], ""]
        loss = recall_loss(res)
        if loss:
            md += [
                'The outline\'s claim "V5 loses 2 % recall vs MRL loses 9 % at 64-d": relative loss of '
                "fine-label Recall@10 at the shortest prefix against the full vector: "
                + "; ".join(
                    f"{ds}: V5 {100 * v.get('v5', float('nan')):.1f} %, MRL {100 * v.get('mrl', float('nan')):.1f} %"
                    for ds, v in loss.items()
                )
                + ". "
                + recall_loss_verdict(loss)[1],
                "",
            ]
        summary["retrieval_loss"] = loss
        path, number = figure_path(out, "multistage", NUMBERING)
        if funnel_curves(res, path, COMPARED, number):
            md += figure_link(path, number, "multi-stage search")
    beyond_md, beyond_summary = write_section(
        res, out, data_dir=data_dir, confirm=Results(confirm) if confirm else None
    )
    md += beyond_md
    if beyond_summary:
        summary["beyond"] = beyond_summary
    goal_md, goal_summary = write_goal_section(res, out)
    md += goal_md
    if goal_summary:
        summary["goal"] = goal_summary
    md += backbones_section(backbones)
    return finish_report(md, out, res, summary, formats, OPEN_SET_METHODS, numbering=NUMBERING)
