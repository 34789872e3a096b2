"""Compare the tables of two report folders (the CSVs that `steer report` / `python -m paper` write).

For each table: identical bytes; else identical once method names are shown by their registry labels
and rows are compared as a set (what a redesign that unified labels and display order may change);
else the cells that differ. Exits 1 when some table's numbers differ or a table is missing.

    python scripts/compare_reports.py reports/before reports/after
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from steerable.methods import label


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def labelled(table: list[list[str]]) -> list[tuple[str, ...]]:
    """Rows with every method name in a cell shown by its label (an unknown name stays as it is)."""
    return [tuple(label(c) for c in row) for row in table]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    args = ap.parse_args()
    old, new = Path(args.old), Path(args.new)
    names = sorted({p.name for p in old.glob("*.csv")} | {p.name for p in new.glob("*.csv")})
    bad = 0
    for name in names:
        a, b = old / name, new / name
        if not a.exists() or not b.exists():
            print(f"MISSING      {name}: only in {'new' if b.exists() else 'old'}")
            bad += 1
            continue
        if a.read_bytes() == b.read_bytes():
            print(f"identical    {name}")
            continue
        ra, rb = labelled(rows(a)), labelled(rows(b))
        if ra[0] == rb[0] and sorted(ra[1:]) == sorted(rb[1:]):
            how = "labels" if ra == rb else "labels and row order"
            print(f"same numbers {name} (differs only in {how})")
            continue
        bad += 1
        diffs = [
            (i, j, x, y)
            for i, (p, q) in enumerate(zip(sorted(ra[1:]), sorted(rb[1:])))
            for j, (x, y) in enumerate(zip(p, q))
            if x != y
        ]
        extra = abs(len(ra) - len(rb))
        print(f"DIFFERENT    {name}: {len(diffs)} cells differ" + (f", {extra} rows more or fewer" if extra else ""))
        for i, j, x, y in diffs[:8]:
            row = sorted(ra[1:])[i]
            print(f"             row {row[:2]} column {ra[0][j]!r}: {x} -> {y}")
    print(f"{len(names) - bad} of {len(names)} tables have the same numbers")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
