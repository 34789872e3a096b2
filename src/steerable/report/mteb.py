"""MTEB-style result JSON from a results store: one task per data set and level, scored by k-NN."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..io import atomic_write_json
from .results import Results


def write_mteb(res: Results, out: Path) -> list[Path]:
    """MTEB-style result JSON: ``<out>/<model>/no_revision_available/<Task>.json`` per method x dim.

    Each data set x level is a task scored by k-NN accuracy (standard protocol where present), with
    one entry per seed in ``scores_per_experiment``.
    """
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
