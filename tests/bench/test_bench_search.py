"""bench/search.py's contenders on a small collection, and the paper's latency table built from them."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from paper.search_targets import latency_table

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))  # for the bench's own helpers (_common)
_spec = importlib.util.spec_from_file_location("bench_search", BENCH / "search.py")
bench_search = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_search)
contenders, unit = bench_search.contenders, bench_search.unit


def test_contenders_measure_recall_against_exact_and_the_report_lists_them():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 256))
    full = unit(centres[rng.integers(0, 50, 3000)] + rng.normal(size=(3000, 256)))
    q = unit(centres[rng.integers(0, 50, 40)] + rng.normal(size=(40, 256)))
    rows = contenders(unit(full[:, :64]), full, unit(q[:, :64]), q, [50, 3000], [64])
    by = {(r["contender"], r.get("shortlist"), r.get("margin")): r for r in rows}
    assert by[("exact-256", None, None)]["recall@10"] == 1.0
    assert by[("exact-64", None, None)]["recall@10"] < 0.95  # the prefix alone loses neighbours
    assert by[("funnel-flat", 3000, None)]["recall@10"] == 1.0  # every document reranked: exact
    extended = [by[("adaptive", None, m)]["extended"] for m in (0.01, 0.02, 0.05)]
    assert extended == sorted(extended)
    assert all(r["qps"] > 0 and r["memory_mb"] > 0 for r in rows)
    # the quantized IVF shortlists hold the same prefixes in fewer bytes
    mem = {name: by[(name, 50, None)]["memory_mb"] for name in ("funnel-ivf", "funnel-ivf-sq8", "funnel-ivf-pq4fs")}
    assert mem["funnel-ivf-pq4fs"] < mem["funnel-ivf-sq8"] < mem["funnel-ivf"]
    assert 0.5 < by[("funnel-ivf-sq8", 50, None)]["recall@10"] <= 1.0
    table = latency_table({"synthetic": rows, "machine": {"cpu_model": "x", "cores": 2}, "threads": 1})
    assert {r[2] for r in table.rows} >= {"exact-256", "exact-64", "hnsw-64", "hnsw-256", "adaptive"}
    assert all(r[6] != "–" for r in table.rows if r[2] in ("exact-256", "exact-64", "hnsw-256"))
