"""Two backbones side by side (``python -m paper --part backbones``): the same grid on each, the
measurements beside each other, and every claim of ``paper/claims.json`` judged on each backbone's
runs alone, so a verdict that holds on one encoder and not the other shows.

The grid: Flat, MRL, V5, HEAL, Adversarial and Bottleneck on the selection data sets (CLINC, TREC,
20 Newsgroups), three seeds, the paper's caps, on the default backbone and on all-mpnet-base-v2 (the
``mpnet`` extra). Claims about methods outside this grid are judged "not run".
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from steerable.atomic import atomic_write
from steerable.backbone import DEFAULT_BACKBONE
from steerable.methods import label
from steerable.report import Results
from steerable.runs import RunRecord, SweepSpec

from .claims import load_claims
from .grids import CAPS, SELECTION_DATASETS
from .verdicts import judge

BACKBONE_METHODS = ("flat", "mrl", "v5", "heal", "adversarial", "bottleneck")
BACKBONE_SEEDS = (42, 123, 456)
SECOND_BACKBONE = "all-mpnet-base-v2"


def backbone_sweep(
    datasets: Sequence[str],
    *,
    quick: bool = False,
    seeds: Sequence[int] | None = None,
    settings: dict | None = None,
    backbones: Sequence[str] | None = None,
) -> SweepSpec:
    """The grid on each backbone (default: the settings' backbone, or the default one, and mpnet)."""
    base = CAPS | (settings or {})
    first = base.pop("backbone", DEFAULT_BACKBONE)
    ds = [d for d in SELECTION_DATASETS if d in datasets]
    if quick:
        ds = ds[:1]
    return SweepSpec(
        ds,
        BACKBONE_METHODS,
        seeds or (BACKBONE_SEEDS[:2] if quick else BACKBONE_SEEDS),
        list(backbones or (first, SECOND_BACKBONE)),
        settings=base,
    )


def _mean(values: dict) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


def _cell(x: float | None, scale: float = 100.0, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.3f}" if signed else f"{scale * x:.1f}"


def comparison_rows(by_backbone: dict[str, Results], protocol: str = "standard") -> list[list[str]]:
    """Per data set and method: ShortCoarse, FullFine, S and the fine-label leakage probe on the
    prefix (linear probe accuracy), mean over seeds, on each backbone."""
    rows = []
    datasets = sorted({d for res in by_backbone.values() for d in res.datasets})
    methods = [m for m in BACKBONE_METHODS if any(m in res.methods for res in by_backbone.values())]
    for ds in datasets:
        for m in methods:
            row = [ds, label(m)]
            for res in by_backbone.values():
                fine = res.levels[ds][-1] if ds in res.levels else None
                row += [
                    _cell(_mean(res.values(ds, m, protocol, "short_coarse"))),
                    _cell(_mean(res.values(ds, m, protocol, "full_fine"))),
                    _cell(_mean(res.values(ds, m, protocol, "steerability_score")), signed=True),
                    _cell(_mean(res.probe(ds, m, fine)) if fine else None),
                    str(len(res.values(ds, m, protocol, "full_fine"))),
                ]
            rows.append(row)
    return rows


def verdict_rows(by_backbone: dict[str, Results], claims: dict) -> list[list[str]]:
    """Each claim's verdict(s) under each of its protocols, on each backbone's runs alone, and
    whether they agree."""
    rows = []
    for claim in claims["claims"]:
        for protocol in claim["protocols"]:
            if not all(protocol in res.protocols for res in by_backbone.values()):
                continue
            texts = [
                "; ".join(
                    f"{v.where + ': ' if v.where else ''}{v.verdict}" for v in judge(claim, res, claims, protocol)
                )
                for res in by_backbone.values()
            ]
            rows.append([claim["id"], protocol, *texts, "yes" if len(set(texts)) == 1 else "**no**"])
    return rows


def _markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def backbones_section(
    records: Sequence[RunRecord],
    protocols: Sequence[str] = ("standard", "paper"),
    claims: dict | None = None,
    level: int = 2,
) -> list[str]:
    """Markdown lines: one comparison table per protocol the runs measured, and the claims' verdicts on
    each backbone, under a heading of ``level``; empty when the records hold fewer than two backbones."""
    claims = claims or load_claims()
    names = sorted({r.backbone for r in records}, key=lambda b: (b != DEFAULT_BACKBONE, b))  # the default first
    if len(names) < 2:
        return []
    by_backbone = {b: Results([r for r in records if r.backbone == b]) for b in names}
    short = {b: b.rsplit("/", 1)[-1] for b in names}
    h = "#" * level
    seeds = ", ".join(map(str, sorted({r.seed for r in records})))
    md = [
        f"{h} Two backbones: {' and '.join(short.values())}",
        "",
        f"Mean over seeds ({seeds}); ShortCoarse and FullFine in %, S, and the leakage probe (a linear "
        "probe's fine-label accuracy on the 64-d prefix, %, the same under either protocol); n = seeds.",
        "",
    ]
    cols = [f"{c} ({short[b]})" for b in names for c in ("ShortCoarse", "FullFine", "S", "leakage", "n")]
    for protocol in [p for p in protocols if any(p in res.protocols for res in by_backbone.values())]:
        md += [f"{h}# Protocol `{protocol}`", ""]
        md += _markdown(["data set", "method", *cols], comparison_rows(by_backbone, protocol)) + [""]
    md += [
        f"{h}# The claims on each backbone",
        "",
        "Each claim of `paper/claims.json` judged on one backbone's runs alone (claims about methods "
        "or data sets outside this grid: not run).",
        "",
    ]
    md += _markdown(
        ["claim", "protocol", *(short[b] for b in names), "same verdict"], verdict_rows(by_backbone, claims)
    ) + [""]
    return md


def write_backbones(records: Sequence[RunRecord], out: str | Path, claims: dict | None = None) -> Path:
    """``<out>/backbones.md``: :func:`backbones_section` as a page of its own."""
    md = backbones_section(records, claims=claims, level=1)
    if not md:
        names = sorted({r.backbone for r in records})
        raise ValueError(f"the backbone comparison needs runs on two backbones; the store has {', '.join(names)}")
    path = Path(out) / "backbones.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text("\n".join(md), encoding="utf-8"))
    return path
