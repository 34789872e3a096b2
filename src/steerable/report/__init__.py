"""Reports from a results store: tables (Markdown, CSV, LaTeX), figures (PNG), mteb results.

:func:`write_report` is the report of any sweep: the hierarchy, then per protocol the accuracy and
steerability tables (each method tested against a reference method) with the prefix curves, then
retrieval, the funnel, adaptive search and efficiency. The building blocks (``tables``, ``figures``,
``mteb``, :class:`Results`) are for reports of one's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_write_json, atomic_write_text
from ..methods import display_order, label
from ..runs.record import RunRecord
from ..runs.store import ResultsStore
from .figures import funnel_curves, open_set_bars, prefix_curves
from .mteb import write_mteb
from .render import Table
from .results import Results
from .tables import (
    STEER_METRICS,
    accuracy_table,
    adaptive_table,
    efficiency_table,
    funnel_table,
    hierarchy_table,
    open_set_table,
    retrieval_table,
    steerability_table,
    steerability_tests,
)

__all__ = [
    "Results",
    "Table",
    "write_report",
    "write_mteb",
    "load_records",
    "header",
    "protocol_means",
    "REPORT_FORMATS",
]

REPORT_FORMATS = ("md", "mteb")  # md: tables (Markdown, CSV, LaTeX), figures, summary; mteb: TaskResult files


def load_records(source: str | Path) -> list[RunRecord]:
    """The records of a results store folder."""
    return ResultsStore(source).records()


def coverage(res: Results) -> list[str]:
    """What the records cover, one clause per kind of run: the closed-set grid, the open-set runs."""
    parts = []
    if res.records:
        parts.append(
            f"{len(res.records)} runs; data sets {', '.join(res.datasets)}; methods "
            f"{', '.join(label(m) for m in res.methods)}; seeds {', '.join(map(str, res.seeds))}"
        )
    if res.open_set_records:
        o = res.open_set_records
        parts.append(
            f"{len(o)} open-set runs (classes held out of training); data sets "
            f"{', '.join(sorted({r.dataset for r in o}))}; methods "
            f"{', '.join(label(m) for m in display_order(r.method for r in o))}; seeds "
            f"{', '.join(map(str, sorted({r.seed for r in o})))}"
        )
    return parts


def header(res: Results, title: str = "# Steerable embeddings: results") -> list[str]:
    """The report's first lines: what the records cover."""
    return [
        title,
        "",
        *(f"{part}." for part in coverage(res)),
        f"Backbone {', '.join(res.backbones)}; head {', '.join(res.heads)}.",
        "",
    ]


def protocol_means(res: Results, protocol: str) -> dict:
    """``"<data set>/<method>"`` -> mean over seeds of each steerability metric."""
    return {
        f"{ds}/{m}": {
            k: float(np.mean(list(v.values()))) for k in STEER_METRICS if (v := res.values(ds, m, protocol, k))
        }
        for ds in res.datasets
        for m in res.methods
    }


def _section(md: list[str], out: Path, tables: Sequence[tuple[Table, str]]) -> None:
    for table, stem in tables:
        if table.rows:
            table.write(out, stem)
            md += [table.markdown(), ""]


def write_report(
    records: Sequence[RunRecord], out: str | Path, formats: Sequence[str] = ("md",), *, reference: str | None = None
) -> dict:
    """Write every table and figure into ``out`` (``report.md`` links them); returns the summary also
    saved as ``summary.json``. ``reference``: the method every other one is tested against in the
    steerability table (default: MRL when present, else the first method)."""
    out = Path(out)
    res = Results(records)  # refuses what it cannot report before anything is written
    out.mkdir(parents=True, exist_ok=True)
    methods = res.listed_methods()
    reference = reference or ("mrl" if "mrl" in methods or not methods else methods[0])
    summary: dict = {
        "protocols": {},
        "datasets": res.datasets,
        "methods": res.methods,
        "seeds": res.seeds,
        "backbones": res.backbones,
        "heads": res.heads,
        "runs": len(res.records),
        "open_set_runs": len(res.open_set_records),
    }
    md = header(res)
    _section(md, out, [(hierarchy_table(res), "hierarchy")])
    curves = [m for m in methods if m != "flat"][:4]
    for protocol in res.protocols:
        md += [f"## Protocol: {protocol}", "", res.describe(protocol), ""]
        tests = {m: steerability_tests(res, protocol, m, reference) for m in methods if m != reference}
        _section(
            md,
            out,
            [
                (accuracy_table(res, protocol, methods), f"table1_accuracy_{protocol}"),
                (steerability_table(res, protocol, methods, reference, tests), f"table2_steerability_{protocol}"),
            ],
        )
        if prefix_curves(res, protocol, out / f"fig1_prefix_curves_{protocol}.png", curves):
            md += [f"![Figure 1: prefix accuracy curves](fig1_prefix_curves_{protocol}.png)", ""]
        summary["protocols"][protocol] = {"tests": tests, "means": protocol_means(res, protocol)}
    if res.retrieval:
        md += ["## Retrieval, multi-stage search and efficiency", ""]
        _section(
            md,
            out,
            [
                (retrieval_table(res), "table4_retrieval"),
                (funnel_table(res), "table5_multistage"),
                (adaptive_table(res), "table5b_adaptive"),
                (efficiency_table(res), "table6_efficiency"),
            ],
        )
        if funnel_curves(res, out / "fig4_multistage.png", curves):
            md += ["![Figure 4: multi-stage search](fig4_multistage.png)", ""]
    return finish_report(md, out, res, summary, formats)


def finish_report(
    md: list[str],
    out: Path,
    res: Results,
    summary: dict,
    formats: Sequence[str],
    open_set_methods: Sequence[str] | None = None,
) -> dict:
    """Append the open-set section (when a run held classes out), then write ``report.md``,
    ``summary.json`` and, when asked, the mteb results (skipped with a note without mteb); returns
    ``summary``."""
    if res.open_set:
        md += ["## Open set: classes never seen in training", ""]
        _section(md, out, [(open_set_table(res, open_set_methods), "table9_open_set")])
        if open_set_bars(res, out / "fig7_open_set.png", open_set_methods):
            md += ["![Figure 7: open set](fig7_open_set.png)", ""]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    atomic_write_json(out / "summary.json", summary)
    if "mteb" in formats:
        write_mteb(res, out / "mteb")
    return summary
