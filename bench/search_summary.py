"""The tables ``docs/search.md`` quotes, printed as Markdown from ``bench/search.py``'s JSON.

    python bench/search_summary.py [bench/out/search.json]

The collection and its query sets; MRL-distill's selection (``--select-distill``); per head, the
contenders at the settings chosen on the selection queries and the real engines' funnel rows, each
on the evaluation queries; the targets as ``paper/search_targets.py`` judges them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # paper/, from a source checkout

from paper.search_targets import bench_heads, search_targets  # noqa: E402
from steerable.methods import label  # noqa: E402

DEFAULT = Path(__file__).with_name("out") / "search.json"


def cell(row: dict) -> str:
    """recall@10, queries/s (batch), ms (one query) on the evaluation queries."""
    return f"{row['recall@10']:.3f}, {row['qps']:,.0f}, {row['latency_ms']:.2f}"


def setting(row: dict) -> str:
    keys = {"shortlist": "K", "nprobe": "nprobe", "nlist": "cells", "ef_search": "efSearch", "margin": "margin"}
    return ", ".join(f"{name} {row[k]:g}" for k, name in keys.items() if k in row) or "–"


def same_setting(row: dict, chosen: dict) -> bool:
    return all(row.get(k) == v for k, v in chosen.items())


def collection(real: dict) -> list[str]:
    c = real["collection"]
    return [
        f"Collection: {c['texts']:,} texts, the {' and '.join(c['splits'])} splits of every data set "
        f"({c['dropped_as_training_texts']:,} dropped as exact copies of training texts, "
        f"{c['repeated_within']:,} repeats merged); {real['selection_queries']:,} selection and "
        f"{real['evaluation_queries']:,} evaluation queries drawn from it (seed {real['query_seed']}), "
        f"{real['documents']:,} documents.",
        "",
    ]


def distill(real: dict) -> list[str]:
    sel = real.get("distill_selection")
    if not sel:
        return []
    lines = [
        f"MRL-distill's setting: {sel['objective']} (MRL's validation FullFine "
        f"{100 * sel['mrl_validation_full_fine']:.2f} %).",
        "",
        "| weight | temperature | validation FullFine (%) | ceiling at K = 50, selection queries | eligible |",
        "|---|---|---|---|---|",
    ]
    for r in sel["candidates"]:
        chosen = sel["chosen"] == {"weight": r["weight"], "temperature": r["temperature"]}
        lines.append(
            f"| {r['weight']:g} | {r['temperature']:g} | {100 * r['validation_full_fine']:.2f} | "
            f"{r['selection_ceiling']:.4f} | {'yes' if r['eligible'] else 'no'}"
            f"{' (chosen)' if chosen else ''} |"
        )
    return lines + [""]


def heads(real: dict) -> list[str]:
    lines = []
    for m in bench_heads({"real": real}):
        info, rows = real["heads"][m], real[m]
        acc = info["standard_protocol"]
        lines += [
            f"### {label(m)}",
            "",
            f"Trained on {info['train_examples']:,} texts ({info['coarse_classes']} coarse, "
            f"{info['fine_classes']} fine classes); test ShortCoarse {100 * acc['short_coarse']:.1f} %, "
            f"FullFine {100 * acc['full_fine']:.1f} %. Each cell: recall@10, queries/s (batch), ms (one "
            "query), on the evaluation queries.",
            "",
            "| contender | setting | evaluation queries |",
            "|---|---|---|",
        ]
        for kind in ("exact-256", "exact-64"):
            lines += [f"| {kind} | – | {cell(r)} |" for r in rows if r["contender"] == kind]
        for mode, pick in real["chosen"][m].items():
            for what in ("funnel", "hnsw-256"):
                c = pick.get(what) or {}
                if c.get("evaluation"):
                    lines.append(
                        f"| {c['setting']['contender']} (chosen, {mode}) | {setting(c['setting'])} | "
                        f"{cell(c['evaluation'])} |"
                    )
        lines += [
            f"| {r['contender']} | {setting(r)} | {cell(r)} |" for r in rows if r["contender"].startswith("engine-")
        ]
        ceiling = ", ".join(f"K {c['shortlist']}: {c['recall@10']:.3f}" for c in real["ceiling"][m])
        lines += ["", f"Prefix ceiling (share of the exact top 10 inside the exact 64-d top K): {ceiling}.", ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(DEFAULT)
    bench = json.loads(path.read_text())
    real = bench.get("real")
    if not real:
        raise SystemExit(f"{path}: no real-embedding section (run bench/search.py without --skip-real)")
    m = bench["machine"]
    lines = [f"From {path} ({m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, {bench['threads']} threads).", ""]
    lines += collection(real) + distill(real) + heads(real)
    table, verdicts = search_targets(bench)
    lines += [table.markdown(), ""] + [f"- {v}" for v in verdicts]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
