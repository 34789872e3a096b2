"""Reports from a results store: tables (Markdown, CSV, LaTeX), figures (PNG), mteb results.

:func:`write_report` is the report of any sweep: the hierarchy, then per protocol the accuracy and
steerability tables (each method tested against a reference method) with the prefix curves, then
retrieval, the funnel, adaptive search and efficiency. The building blocks (``tables``, ``figures``,
``mteb``, :class:`Results`) are for reports of one's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import atomic_write_json, atomic_write_text
from ..methods import display_order, label, trains
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
    "Numbering",
    "named",
    "numbered",
    "figure_path",
    "figure_link",
    "Results",
    "Table",
    "write_report",
    "write_mteb",
    "load_records",
    "header",
    "protocol_means",
    "summary_of",
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


def summary_of(res: Results) -> dict:
    """The start of a report's ``summary.json``: what the records cover; ``protocols`` to be filled."""
    return {
        "protocols": {},
        "datasets": res.datasets,
        "methods": res.methods,
        "seeds": res.seeds,
        "backbones": res.backbones,
        "heads": res.heads,
        "runs": len(res.records),
        "open_set_runs": len(res.open_set_records),
    }


def protocol_means(res: Results, protocol: str) -> dict:
    """``"<data set>/<method>"`` -> mean over seeds of each steerability metric."""
    return {
        f"{ds}/{m}": {
            k: float(np.mean(list(v.values()))) for k in STEER_METRICS if (v := res.values(ds, m, protocol, k))
        }
        for ds in res.datasets
        for m in res.methods
    }


# A document that numbers its tables and figures maps their content names to its numbers: "accuracy" ->
# "Table 1", "prefix_curves.png" -> "Figure 1". Without one, files are named by content alone.
Numbering = Mapping[str, str]
_FILE_PREFIX = {"Table": "table", "Figure": "fig"}


def named(content: str, numbering: Numbering | None = None, suffix: str = "") -> tuple[str, str]:
    """(file stem, number) of a table (``content``) or figure (``content.png``): by content
    (``accuracy_standard``, no number), or as ``numbering`` numbers it (``table1_accuracy_standard``,
    ``"Table 1"``; ``fig1_prefix_curves_standard``, ``"Figure 1"``)."""
    number = (numbering or {}).get(content, "")
    stem = content.removesuffix(".png") + suffix
    if not number:
        return stem, ""
    kind, n = number.split(" ", 1)  # "Table 5b" -> table5b_...
    return f"{_FILE_PREFIX[kind]}{n.lower()}_{stem}", number


def numbered(table: Table, number: str) -> Table:
    """The table with its number heading its title (``Table 1: k-NN classification ...``; unchanged
    without one)."""
    if number:
        table.title = f"{number}: {table.title[0].lower()}{table.title[1:]}"
    return table


def _section(md: list[str], out: Path, tables: Sequence[tuple[Table, str, str]], numbering: Numbering | None) -> None:
    """Write each (table, content name, suffix) that has rows, named and numbered as ``numbering`` says."""
    for table, content, suffix in tables:
        stem, number = named(content, numbering, suffix)
        if table.rows:
            numbered(table, number).write(out, stem)
            md += [table.markdown(), ""]


def figure_path(out: Path, content: str, numbering: Numbering | None, suffix: str = "") -> tuple[Path, str]:
    """(path, number) of a figure, named as :func:`named` says."""
    stem, number = named(f"{content}.png", numbering, suffix)
    return out / f"{stem}.png", number


def figure_link(path: Path, number: str, title: str) -> list[str]:
    """The Markdown that shows a figure: "Figure 1: prefix accuracy curves", or "Prefix accuracy curves"
    where the document does not number it."""
    return [f"![{f'{number}: {title}' if number else title[0].upper() + title[1:]}]({path.name})", ""]


def write_report(
    records: Sequence[RunRecord],
    out: str | Path,
    formats: Sequence[str] = ("md",),
    *,
    reference: str | None = None,
    numbering: Numbering | None = None,
) -> dict:
    """Write every table and figure into ``out`` (``report.md`` links them), named by what they hold
    (``accuracy_standard.csv``, ``prefix_curves_standard.png``) or as ``numbering`` numbers them;
    returns the summary also saved as ``summary.json``. ``reference``: the method every other one is
    tested against in the steerability table (default: MRL when present, else the first method)."""
    out = Path(out)
    res = Results(records)  # refuses what it cannot report before anything is written
    out.mkdir(parents=True, exist_ok=True)
    methods = res.listed_methods()
    reference = reference or ("mrl" if "mrl" in methods or not methods else methods[0])
    summary = summary_of(res)
    md = header(res)
    _section(md, out, [(hierarchy_table(res), "hierarchy", "")], numbering)
    curves = [m for m in methods if trains(m)][:4]  # the trained heads' prefixes
    for protocol in res.protocols:
        md += [f"## Protocol: {protocol}", "", res.describe(protocol), ""]
        tests = {m: steerability_tests(res, protocol, m, reference) for m in methods if m != reference}
        _section(
            md,
            out,
            [
                (accuracy_table(res, protocol, methods), "accuracy", f"_{protocol}"),
                (steerability_table(res, protocol, methods, reference, tests), "steerability", f"_{protocol}"),
            ],
            numbering,
        )
        path, number = figure_path(out, "prefix_curves", numbering, f"_{protocol}")
        if prefix_curves(res, protocol, path, curves, number):
            md += figure_link(path, number, "prefix accuracy curves")
        summary["protocols"][protocol] = {"tests": tests, "means": protocol_means(res, protocol)}
    if res.retrieval:
        md += ["## Retrieval, multi-stage search and efficiency", ""]
        _section(
            md,
            out,
            [
                (retrieval_table(res), "retrieval", ""),
                (funnel_table(res), "multistage", ""),
                (adaptive_table(res), "adaptive", ""),
                (efficiency_table(res), "efficiency", ""),
            ],
            numbering,
        )
        path, number = figure_path(out, "multistage", numbering)
        if funnel_curves(res, path, curves, number):
            md += figure_link(path, number, "multi-stage search")
    return finish_report(md, out, res, summary, formats, numbering=numbering)


def finish_report(
    md: list[str],
    out: Path,
    res: Results,
    summary: dict,
    formats: Sequence[str],
    open_set_methods: Sequence[str] | None = None,
    numbering: Numbering | None = None,
) -> dict:
    """Append the open-set section (when a run held classes out), then write ``report.md``,
    ``summary.json`` and, when asked, the mteb results (skipped with a note without mteb); returns
    ``summary``."""
    if res.open_set:
        md += ["## Open set: classes never seen in training", ""]
        _section(md, out, [(open_set_table(res, open_set_methods), "open_set", "")], numbering)
        path, number = figure_path(out, "open_set", numbering)
        if open_set_bars(res, path, open_set_methods, number):
            md += figure_link(path, number, "open set")
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    atomic_write_json(out / "summary.json", summary)
    if "mteb" in formats:
        write_mteb(res, out / "mteb")
    return summary
