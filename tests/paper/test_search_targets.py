"""paper.search_targets: the search targets judged from bench/search.py's rows."""

from paper.search_targets import search_targets


def test_search_targets_judge_speedup_and_equal_recall_from_the_rows():
    def rows(funnel_recall):
        return [
            {"contender": "exact-256", "recall@10": 1.0, "qps": 100.0, "latency_ms": 10.0, "memory_mb": 1.0},
            {
                "contender": "funnel-hnsw",
                "shortlist": 100,
                "recall@10": funnel_recall,
                "qps": 400.0,
                "latency_ms": 1.0,
                "memory_mb": 1.0,
            },
            {
                "contender": "funnel-flat",
                "shortlist": 50,
                "recall@10": 0.9,
                "qps": 50.0,
                "latency_ms": 5.0,
                "memory_mb": 1.0,
            },
            {
                "contender": "hnsw-256",
                "ef_search": 64,
                "recall@10": 0.996,
                "qps": 300.0,
                "latency_ms": 2.0,
                "memory_mb": 1.0,
            },
            {
                "contender": "hnsw-256",
                "ef_search": 32,
                "recall@10": 0.95,
                "qps": 600.0,
                "latency_ms": 0.5,
                "memory_mb": 1.0,
            },
        ]

    bench = {
        "real": {
            "head_data": "all",
            "v5": rows(0.995),
            "mrl": rows(0.98),
            "ceiling": {
                "v5": [{"shortlist": 100, "recall@10": 0.95}, {"shortlist": 400, "recall@10": 0.991}],
                "mrl": [{"shortlist": 100, "recall@10": 0.97}],
            },
        }
    }
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
