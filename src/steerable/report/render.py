"""A small table that renders to Markdown, CSV and LaTeX, and the number formats tables use."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text


class Table:
    """A small table that renders to Markdown, CSV and LaTeX."""

    def __init__(self, title: str, columns: list[str], rows: list[list], note: str = ""):
        self.title, self.columns, self.rows, self.note = title, columns, rows, note

    def markdown(self) -> str:
        def cell(c: object) -> str:
            return str(c).replace("|", "\\|")

        out = [
            f"**{self.title}**",
            "",
            "| " + " | ".join(cell(c) for c in self.columns) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in self.rows]
        if self.note:
            out += ["", self.note]
        return "\n".join(out)

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.columns)
        w.writerows(self.rows)
        return buf.getvalue()

    def latex(self) -> str:
        def esc(s: object) -> str:
            return (
                str(s)
                .replace("\\", "\\textbackslash{}")
                .replace("_", "\\_")
                .replace("%", "\\%")
                .replace("&", "\\&")
                .replace("#", "\\#")
                .replace("±", "$\\pm$")
                .replace("≤", "$\\leq$")
                .replace("|", "$|$")
            )

        lines = [
            "\\begin{table}[t]",
            "\\centering",
            f"\\caption{{{esc(self.title)}}}",
            "\\begin{tabular}{" + "l" * len(self.columns) + "}",
            "\\toprule",
            " & ".join(esc(c) for c in self.columns) + " \\\\",
            "\\midrule",
        ]
        lines += [" & ".join(esc(c) for c in r) + " \\\\" for r in self.rows]
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, stem: str, latex: bool = True) -> None:
        atomic_write_text(directory / f"{stem}.csv", self.csv())
        atomic_write_text(directory / f"{stem}.md", self.markdown() + "\n")
        if latex:
            atomic_write_text(directory / f"{stem}.tex", self.latex())


def fmt(values: dict[int, float], digits: int = 3, pct: bool = False) -> str:
    """Mean ± sample sd over seeds (a signed score, or a percentage with ``pct``); – when empty or
    undefined (nan) for every seed; over the seeds where it is defined, saying how many, when only
    some are."""
    defined = [v for v in values.values() if not math.isnan(v)]
    if not defined:
        return "–"
    x = np.array(defined) * (100 if pct else 1)
    d = 1 if pct else digits
    some = f" ({len(defined)} of {len(values)} seeds)" if len(defined) < len(values) else ""
    if len(x) == 1:
        return (f"{x[0]:.{d}f}" if pct else f"{x[0]:+.{d}f}") + some
    sign = "" if pct else "+"
    return f"{x.mean():{sign}.{d}f} ± {x.std(ddof=1):.{d}f}" + some


def fmt_p(p: float | None) -> str:
    """A p-value: two significant digits, scientific below 1e-4; – when missing."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"
