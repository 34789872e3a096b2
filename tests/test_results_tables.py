"""scripts/results_tables.py: results.md's tables from the report's CSV tables."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "results_tables.py"
spec = importlib.util.spec_from_file_location("results_tables", SCRIPT)
assert spec is not None and spec.loader is not None
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def _write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_the_open_set_table_marks_each_rows_best_and_keeps_its_draws(tmp_path):
    def row(ds, unseen, method, acc, queries="200–250"):
        return {"data set": ds, "unseen": unseen, "method": method, "queries": queries, "coarse @ shortest (%)": acc}

    path = _write(
        tmp_path / "table9.csv",
        [
            row("trec", "coarse:2", "Flat (PCA)", "80.0 ± 2.0"),
            row("trec", "coarse:2", "Anchored", "81.5 ± 3.1"),
            row("clinc150", "coarse:2", "Flat (PCA)", "92.4 ± 1.0"),
            row("clinc150", "fine:0.2", "V5", "89.2 ± 0.5", "365–413"),
        ],
    )
    lines = tables.open_table(path)
    assert lines[0].startswith("| unseen | data set | queries | Flat (PCA-64) | Flat (random 64) |")
    clinc, trec, fine = lines[2:]
    assert clinc.startswith("| whole coarse classes | CLINC (coarse:2) | 200–250 | **92.4** | – |")
    assert trec.startswith("|  | TREC (coarse:2) | 200–250 | 80.0 |") and "| **81.5** |" in trec
    assert fine.startswith("| fine classes, known coarse | CLINC (fine:0.2) | 365–413 |") and "**89.2**" in fine


def test_the_beyond_table_gives_percentages_in_its_method_order(tmp_path):
    def row(method, s):
        return {
            "data set": "clinc150",
            "method": method,
            "S": s,
            "ShortCoarse": "+0.976 ± 0.002",
            "FullFine": "+0.9462 ± 0.003",
            "fine probe @64": "84.1 ± 0.4",
        }

    path = _write(tmp_path / "table7.csv", [row("HEAL", "+0.126 ± 0.01"), row("MRL", "+0.002 ± 0.004")])
    lines = tables.beyond_table(path, ["clinc150", "trec"])
    assert lines[2:] == [
        "| clinc150 | MRL | +0.002 | 97.6 | 94.6 | 84.1 |",
        "| clinc150 | HEAL | +0.126 | 97.6 | 94.6 | 84.1 |",
    ]
