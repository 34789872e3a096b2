"""The search targets, judged from ``bench/search.py``'s JSON: query cost at 64 vs 256 dims
(Table 6b) and whether the funnel reaches >= 0.99 of exact search's top 10 at >= 3x its speed and
faster than HNSW on the full vector (Table 6c)."""

from __future__ import annotations

from steerable.methods import label
from steerable.report import Table


def latency_table(bench: dict) -> Table:
    """Query cost at 64-d vs 256-d, exact and HNSW, from ``bench/search.py``'s JSON."""
    cols = [
        "collection",
        "head",
        "contender",
        "setting",
        "recall@10 vs exact-256",
        "queries/s (batch)",
        "latency ms (single query, median)",
        "memory MB",
    ]
    rows = []
    parts = [(f"real ({bench['real']['documents']:,} docs)", m, bench["real"][m]) for m in bench_heads(bench)]
    if bench.get("synthetic"):
        parts.append(("generated", "–", bench["synthetic"]))
    for name, head, contenders in parts:
        for c in contenders:
            setting = ", ".join(f"{k} {c[k]:g}" for k in ("shortlist", "nprobe", "ef_search", "margin") if k in c)
            if "extended" in c:
                setting += f" ({100 * c['extended']:.0f} % extended)"
            rows.append(
                [
                    name,
                    label(head) if head != "–" else head,
                    c["contender"],
                    setting or "–",
                    f"{c['recall@10']:.3f}",
                    f"{c['qps']:,.0f}",
                    f"{c['latency_ms']:.3f}" if "latency_ms" in c else "–",
                    f"{c['memory_mb']:.1f}",
                ]
            )
    m = bench.get("machine", {})
    return Table(
        "Table 6b: query cost at 64-d vs 256-d, exact and approximate",
        cols,
        rows,
        f"From bench/search.py on {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, "
        f"{bench.get('threads', '?')} threads; queries/s over a batch of held-out queries after "
        "a warm-up; latency of single queries; recall against exact 256-d search. Real: the "
        f"texts of every data set through heads trained on {_head_data(bench)}.",
    )


def bench_heads(bench: dict) -> list[str]:
    """The heads ``bench/search.py`` measured on the real embeddings, in the order it ran them."""
    real = bench.get("real", {})
    return [m for m in real.get("heads", {"v5": 0, "mrl": 0}) if m in real]


def _head_data(bench: dict) -> str:
    name = bench.get("real", {}).get("head_data", "clinc150")  # results from before the option: CLINC
    return "one taxonomy over all the data sets" if name == "all" else name


TARGET_RECALL, TARGET_SPEEDUP = 0.99, 3.0


def search_targets(bench: dict) -> tuple[Table, list[str]]:
    """The search targets per head on the real embeddings, for a batch of queries (queries/s over
    the batch) and for queries answered one at a time (1 / median single-query latency).

    With settings chosen on selection queries (``real.chosen``, out-of-sample bench output), each
    target is judged on the disjoint evaluation queries at the chosen setting: the funnel >= 3x exact
    search with >= 0.99 of its top 10, and faster than the HNSW-256 setting chosen for at least the
    funnel's selection recall. Older output without ``chosen`` is judged as it was then, by picking
    settings on the very queries reported (said in the table's note)."""
    real = bench.get("real", {})
    if not real.get("chosen"):
        return _targets_picked_on_reported_queries(bench)
    cols = [
        "head",
        "queries",
        "prefix ceiling: K for 0.99",
        "chosen funnel (selection queries)",
        "its recall@10 / speed-up over exact (evaluation queries)",
        "chosen HNSW-256 (selection queries)",
        "funnel vs that HNSW-256 (evaluation queries)",
    ]
    rows, verdicts = [], []
    for m in bench_heads(bench):
        verdict = []
        for mode, pick in real["chosen"].get(m, {}).items():
            f, h = pick["funnel"], pick.get("hnsw-256") or {}
            ev = f.get("evaluation")
            if ev is None:
                rows.append(
                    [
                        label(m),
                        mode,
                        _ceiling(real, m),
                        f"none of {f['candidates']} reaches {TARGET_RECALL} on the selection queries",
                        "–",
                        "–",
                        "–",
                    ]
                )
                verdict.append(f"{mode}: **not met** (no funnel setting reaches {TARGET_RECALL} recall)")
                continue
            ratio = (pick.get("funnel_over_hnsw-256") or {}).get("evaluation")
            hs = h.get("setting")
            rows.append(
                [
                    label(m),
                    mode,
                    _ceiling(real, m),
                    f"{_setting(f['setting'])} (of {f['candidates']})",
                    f"{ev['recall@10']:.3f} / {ev['speedup']:.2f}x",
                    f"efSearch {hs['ef_search']:g} (of {h['candidates']})" if hs else "none reaches it",
                    f"{ratio:.2f}x" if ratio is not None else "–",
                ]
            )
            met_speed = ev["recall@10"] >= TARGET_RECALL and ev["speedup"] >= TARGET_SPEEDUP
            met_hnsw = ratio is not None and ratio > 1
            verdict.append(
                f"{mode}: funnel >= {TARGET_SPEEDUP:g}x exact at >= {TARGET_RECALL} recall "
                f"{'**met**' if met_speed else '**not met**'} (evaluation recall "
                f"{ev['recall@10']:.3f}, {ev['speedup']:.2f}x), faster than HNSW-256 at equal "
                f"recall {'**met**' if met_hnsw else '**not met**'}"
            )
        if verdict:
            verdicts.append(f"{label(m)}: " + "; ".join(verdict) + ".")
    table = Table(
        "Table 6c: the search targets on real embeddings, settings chosen out of sample",
        cols,
        rows,
        f"Settings are chosen on {real.get('selection_queries', '?'):,} selection queries and reported "
        f"on {real.get('evaluation_queries', '?'):,} disjoint evaluation queries; the collection "
        "holds no text the heads trained on. Chosen funnel: the fastest setting (any funnel kind, "
        "shortlist and nprobe) whose selection recall@10 against exact 256-d search is >= 0.99. "
        "Chosen HNSW-256: the fastest efSearch whose selection recall@10 is at least that "
        "funnel's. Prefix ceiling (evaluation queries): the smallest shortlist K whose exact 64-d "
        "top K holds >= 0.99 of the exact 256-d top 10. From bench/search.py, heads trained on "
        + _head_data(bench)
        + ".",
    )
    return table, verdicts


def _ceiling(real: dict, m: str) -> str:
    ceiling = real.get("ceiling", {}).get(m, [])
    reach = [c["shortlist"] for c in ceiling if c["recall@10"] >= TARGET_RECALL]
    if reach:
        return f"K = {min(reach):,}"
    if ceiling:
        return f"> {max(c['shortlist'] for c in ceiling):,} ({ceiling[-1]['recall@10']:.3f} at the largest)"
    return "–"


def _targets_picked_on_reported_queries(bench: dict) -> tuple[Table, list[str]]:
    """Older bench output (no selection queries): the best setting is picked on the queries it is
    reported on, which flatters every contender; kept so old output still renders."""
    real = bench.get("real", {})
    cols = [
        "head",
        "queries",
        "prefix ceiling: K for 0.99",
        "funnel at >= 0.99: speed-up over exact",
        "same setting vs HNSW-256 at equal recall",
        "funnel vs HNSW-256, best ratio at any recall",
    ]
    rows, verdicts = [], []
    modes = {
        "batch": lambda c: c.get("qps"),
        "one at a time": lambda c: 1000 / c["latency_ms"] if c.get("latency_ms") else None,
    }

    def txt(ratio: float | None, c: dict | None) -> str:
        return "–" if ratio is None or c is None else f"{ratio:.2f}x ({_setting(c)}, recall {c['recall@10']:.3f})"

    for m in bench_heads(bench):
        ceil_txt = _ceiling(real, m)
        verdict = []
        for mode, rate in modes.items():
            exact = next((rate(c) for c in real[m] if c["contender"] == "exact-256"), None)
            funnels = [c for c in real[m] if c["contender"].startswith("funnel") and rate(c)]
            hnsw = [c for c in real[m] if c["contender"] == "hnsw-256" and rate(c)]
            if not exact or not funnels:
                continue

            def vs_hnsw(c: dict) -> float | None:
                rivals = [rate(h) for h in hnsw if h["recall@10"] >= c["recall@10"]]
                return rate(c) / max(rivals) if rivals else None

            best = max((c for c in funnels if c["recall@10"] >= TARGET_RECALL), key=rate, default=None)
            speed_txt = (
                txt(rate(best) / exact, best)
                if best
                else f"none reaches {TARGET_RECALL} (best {max(c['recall@10'] for c in funnels):.3f})"
            )
            at_target = vs_hnsw(best) if best else None
            ratios = [(r, c) for c in funnels if (r := vs_hnsw(c)) is not None]
            any_ratio, any_at = max(ratios, key=lambda rc: rc[0], default=(None, None))
            rows.append([label(m), mode, ceil_txt, speed_txt, txt(at_target, best), txt(any_ratio, any_at)])
            met_speed = best is not None and rate(best) / exact >= TARGET_SPEEDUP
            met_hnsw = at_target is not None and at_target > 1
            verdict.append(
                f"{mode}: funnel >= {TARGET_SPEEDUP:g}x exact at >= {TARGET_RECALL} recall "
                f"{'**met**' if met_speed else '**not met**'}, faster than HNSW-256 at equal "
                f"recall {'**met**' if met_hnsw else '**not met**'}"
            )
        if verdict:
            verdicts.append(f"{label(m)}: " + "; ".join(verdict) + ".")
    table = Table(
        "Table 6c: the search targets on real embeddings",
        cols,
        rows,
        "Older bench output without selection queries: each setting is picked on the queries it is "
        "reported on, which flatters it. Queries: a batch (queries/s over the batch) or one at a time "
        "(1 / median single-query latency). Prefix ceiling: the smallest shortlist K whose exact 64-d "
        "top K holds >= 0.99 of the exact 256-d top 10. From bench/search.py, heads trained on "
        + _head_data(bench)
        + ".",
    )
    return table, verdicts


def _setting(c: dict) -> str:
    name = c["contender"].removeprefix("funnel-")
    return f"{name}, K {c['shortlist']}" + (f", nprobe {c['nprobe']}" if "nprobe" in c else "")
