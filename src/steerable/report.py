"""Tables and figures from a results store: Markdown, CSV, LaTeX and PNG, per protocol.

Table 1 classification accuracy, Table 2 steerability with paired significance (V5 vs MRL),
Table 3 causal ablations with the outline's pass criteria, a hierarchy complexity table; Figure 1
prefix accuracy curves, Figure 2 steerability vs hierarchy complexity, Figure 3 ablation bars;
Tables 4-6 and Figure 4 retrieval, multi-stage search and efficiency. The methods beyond V5 (HEAL,
the new methods, the dial, leakage) are reported by :mod:`steerable.report_beyond`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .efficiency import bytes_per_document
from .io import atomic_write, atomic_write_json, atomic_write_text
from .stats import ablation_verdicts, holm, paired_test, summarize

METHOD_ORDER = ["flat", "mrl", "v5", "inverted", "no_prefix", "uhmt"]
METHOD_LABEL = {"flat": "Flat", "mrl": "MRL", "v5": "V5", "inverted": "Inverted",
                "no_prefix": "No-prefix", "uhmt": "UHMT", "mrl_distill": "MRL-distill"}
ABLATION_ORDER = ["v5", "inverted", "no_prefix", "uhmt", "mrl"]
STEER_METRICS = ["steerability_score", "short_coarse", "full_fine", "specialization_gap",
                 "control_auc"]


def _label(method: str) -> str:
    return METHOD_LABEL.get(method, method)


def _methods(present: Sequence[str]) -> list[str]:
    return [m for m in METHOD_ORDER if m in present] + sorted(set(present) - set(METHOD_ORDER))


class Table:
    """A small table that renders to Markdown, CSV and LaTeX."""

    def __init__(self, title: str, columns: list[str], rows: list[list], note: str = ""):
        self.title, self.columns, self.rows, self.note = title, columns, rows, note

    def markdown(self) -> str:
        def cell(c) -> str:
            return str(c).replace("|", "\\|")

        out = [f"**{self.title}**", "", "| " + " | ".join(cell(c) for c in self.columns) + " |",
               "|" + "|".join("---" for _ in self.columns) + "|"]
        out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in self.rows]
        if self.note:
            out += ["", self.note]
        return "\n".join(out)

    def csv(self) -> str:
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.columns)
        w.writerows(self.rows)
        return buf.getvalue()

    def latex(self) -> str:
        def esc(s) -> str:
            return (str(s).replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%")
                    .replace("&", "\\&").replace("#", "\\#").replace("±", "$\\pm$")
                    .replace("≤", "$\\leq$").replace("|", "$|$"))

        lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{esc(self.title)}}}",
                 "\\begin{tabular}{" + "l" * len(self.columns) + "}", "\\toprule",
                 " & ".join(esc(c) for c in self.columns) + " \\\\", "\\midrule"]
        lines += [" & ".join(esc(c) for c in r) + " \\\\" for r in self.rows]
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, stem: str, latex: bool = True) -> None:
        atomic_write_text(directory / f"{stem}.csv", self.csv())
        atomic_write_text(directory / f"{stem}.md", self.markdown() + "\n")
        if latex:
            atomic_write_text(directory / f"{stem}.tex", self.latex())


class Results:
    """Records grouped for reporting: values[(dataset, method, protocol)][seed] = metrics block."""

    def __init__(self, records: list[dict]):
        if not records:
            raise ValueError("no results to report: the store holds no finished runs")
        self.records = records
        self.blocks: dict[tuple, dict[int, dict]] = defaultdict(dict)
        self.stats: dict[str, dict] = {}
        self.levels: dict[str, list[str]] = {}
        for r in records:
            for protocol, block in r["metrics"].items():
                self.blocks[(r["dataset"], r["method"], protocol)][r["seed"]] = block
            self.stats[r["dataset"]] = r["dataset_stats"]
            self.levels[r["dataset"]] = r["level_names"]
        self.datasets = sorted(self.stats)
        self.protocols = sorted({k[2] for k in self.blocks}, key=["paper", "standard"].index)
        self.methods = _methods({r["method"] for r in records})
        self.backbones = sorted({r["backbone"] for r in records})
        self.heads = sorted({r["head"] for r in records})
        self.seeds = sorted({r["seed"] for r in records})
        self.retrieval: dict[tuple, dict[int, dict]] = defaultdict(dict)
        self.n_docs: dict[str, int] = {}  # documents in each run's retrieval split
        self.cost: dict[str, list[dict]] = defaultdict(list)
        for r in records:
            if r.get("retrieval"):
                self.retrieval[(r["dataset"], r["method"])][r["seed"]] = r["retrieval"]
                n_test = min(r["dataset_stats"]["test"], r["spec"].get("max_test") or 10**12)
                self.n_docs[r["dataset"]] = n_test - n_test // 2
            if r.get("cost"):
                self.cost[r["method"]].append(r["cost"] | {"train_s": r["seconds"]["train"],
                                                           "dataset": r["dataset"]})
        self.protocol_desc = {}
        for r in records:
            for p, b in r["metrics"].items():
                self.protocol_desc.setdefault(p, b["protocol"])

    def values(self, dataset: str, method: str, protocol: str, metric: str) -> dict[int, float]:
        return {s: b[metric] for s, b in self.blocks.get((dataset, method, protocol), {}).items()}

    def accuracy(self, dataset: str, method: str, protocol: str, level: str, which: int
                 ) -> dict[int, float]:
        out = {}
        for s, b in self.blocks.get((dataset, method, protocol), {}).items():
            dims = b["dims"]
            out[s] = b["accuracy"][level][str(dims[which])]
        return out

    def describe(self, protocol: str) -> str:
        p = self.protocol_desc[protocol]
        if protocol == "paper":
            how = f"leave-one-out {p['k']}-NN within {p['n']} test examples (seeded shuffle per seed)"
        else:
            how = f"{p['k']}-NN, training split as reference, whole (capped) test split"
        return (f"Protocol `{protocol}`: {how}. Seeds {', '.join(map(str, self.seeds))}; backbone "
                f"{', '.join(self.backbones)}; head {', '.join(self.heads)}.")


def _fmt(values: dict[int, float], digits: int = 3, pct: bool = False) -> str:
    if not values:
        return "–"
    x = np.array(list(values.values())) * (100 if pct else 1)
    d = 1 if pct else digits
    if len(x) == 1:
        return f"{x[0]:.{d}f}" if pct else f"{x[0]:+.{d}f}"
    sign = "" if pct else "+"
    return f"{x.mean():{sign}.{d}f} ± {x.std(ddof=1):.{d}f}"


def _p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _paper_methods(res: Results) -> list[str]:
    """The outline's methods (Tables 1 and 2); the methods beyond V5 have tables of their own."""
    return [m for m in res.methods if m in METHOD_ORDER]


def _listed_methods(res: Results) -> list[str]:
    """Every method but the dial's settings (which share one trained model per seed)."""
    return [m for m in res.methods if not m.startswith("dial@")]


def table1(res: Results, protocol: str) -> Table:
    cols = ["data set"]
    for m in _paper_methods(res):
        cols += [f"{_label(m)} L0", f"{_label(m)} L1"]
    rows = []
    for ds in res.datasets:
        coarse, fine = res.levels[ds][0], res.levels[ds][-1]
        row = [ds]
        for m in _paper_methods(res):
            row += [_fmt(res.accuracy(ds, m, protocol, coarse, -1), pct=True),
                    _fmt(res.accuracy(ds, m, protocol, fine, -1), pct=True)]
        rows.append(row)
    return Table(f"Table 1: k-NN classification accuracy (%) of the full embedding, mean ± sd over "
                 f"seeds ({protocol} protocol)", cols, rows,
                 res.describe(protocol) + " L0 = coarsest level, L1 = finest level. Flat is the raw "
                 "backbone vector (all its dims).")


def steerability_tests(res: Results, protocol: str, a: str = "v5", b: str = "mrl") -> dict[str, dict]:
    """Paired tests of S (a vs b) per data set over matched seeds, Holm-corrected across data sets."""
    out = {}
    for ds in res.datasets:
        va, vb = res.values(ds, a, protocol, "steerability_score"), res.values(ds, b, protocol,
                                                                              "steerability_score")
        seeds = sorted(set(va) & set(vb))
        if not seeds:
            continue
        t = paired_test([va[s] for s in seeds], [vb[s] for s in seeds])
        out[ds] = {"seeds": seeds, **t.to_dict()}
    adj = holm([v["p"] for v in out.values()])
    for v, p in zip(out.values(), adj):
        v["p_holm"] = p
    return out


def table2(res: Results, protocol: str, tests: dict[str, dict]) -> Table:
    cols = ["data set", "method", "S", "95% CI", "ShortCoarse", "FullFine", "SpecGap", "ControlAUC",
            "Δ S vs MRL", "t", "p", "p (Holm)", "d"]
    rows = []
    for ds in res.datasets:
        for m in [m for m in ("v5", "mrl") if m in res.methods]:
            s = res.values(ds, m, protocol, "steerability_score")
            if not s:
                continue
            summ = summarize(list(s.values()))
            row = [ds, _label(m), _fmt(s), f"[{summ.ci_low:+.3f}, {summ.ci_high:+.3f}]"]
            row += [_fmt(res.values(ds, m, protocol, k)) for k in STEER_METRICS[1:]]
            t = tests.get(ds) if m == "v5" else None
            row += ([f"{t['mean_diff']:+.3f}", f"{t['t']:.2f}", _p(t["p"]), _p(t["p_holm"]),
                     f"{t['d']:.2f}"] if t else ["", "", "", "", ""])
            rows.append(row)
    return Table(f"Table 2: steerability, mean ± sd over seeds ({protocol} protocol)", cols, rows,
                 res.describe(protocol) + " Paired t-test and paired Cohen's d of V5 vs MRL over "
                 "matched seeds; p (Holm) corrects across data sets.")


def ablation_summary(res: Results, protocol: str) -> dict[str, dict]:
    out = {}
    for ds in res.datasets:
        means = {m: float(np.mean(list(v.values())))
                 for m in ABLATION_ORDER if (v := res.values(ds, m, protocol, "steerability_score"))}
        if "inverted" not in means and "no_prefix" not in means:
            continue
        out[ds] = {"means": means,
                   "verdicts": ablation_verdicts(means.get("inverted"), means.get("no_prefix"))}
    return out


def table3(res: Results, protocol: str, summary: dict[str, dict]) -> Table:
    methods = [m for m in ABLATION_ORDER if m in res.methods]
    cols = ["data set"] + [f"{_label(m)} S" for m in methods] + ["Inverted < -0.05", "|No-prefix| ≤ 0.02"]
    rows = []
    for ds, info in summary.items():
        row = [ds] + [_fmt(res.values(ds, m, protocol, "steerability_score")) for m in methods]
        for key in ("inverted", "no_prefix"):
            v = info["verdicts"].get(key)
            row.append("–" if v is None else ("PASS" if v["pass"] else "FAIL"))
        rows.append(row)
    return Table(f"Table 3: causal ablations, steerability S mean ± sd ({protocol} protocol)", cols,
                 rows, res.describe(protocol) + " Pass criteria from the outline, on the mean S.")


def hierarchy_table(res: Results) -> Table:
    cols = ["data set", "levels", "K0", "K1", "K2", "branching", "H(L0)", "H(L1|L0)", "train", "test"]
    rows = []
    for ds in res.datasets:
        st = res.stats[ds]
        rows.append([ds, st["levels"], st["K0"], st["K1"], st.get("K2", "–"),
                     f"{st['branching1']:.2f}", f"{st['H0']:.2f}", f"{st['H1|0']:.2f}",
                     st["train"], st["test"]])
    return Table("Hierarchy complexity (training split; entropies in bits)", cols, rows,
                 "Branching = mean L1 classes per L0 class. Sizes before the sweep's caps.")


def _rmean(res: Results, ds: str, m: str, key: str) -> float | None:
    vals = [v[key] for v in res.retrieval.get((ds, m), {}).values() if key in v]
    return float(np.mean(vals)) if vals else None


def _dims_of(res: Results, ds: str, m: str) -> list[int]:
    any_run = next(iter(res.retrieval[(ds, m)].values()))
    return sorted({int(k.rsplit("/", 1)[1]) for k in any_run if k.startswith("ndcg@10/")})


def retrieval_table(res: Results) -> Table:
    cols = ["data set", "method", "dim", "R@1 L1", "R@10 L0", "R@10 L1", "MRR L1", "nDCG@10"]
    rows = []
    for ds in res.datasets:
        fine = res.levels[ds][-1]
        coarse = res.levels[ds][0]
        for m in [m for m in _listed_methods(res) if (ds, m) in res.retrieval]:
            for dim in _dims_of(res, ds, m):
                vals = [_rmean(res, ds, m, f"recall@1/{fine}/{dim}"), _rmean(res, ds, m, f"recall@10/{coarse}/{dim}"),
                        _rmean(res, ds, m, f"recall@10/{fine}/{dim}"), _rmean(res, ds, m, f"mrr/{fine}/{dim}"),
                        _rmean(res, ds, m, f"ndcg@10/{dim}")]
                rows.append([ds, _label(m), dim] + ["–" if v is None else f"{100 * v:.1f}" for v in vals])
    return Table("Table 4: retrieval at every prefix (%), mean over seeds", cols, rows,
                 f"Queries vs documents: a seeded 50/50 split of each run's (capped) test set; cosine "
                 f"ranking. R@k = fraction of queries with a same-label document in the top k; nDCG@10 "
                 f"with gain 2 for the same fine label, 1 for the same coarse label only. Seeds "
                 f"{', '.join(map(str, res.seeds))}; backbone {', '.join(res.backbones)}.")


def recall_loss(res: Results) -> dict[str, dict[str, float]]:
    """Per data set and method: relative loss of fine-label Recall@10 at the shortest prefix vs full."""
    out: dict[str, dict[str, float]] = {}
    for ds in res.datasets:
        fine = res.levels[ds][-1]
        for m in ("v5", "mrl"):
            if (ds, m) not in res.retrieval:
                continue
            dims = _dims_of(res, ds, m)
            short, full = (_rmean(res, ds, m, f"recall@10/{fine}/{d}") for d in (dims[0], dims[-1]))
            if short is not None and full:
                out.setdefault(ds, {})[m] = 1 - short / full
    return out


def recall_loss_verdict(loss: dict[str, dict[str, float]]) -> tuple[str, str]:
    """(verdict, sentence) for "V5 loses less recall at the short prefix than MRL"."""
    pairs = {ds: v for ds, v in loss.items() if "v5" in v and "mrl" in v}
    wins = [ds for ds, v in pairs.items() if v["v5"] < v["mrl"]]
    verdict = ("holds" if pairs and len(wins) == len(pairs)
               else "partly" if 2 * len(wins) > len(pairs) else "does not hold")
    return verdict, (f"Verdict: {verdict} (rule: holds if V5 loses less than MRL on every data set, "
                     f"partly on most); "
                     f"V5 loses less on {len(wins)} of {len(pairs)} data sets.")


def funnel_table(res: Results) -> Table:
    cols = ["data set", "method", "shortlist K", "overlap with exact top 10", "R@10 L1 (funnel)",
            "R@10 L1 (exact full)"]
    rows = []
    for ds in res.datasets:
        fine = res.levels[ds][-1]
        for m in [m for m in ("v5", "mrl") if (ds, m) in res.retrieval]:
            full_dim = _dims_of(res, ds, m)[-1]
            exact = _rmean(res, ds, m, f"recall@10/{fine}/{full_dim}")
            any_run = next(iter(res.retrieval[(ds, m)].values()))
            for K in sorted({int(k.rsplit("/", 1)[1]) for k in any_run if k.startswith("funnel/overlap")}):
                rows.append([ds, _label(m), K, f"{_rmean(res, ds, m, f'funnel/overlap@10/{K}'):.3f}",
                             f"{100 * _rmean(res, ds, m, f'funnel/recall@10/{fine}/{K}'):.1f}",
                             f"{100 * exact:.1f}"])
    return Table("Table 5: multi-stage search (shortest prefix shortlists K, full vector reranks)", cols,
                 rows, "Overlap = fraction of the exact full-vector top 10 that the funnel returns; "
                 "mean over seeds. Speed is measured separately (bench/search.py).")


def adaptive_table(res: Results) -> Table:
    cols = ["data set", "method", "margin", "queries extended (%)", "overlap with exact top 10",
            "R@10 L1", "funnel, every query extended: overlap"]
    rows = []
    for ds in res.datasets:
        fine = res.levels[ds][-1]
        for m in [m for m in _listed_methods(res) if (ds, m) in res.retrieval]:
            any_run = next(iter(res.retrieval[(ds, m)].values()))
            keys = sorted({k.split("/")[0] for k in any_run if k.startswith("adaptive@")},
                          key=lambda k: float(k.split("@")[1]))
            for key in keys:
                K = next(int(k.rsplit("/", 1)[1]) for k in any_run if k.startswith(key + "/overlap"))
                vals = [_rmean(res, ds, m, f"{key}/extended/{K}"), _rmean(res, ds, m, f"{key}/overlap@10/{K}"),
                        _rmean(res, ds, m, f"{key}/recall@10/{fine}/{K}"),
                        _rmean(res, ds, m, f"funnel/overlap@10/{K}")]
                rows.append([ds, _label(m), key.split("@")[1],
                             "–" if vals[0] is None else f"{100 * vals[0]:.0f}",
                             "–" if vals[1] is None else f"{vals[1]:.3f}",
                             "–" if vals[2] is None else f"{100 * vals[2]:.1f}",
                             "–" if vals[3] is None else f"{vals[3]:.3f}"])
    return Table("Table 5b: adaptive search (the prefix answers confident queries; the rest are reranked)",
                 cols, rows, "A query is confident when its shortest-prefix top-1 similarity beats its "
                 "top-2 by at least the margin; confident queries are answered by the prefix ranking, the "
                 "others by the full-vector rerank of a shortlist of 100 (the last column: every query "
                 "reranked). Mean over seeds.")


def _method_dims(res: Results, method: str) -> list[int]:
    """Prefix dims of a method's runs (from any of its metrics blocks)."""
    block = next(b for (_, m, _), by_seed in res.blocks.items() if m == method for b in by_seed.values())
    return block["dims"]


def efficiency_table(res: Results) -> Table:
    cols = ["method", "head parameters", "training GFLOP / example", "median training time (s)",
            "head MFLOP / text (inference)", "bytes / doc per prefix dim (float32)"]
    rows = []
    for m in [m for m in _listed_methods(res) if res.cost.get(m)]:
        c = res.cost[m]
        rows.append([_label(m), f"{int(np.median([x['head_parameters'] for x in c])):,}",
                     f"{np.median([x['train_flops_per_example'] for x in c]) / 1e9:.4f}",
                     f"{np.median([x['train_s'] for x in c]):.1f}",
                     f"{np.median([x['encode_flops_per_text'] for x in c]) / 1e6:.2f}",
                     ", ".join(f"{d}: {b['float32']}" for d, b in bytes_per_document(_method_dims(res, m)).items())])
    return Table("Table 6: efficiency", cols, rows,
                 "FLOPs counted by torch's FlopCounterMode on a real training step (forward and backward, "
                 "positives included) and a forward pass; training time measured on this machine, median "
                 "over the runs of each method (all data sets). The backbone's cost is the same for every "
                 "method and is not included.")


def latency_table(bench: dict) -> Table:
    """Query cost at 64-d vs 256-d, exact and HNSW, from ``bench/search.py``'s JSON."""
    cols = ["collection", "head", "contender", "setting", "recall@10 vs exact-256", "queries/s (batch)",
            "latency ms (single query, median)", "memory MB"]
    rows = []
    parts = [(f"real ({bench['real']['documents']:,} docs)", m, bench["real"][m]) for m in bench_heads(bench)]
    if bench.get("synthetic"):
        parts.append(("generated", "–", bench["synthetic"]))
    for name, head, contenders in parts:
        for c in contenders:
            setting = ", ".join(f"{k} {c[k]:g}" for k in ("shortlist", "nprobe", "ef_search", "margin")
                                if k in c)
            if "extended" in c:
                setting += f" ({100 * c['extended']:.0f} % extended)"
            rows.append([name, _label(head) if head != "–" else head, c["contender"], setting or "–",
                         f"{c['recall@10']:.3f}", f"{c['qps']:,.0f}",
                         f"{c['latency_ms']:.3f}" if "latency_ms" in c else "–", f"{c['memory_mb']:.1f}"])
    m = bench.get("machine", {})
    return Table("Table 6b: query cost at 64-d vs 256-d, exact and approximate", cols, rows,
                 f"From bench/search.py on {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, "
                 f"{bench.get('threads', '?')} threads; queries/s over a batch of held-out queries after "
                 "a warm-up; latency of single queries; recall against exact 256-d search. Real: the "
                 f"texts of every data set through heads trained on {_head_data(bench)}.")


def bench_heads(bench: dict) -> list[str]:
    """The heads ``bench/search.py`` measured on the real embeddings, in the order it ran them."""
    real = bench.get("real", {})
    return [m for m in real.get("heads", {"v5": 0, "mrl": 0}) if m in real]


def _head_data(bench: dict) -> str:
    name = bench.get("real", {}).get("head_data", "clinc150")  # results from before the option: CLINC
    return "one taxonomy over all the data sets" if name == "all" else name


TARGET_RECALL, TARGET_SPEEDUP = 0.99, 3.0


def search_targets(bench: dict) -> tuple[Table, list[str]]:
    """Issue-4 targets per head on the real embeddings, for a batch of queries (queries/s over the
    batch) and for queries answered one at a time (1 / median single-query latency): the prefix's
    ceiling; the funnel's best speed-up over exact search while keeping >= 0.99 of its top 10; at
    that setting, the funnel vs the fastest HNSW-256 setting with at least its recall; and the
    funnel's best ratio over HNSW-256 at any recall."""
    real = bench.get("real", {})
    cols = ["head", "queries", "prefix ceiling: K for 0.99", "funnel at >= 0.99: speed-up over exact",
            "same setting vs HNSW-256 at equal recall", "funnel vs HNSW-256, best ratio at any recall"]
    rows, verdicts = [], []
    modes = {"batch": lambda c: c.get("qps"),
             "one at a time": lambda c: 1000 / c["latency_ms"] if c.get("latency_ms") else None}

    def txt(ratio: float | None, c: dict | None) -> str:
        return "–" if ratio is None or c is None else f"{ratio:.2f}x ({_setting(c)}, recall {c['recall@10']:.3f})"

    for m in bench_heads(bench):
        ceiling = real.get("ceiling", {}).get(m, [])
        reach = [c["shortlist"] for c in ceiling if c["recall@10"] >= TARGET_RECALL]
        ceil_txt = (f"K = {min(reach):,}" if reach else
                    f"> {max(c['shortlist'] for c in ceiling):,} ({ceiling[-1]['recall@10']:.3f} at the largest)"
                    if ceiling else "–")
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
            speed_txt = (txt(rate(best) / exact, best) if best else
                         f"none reaches {TARGET_RECALL} (best {max(c['recall@10'] for c in funnels):.3f})")
            at_target = vs_hnsw(best) if best else None
            ratios = [(r, c) for c in funnels if (r := vs_hnsw(c)) is not None]
            any_ratio, any_at = max(ratios, key=lambda rc: rc[0], default=(None, None))
            rows.append([_label(m), mode, ceil_txt, speed_txt, txt(at_target, best), txt(any_ratio, any_at)])
            met_speed = best is not None and rate(best) / exact >= TARGET_SPEEDUP
            met_hnsw = at_target is not None and at_target > 1
            verdict.append(f"{mode}: funnel >= {TARGET_SPEEDUP:g}x exact at >= {TARGET_RECALL} recall "
                           f"{'**met**' if met_speed else '**not met**'}, faster than HNSW-256 at equal "
                           f"recall {'**met**' if met_hnsw else '**not met**'}")
        if verdict:
            verdicts.append(f"{_label(m)}: " + "; ".join(verdict) + ".")
    table = Table("Table 6c: the search targets on real embeddings", cols, rows,
                  "Queries: a batch (queries/s over the batch) or one at a time (1 / median single-query "
                  "latency). Prefix ceiling: the smallest shortlist K whose exact 64-d top K holds >= 0.99 of "
                  "the exact 256-d top 10 (no 64-d shortlist index can do better). Speed-up: over exact "
                  "256-d search, for the fastest funnel setting that keeps >= 0.99 of its top 10. Equal "
                  "recall: the funnel's rate over that of the fastest HNSW-256 setting with at least the "
                  "funnel's recall. From bench/search.py, heads trained on " + _head_data(bench) + ".")
    return table, verdicts


def _setting(c: dict) -> str:
    name = c["contender"].removeprefix("funnel-")
    return f"{name}, K {c['shortlist']}" + (f", nprobe {c['nprobe']}" if "nprobe" in c else "")


def figure4(res: Results, path: Path) -> None:
    """Overlap with exact search vs compute of the funnel, V5 vs MRL, per data set."""
    plt = _plt()
    dss = [d for d in res.datasets if (d, "v5") in res.retrieval and (d, "mrl") in res.retrieval]
    fig, axes = plt.subplots(1, len(dss), figsize=(3.8 * len(dss), 3.3), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        for m, color in (("v5", "tab:red"), ("mrl", "tab:blue")):
            runs = list(res.retrieval[(ds, m)].values())
            dims = _dims_of(res, ds, m)
            n_docs = res.n_docs[ds]
            Ks = sorted({int(k.rsplit("/", 1)[1]) for k in runs[0] if k.startswith("funnel/overlap")})
            cost = [dims[0] / dims[-1] + K / n_docs for K in Ks]
            ov = [np.mean([r[f"funnel/overlap@10/{K}"] for r in runs]) for K in Ks]
            ax.plot(cost, ov, marker="o", color=color, label=_label(m))
            for K, x, y in zip(Ks, cost, ov):
                ax.annotate(str(K), (x, y), fontsize=6, xytext=(2, -8), textcoords="offset points")
        ax.set_xlabel("FLOPs vs exact scan: d_prefix/d_full + K/N")
        ax.set_title(ds, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("overlap with exact top 10")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Figure 4: multi-stage search, recall vs cost (labels: shortlist K)", fontsize=10)
    _save(fig, path)


# ------------------------------------------------------------------------------------------ figures

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda p: fig.savefig(p, dpi=130, bbox_inches="tight", format="png"))
    _plt().close(fig)


def figure1(res: Results, protocol: str, path: Path) -> None:
    """Prefix accuracy curves: L0 and L1 vs prefix dims, V5 vs MRL, mean ± sd bands."""
    plt = _plt()
    dss = [d for d in res.datasets if res.blocks.get((d, "v5", protocol))]
    fig, axes = plt.subplots(1, len(dss), figsize=(3.6 * len(dss), 3.3), squeeze=False)
    colors = {"v5": "tab:red", "mrl": "tab:blue"}
    for ax, ds in zip(axes[0], dss):
        for m in ("v5", "mrl"):
            blocks = res.blocks.get((ds, m, protocol), {})
            if not blocks:
                continue
            dims = next(iter(blocks.values()))["dims"]
            for level, style in zip((res.levels[ds][0], res.levels[ds][-1]), ("-", "--")):
                acc = np.array([[b["accuracy"][level][str(d)] for d in dims] for b in blocks.values()])
                mean, sd = acc.mean(0), acc.std(0, ddof=1) if len(acc) > 1 else np.zeros(len(dims))
                name = "L0" if level == res.levels[ds][0] else "L1"
                ax.plot(dims, mean, style, color=colors[m], marker="o", ms=3,
                        label=f"{_label(m)} {name}")
                ax.fill_between(dims, mean - sd, mean + sd, color=colors[m], alpha=0.15)
            ax.set_xticks(dims)
        ax.set_title(ds, fontsize=10)
        ax.set_xlabel("prefix dims")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("k-NN accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Figure 1: accuracy vs prefix length ({protocol} protocol; bands: ± sd over seeds)",
                 fontsize=10)
    _save(fig, path)


def complexity_fit(res: Results, protocol: str) -> dict:
    """Per data set: H(L1|L0), branching, ΔS = S(V5) - S(MRL); linear fit and Spearman rho."""
    from scipy import stats

    pts = []
    for ds in res.datasets:
        v5, mrl = (res.values(ds, m, protocol, "steerability_score") for m in ("v5", "mrl"))
        if v5 and mrl:
            pts.append({"dataset": ds, "h": res.stats[ds]["H1|0"], "branching": res.stats[ds]["branching1"],
                        "v5": float(np.mean(list(v5.values()))), "mrl": float(np.mean(list(mrl.values()))),
                        "delta": float(np.mean(list(v5.values())) - np.mean(list(mrl.values())))})
    out = {"points": pts}
    if len(pts) >= 3:
        h = [p["h"] for p in pts]
        d = [p["delta"] for p in pts]
        rho, p = stats.spearmanr(h, d)
        slope, intercept = np.polyfit(h, d, 1)
        out |= {"spearman_rho": float(rho), "spearman_p": float(p), "slope": float(slope),
                "intercept": float(intercept)}
    return out


def figure2(fit: dict, protocol: str, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    pts = fit["points"]
    ax.scatter([p["h"] for p in pts], [p["delta"] for p in pts], color="tab:red", zorder=3)
    for p in pts:
        ax.annotate(p["dataset"], (p["h"], p["delta"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    if "slope" in fit:
        xs = np.linspace(min(p["h"] for p in pts), max(p["h"] for p in pts), 20)
        ax.plot(xs, fit["slope"] * xs + fit["intercept"], "--", color="gray",
                label=f"linear fit; Spearman ρ = {fit['spearman_rho']:.2f} (p = {fit['spearman_p']:.2g})")
        ax.legend(fontsize=7)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("H(L1 | L0) (bits)")
    ax.set_ylabel("S(V5) − S(MRL)")
    ax.set_title(f"Figure 2: steerability vs hierarchy complexity ({protocol})", fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, path)


def figure3(res: Results, protocol: str, summary: dict, path: Path) -> None:
    plt = _plt()
    dss = list(summary)
    fig, axes = plt.subplots(1, len(dss), figsize=(4 * len(dss), 3.3), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        methods = [m for m in ABLATION_ORDER if res.values(ds, m, protocol, "steerability_score")]
        vals = [list(res.values(ds, m, protocol, "steerability_score").values()) for m in methods]
        means = [np.mean(v) for v in vals]
        sds = [np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals]
        ax.bar([_label(m) for m in methods], means, yerr=sds, capsize=3,
               color=["tab:red" if m == "v5" else "tab:blue" if m == "mrl" else "tab:gray"
                      for m in methods])
        ax.axhline(-0.05, color="tab:purple", ls=":", lw=1, label="Inverted < −0.05")
        ax.axhspan(-0.02, 0.02, color="tab:green", alpha=0.12, label="|No-prefix| ≤ 0.02")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_title(ds, fontsize=10)
        ax.tick_params(axis="x", labelsize=8, rotation=20)
    axes[0][0].set_ylabel("steerability S")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Figure 3: causal ablations ({protocol} protocol; bars: mean ± sd)", fontsize=10)
    _save(fig, path)


# ------------------------------------------------------------------------------------------- report

def write_report(records: list[dict], out: str | Path, formats: Sequence[str] = ("md",),
                 bench: str | Path | None = None, data_dir: str | None = None) -> dict:
    """Write every table and figure into ``out``; returns the summary also saved as summary.json.

    ``bench``: a ``bench/search.py`` result JSON whose latency figures join the efficiency tables.
    ``data_dir``: where the data sets are, for the leakage figure's coarse-label reference when the
    records do not hold it.
    """
    from .report_beyond import split_confirmation, write_section

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records, confirm = split_confirmation(records)
    res = Results(records)
    summary: dict = {"protocols": {}, "datasets": res.datasets, "methods": res.methods,
                     "seeds": res.seeds, "backbones": res.backbones, "heads": res.heads,
                     "runs": len(records), "confirmation_runs": len(confirm)}
    md = ["# Steerable embeddings: results", "",
          f"{len(records)} runs; data sets {', '.join(res.datasets)}; methods "
          f"{', '.join(_label(m) for m in res.methods)}; seeds {', '.join(map(str, res.seeds))}; "
          f"backbone {', '.join(res.backbones)}; head {', '.join(res.heads)}.", ""]
    ht = hierarchy_table(res)
    ht.write(out, "hierarchy")
    md += [ht.markdown(), ""]
    for protocol in res.protocols:
        md += [f"## Protocol: {protocol}", "", res.describe(protocol), ""]
        t1 = table1(res, protocol)
        tests = steerability_tests(res, protocol)
        t2 = table2(res, protocol, tests)
        abl = ablation_summary(res, protocol)
        t3 = table3(res, protocol, abl)
        fit = complexity_fit(res, protocol)
        for t, stem in ((t1, "table1_accuracy"), (t2, "table2_steerability"), (t3, "table3_ablations")):
            if t.rows:
                t.write(out, f"{stem}_{protocol}")
                md += [t.markdown(), ""]
        figs = []
        if any(res.blocks.get((d, "v5", protocol)) for d in res.datasets):
            figure1(res, protocol, out / f"fig1_prefix_curves_{protocol}.png")
            figs.append(("Figure 1: prefix accuracy curves", f"fig1_prefix_curves_{protocol}.png"))
        if fit["points"]:
            figure2(fit, protocol, out / f"fig2_complexity_{protocol}.png")
            figs.append(("Figure 2: steerability vs complexity", f"fig2_complexity_{protocol}.png"))
        if abl:
            figure3(res, protocol, abl, out / f"fig3_ablations_{protocol}.png")
            figs.append(("Figure 3: ablations", f"fig3_ablations_{protocol}.png"))
        md += [f"![{title}]({name})" for title, name in figs] + [""]
        if "spearman_rho" in fit:
            md += [f"Figure 2 trend: slope {fit['slope']:+.3f} per bit of H(L1|L0); Spearman ρ = "
                   f"{fit['spearman_rho']:.2f} (p = {fit['spearman_p']:.2g}, {len(fit['points'])} data sets).", ""]
        summary["protocols"][protocol] = {
            "tests_v5_vs_mrl": tests, "ablations": abl, "complexity": fit,
            "means": {f"{ds}/{m}": {k: float(np.mean(list(v.values())))
                                    for k in STEER_METRICS
                                    if (v := res.values(ds, m, protocol, k))}
                      for ds in res.datasets for m in res.methods},
        }
    if res.retrieval:
        md += ["## Retrieval, multi-stage search and efficiency", ""]
        for t, stem in ((retrieval_table(res), "table4_retrieval"), (funnel_table(res), "table5_multistage"),
                        (adaptive_table(res), "table5b_adaptive"), (efficiency_table(res), "table6_efficiency")):
            if t.rows:
                t.write(out, stem)
                md += [t.markdown(), ""]
        if bench is not None and Path(bench).exists():
            measured = json.loads(Path(bench).read_text())
            lt = latency_table(measured)
            if lt.rows:
                lt.write(out, "table6b_latency")
                md += [lt.markdown(), ""]
            targets, verdicts = search_targets(measured)
            if targets.rows:
                targets.write(out, "table6c_search_targets")
                md += [targets.markdown(), "", *[f"- {v}" for v in verdicts], ""]
        loss = recall_loss(res)
        if loss:
            md += ["The outline's claim \"V5 loses 2 % recall vs MRL loses 9 % at 64-d\": relative loss of "
                   "fine-label Recall@10 at the shortest prefix against the full vector: " +
                   "; ".join(f"{ds}: V5 {100 * v.get('v5', float('nan')):.1f} %, MRL "
                             f"{100 * v.get('mrl', float('nan')):.1f} %" for ds, v in loss.items()) + ". " +
                   recall_loss_verdict(loss)[1], ""]
        summary["retrieval_loss"] = loss
        if any((d, "v5") in res.retrieval and (d, "mrl") in res.retrieval for d in res.datasets):
            figure4(res, out / "fig4_multistage.png")
            md += ["![Figure 4: multi-stage search](fig4_multistage.png)", ""]
    beyond_md, beyond_summary = write_section(res, out, data_dir=data_dir,
                                              confirm=Results(confirm) if confirm else None)
    md += beyond_md
    if beyond_summary:
        summary["beyond"] = beyond_summary
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    atomic_write_json(out / "summary.json", summary)
    if "mteb" in formats:
        write_mteb(res, out / "mteb")
    return summary


def write_mteb(res: Results, out: Path) -> list[Path]:
    """MTEB-style result JSON: ``<out>/<model>/no_revision_available/<Task>.json`` per method x dim.

    Each data set x level is a task scored by k-NN accuracy (standard protocol where present), with
    one entry per seed in ``scores_per_experiment``.
    """
    from . import __version__

    protocol = "standard" if "standard" in res.protocols else res.protocols[0]
    written = []
    for m in res.methods:
        dims_by_ds = {ds: next(iter(res.blocks[(ds, m, protocol)].values()))["dims"]
                      for ds in res.datasets if res.blocks.get((ds, m, protocol))}
        for j in range(4):
            model = f"steerable-{m}-prefix{j + 1}"
            for ds, dims in dims_by_ds.items():
                dim = dims[j] if j < len(dims) else dims[-1]
                for level in res.levels[ds]:
                    per_seed = {s: b["accuracy"][level][str(dim)]
                                for s, b in res.blocks[(ds, m, protocol)].items()}
                    task = f"Steerable{ds.title().replace('_', '')}{level.upper()}KNN"
                    doc = {
                        "dataset_revision": "steerable-shared-datasets",
                        "task_name": task,
                        "mteb_version": "1.12.0",
                        "evaluation_time": None,
                        "kg_co2_emissions": None,
                        "scores": {"test": [{
                            "hf_subset": "default", "languages": ["eng-Latn"],
                            "main_score": float(np.mean(list(per_seed.values()))),
                            "accuracy": float(np.mean(list(per_seed.values()))),
                            "scores_per_experiment": [{"seed": s, "accuracy": v}
                                                      for s, v in sorted(per_seed.items())],
                        }]},
                        "steerable": {"version": __version__, "method": m, "prefix_dim": dim,
                                      "level": level, "protocol": protocol,
                                      "backbone": res.backbones, "metric": "k-NN accuracy"},
                    }
                    path = out / model / "no_revision_available" / f"{task}.json"
                    atomic_write_json(path, doc)
                    written.append(path)
    return written


def load_records(source: str | Path) -> list[dict]:
    """Records from a results store folder, or a single records JSON list."""
    from .store import ResultsStore

    source = Path(source)
    if source.is_file():
        return json.loads(source.read_text())
    return ResultsStore(source).records()
