"""bench/search.py's contenders on a small collection, and the report table built from its JSON."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from search import contenders, unit  # noqa: E402

from steerable.report import latency_table  # noqa: E402


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


def test_search_targets_judge_speedup_and_equal_recall_from_the_rows():
    from steerable.report import search_targets

    def rows(funnel_recall):
        return [{"contender": "exact-256", "recall@10": 1.0, "qps": 100.0, "latency_ms": 10.0, "memory_mb": 1.0},
                {"contender": "funnel-hnsw", "shortlist": 100, "recall@10": funnel_recall, "qps": 400.0,
                 "latency_ms": 1.0, "memory_mb": 1.0},
                {"contender": "funnel-flat", "shortlist": 50, "recall@10": 0.9, "qps": 50.0, "latency_ms": 5.0,
                 "memory_mb": 1.0},
                {"contender": "hnsw-256", "ef_search": 64, "recall@10": 0.996, "qps": 300.0, "latency_ms": 2.0,
                 "memory_mb": 1.0},
                {"contender": "hnsw-256", "ef_search": 32, "recall@10": 0.95, "qps": 600.0, "latency_ms": 0.5,
                 "memory_mb": 1.0}]

    bench = {"real": {"head_data": "all", "v5": rows(0.995), "mrl": rows(0.98),
                      "ceiling": {"v5": [{"shortlist": 100, "recall@10": 0.95},
                                         {"shortlist": 400, "recall@10": 0.991}],
                                  "mrl": [{"shortlist": 100, "recall@10": 0.97}]}}}
    table, verdicts = search_targets(bench)
    (v5_batch, v5_single, mrl_batch, mrl_single) = table.rows
    assert v5_batch[1] == "batch" and v5_single[1] == "one at a time"
    assert v5_batch[2] == "K = 400" and mrl_batch[2].startswith("> 100")
    assert v5_batch[3].startswith("4.00x (hnsw, K 100")  # 400 vs 100 q/s
    assert v5_single[3].startswith("10.00x")  # 1 ms vs 10 ms
    assert v5_batch[4].startswith("1.33x")  # 400 q/s vs the 0.996-recall HNSW-256 at 300 q/s
    assert v5_single[4].startswith("2.00x")  # 1 ms vs 2 ms
    assert mrl_batch[3].startswith("none reaches 0.99") and mrl_batch[4] == "–"
    assert mrl_batch[5].startswith("1.33x")  # recall 0.98: only ef 64 (300 q/s) is as good; ef 32 is no rival
    assert "**not met**" not in verdicts[0]
    assert verdicts[1].count("**not met**") == 4  # nothing keeps 0.99, so no target is met
    # every head the bench measured gets its rows, in the bench's order
    bench["real"]["heads"] = {"v5": {}, "mrl": {}, "mrl_distill": {}}
    bench["real"]["mrl_distill"] = rows(0.995)
    table, verdicts = search_targets(bench)
    assert [r[0] for r in table.rows[4:]] == ["MRL-distill"] * 2 and verdicts[2].startswith("MRL-distill:")
