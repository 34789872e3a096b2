"""docs/results.md's summary tables, printed from the report tables they summarise.

``open``: coarse accuracy at 64 dims of held-out texts, methods as columns, the best of each row in
bold, with each draw's query counts (from the open-set report's ``table9_open_set.csv``).
``beyond``: S, ShortCoarse, FullFine and the fine-label probe per data set and method (from a
report's ``table7_beyond_standard.csv``), for the data sets named.

    python scripts/results_tables.py open docs/open_set/table9_open_set.csv
    python scripts/results_tables.py beyond reports/paper/table7_beyond_standard.csv --datasets clinc150,trec
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

DATASETS = {
    "clinc150": "CLINC",
    "trec": "TREC",
    "20newsgroups": "20 Newsgroups",
    "goemotions": "GoEmotions",
    "dbpedia_classes_partial": "DBPedia classes (partial)",
}
# (report name, column heading), in the table's order
OPEN_METHODS = [
    ("Flat (PCA)", "Flat (PCA-64)"),
    ("Flat (random)", "Flat (random 64)"),
    ("Flat", "Flat (truncated)"),
    ("MRL", "MRL"),
    ("V5", "V5"),
    ("HEAL", "HEAL"),
    ("Separated", "Separated"),
    ("Adversarial", "Adversarial"),
    ("Adversarial (MRL recipe)", "Adversarial-MRL"),
    ("Anchored", "Anchored"),
    ("Bottleneck", "Bottleneck"),
    ("Coarse one-hot", "Coarse one-hot"),
]
BEYOND_ORDER = [
    "MRL",
    "V5",
    "Flat (PCA)",
    "Flat (random)",
    "Coarse one-hot",
    "MRL (SupCon recipe)",
    "HEAL",
    "Separated",
    "Successive (balanced)",
    "Adversarial",
    "Adversarial (MRL recipe)",
    "Anchored",
    "Bottleneck",
]


def mean(cell: str) -> str:
    """The mean of a report cell ("92.4 ± 1.2" -> "92.4")."""
    return cell.split(" ± ")[0]


def open_table(path: Path) -> list[str]:
    rows = list(csv.DictReader(path.open()))
    cells: dict[tuple[str, str, str], str] = {}
    draws: dict[tuple[str, str], tuple[str, str]] = {}
    for r in rows:
        kind = "coarse" if r["unseen"].startswith("coarse") else "fine"
        cells[kind, r["data set"], r["method"]] = mean(r["coarse @ shortest (%)"])
        draws[kind, r["data set"]] = (r["unseen"], r["queries"])
    out = [
        "| unseen | data set | queries | " + " | ".join(h for _, h in OPEN_METHODS) + " |",
        "|" + "---|" * (len(OPEN_METHODS) + 3),
    ]
    for kind, label in (("coarse", "whole coarse classes"), ("fine", "fine classes, known coarse")):
        first = True
        for ds, name in DATASETS.items():
            if (kind, ds) not in draws:
                continue
            values = [cells.get((kind, ds, m), "–") for m, _ in OPEN_METHODS]
            best = max(float(v) for v in values if v != "–")
            values = [f"**{v}**" if v != "–" and float(v) == best else v for v in values]
            unseen, queries = draws[kind, ds]
            out.append(f"| {label if first else ''} | {name} ({unseen}) | {queries} | " + " | ".join(values) + " |")
            first = False
    return out


def beyond_table(path: Path, datasets: list[str]) -> list[str]:
    rows = list(csv.DictReader(path.open()))
    out = [
        "| data set | method | S | ShortCoarse | FullFine | fine-label probe on the 64-d prefix |",
        "|---|---|---|---|---|---|",
    ]
    for ds in datasets:
        by = {r["method"]: r for r in rows if r["data set"] == ds}
        for m in [m for m in BEYOND_ORDER if m in by] + [m for m in by if m not in BEYOND_ORDER]:
            r = by[m]
            short, full = (f"{100 * float(mean(r[c])):.1f}" for c in ("ShortCoarse", "FullFine"))
            out.append(f"| {ds} | {m} | {mean(r['S'])} | {short} | {full} | {mean(r['fine probe @64'])} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="table", required=True)
    sub.add_parser("open", help="the open-set table").add_argument("csv", type=Path)
    beyond = sub.add_parser("beyond", help="the coarse-only methods' closed-set table")
    beyond.add_argument("csv", type=Path)
    beyond.add_argument("--datasets", default="clinc150,trec,20newsgroups")
    args = ap.parse_args()
    lines = open_table(args.csv) if args.table == "open" else beyond_table(args.csv, args.datasets.split(","))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
