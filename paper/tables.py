"""The outline's own tables: the causal ablations with their pass criteria (Table 3), and how
steerability grows with the hierarchy's complexity (the data behind Figure 2)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

from steerable.methods import label
from steerable.report import Results, Table
from steerable.report.render import fmt

INVERTED_MAX = -0.05  # outline's pass criterion: Inverted S < -0.05


NO_PREFIX_MAX = 0.02  # outline's pass criterion: |No-prefix S| <= 0.02


def ablation_verdicts(inverted_s: float | None, no_prefix_s: float | None) -> dict[str, dict]:
    """The outline's pass criteria: Inverted S < -0.05 and |No-prefix S| <= 0.02."""
    out = {}
    if inverted_s is not None:
        out["inverted"] = {
            "criterion": f"S < {INVERTED_MAX}",
            "value": inverted_s,
            "pass": bool(inverted_s < INVERTED_MAX),
        }
    if no_prefix_s is not None:
        out["no_prefix"] = {
            "criterion": f"|S| <= {NO_PREFIX_MAX}",
            "value": no_prefix_s,
            "pass": bool(abs(no_prefix_s) <= NO_PREFIX_MAX),
        }
    return out


ABLATION_ORDER = ["v5", "inverted", "no_prefix", "uhmt", "mrl"]


def ablation_summary(res: Results, protocol: str) -> dict[str, dict]:
    out = {}
    for ds in res.datasets:
        means = {
            m: float(np.mean(list(v.values())))
            for m in ABLATION_ORDER
            if (v := res.values(ds, m, protocol, "steerability_score"))
        }
        if "inverted" not in means and "no_prefix" not in means:
            continue
        out[ds] = {"means": means, "verdicts": ablation_verdicts(means.get("inverted"), means.get("no_prefix"))}
    return out


def table3(res: Results, protocol: str, summary: dict[str, dict]) -> Table:
    methods = [m for m in ABLATION_ORDER if m in res.methods]
    cols = ["data set"] + [f"{label(m)} S" for m in methods] + ["Inverted < -0.05", "|No-prefix| ≤ 0.02"]
    rows = []
    for ds, info in summary.items():
        row = [ds] + [fmt(res.values(ds, m, protocol, "steerability_score")) for m in methods]
        for key in ("inverted", "no_prefix"):
            v = info["verdicts"].get(key)
            row.append("–" if v is None else ("PASS" if v["pass"] else "FAIL"))
        rows.append(row)
    return Table(
        f"Table 3: causal ablations, steerability S mean ± sd ({protocol} protocol)",
        cols,
        rows,
        res.describe(protocol) + " Pass criteria from the outline, on the mean S.",
    )


def complexity_fit(res: Results, protocol: str) -> dict:
    """Per data set: H(L1|L0), branching, ΔS = S(V5) - S(MRL); linear fit and Spearman rho."""
    pts = []
    for ds in res.datasets:
        v5, mrl = (res.values(ds, m, protocol, "steerability_score") for m in ("v5", "mrl"))
        if v5 and mrl:
            pts.append(
                {
                    "dataset": ds,
                    "h": res.stats[ds]["H1|0"],
                    "branching": res.stats[ds]["branching1"],
                    "v5": float(np.mean(list(v5.values()))),
                    "mrl": float(np.mean(list(mrl.values()))),
                    "delta": float(np.mean(list(v5.values())) - np.mean(list(mrl.values()))),
                }
            )
    out: dict[str, Any] = {"points": pts}
    if len(pts) >= 3:
        h = [p["h"] for p in pts]
        d = [p["delta"] for p in pts]
        rho, p = spearmanr(h, d)
        slope, intercept = np.polyfit(h, d, 1)
        out |= {
            "spearman_rho": float(rho),
            "spearman_p": float(p),
            "slope": float(slope),
            "intercept": float(intercept),
        }
    return out
