"""The outline's figures beyond the library's: steerability against hierarchy complexity (Figure 2)
and the ablations (Figure 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steerable.methods import label
from steerable.report import Results
from steerable.report.figures import plt, save

from .tables import ABLATION_ORDER


def figure2(fit: dict, protocol: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    pts = fit["points"]
    ax.scatter([p["h"] for p in pts], [p["delta"] for p in pts], color="tab:red", zorder=3)
    for p in pts:
        ax.annotate(p["dataset"], (p["h"], p["delta"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if "slope" in fit:
        xs = np.linspace(min(p["h"] for p in pts), max(p["h"] for p in pts), 20)
        ax.plot(
            xs,
            fit["slope"] * xs + fit["intercept"],
            "--",
            color="gray",
            label=f"linear fit; Spearman ρ = {fit['spearman_rho']:.2f} (p = {fit['spearman_p']:.2g})",
        )
        ax.legend(fontsize=7)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("H(L1 | L0) (bits)")
    ax.set_ylabel("S(V5) − S(MRL)")
    ax.set_title(f"Figure 2: steerability vs hierarchy complexity ({protocol})", fontsize=9)
    ax.grid(alpha=0.3)
    save(fig, path)


def figure3(res: Results, protocol: str, summary: dict, path: Path) -> None:
    dss = list(summary)
    fig, axes = plt.subplots(1, len(dss), figsize=(4 * len(dss), 3.3), squeeze=False)
    for ax, ds in zip(axes[0], dss):
        methods = [m for m in ABLATION_ORDER if res.values(ds, m, protocol, "steerability_score")]
        vals = [list(res.values(ds, m, protocol, "steerability_score").values()) for m in methods]
        means = [np.mean(v) for v in vals]
        sds = [np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals]
        ax.bar(
            [label(m) for m in methods],
            means,
            yerr=sds,
            capsize=3,
            color=["tab:red" if m == "v5" else "tab:blue" if m == "mrl" else "tab:gray" for m in methods],
        )
        ax.axhline(-0.05, color="tab:purple", ls=":", lw=1, label="Inverted < −0.05")
        ax.axhspan(-0.02, 0.02, color="tab:green", alpha=0.12, label="|No-prefix| ≤ 0.02")
        ax.axhline(0, color="black", lw=0.5)
        ax.set_title(ds, fontsize=10)
        ax.tick_params(axis="x", labelsize=8, rotation=20)
    axes[0][0].set_ylabel("steerability S")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Figure 3: causal ablations ({protocol} protocol; bars: mean ± sd)", fontsize=10)
    save(fig, path)
