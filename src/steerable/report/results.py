"""Run records grouped for reporting: per data set, method, protocol and seed."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from ..methods import display_order, parse_dial
from ..runs.record import OpenSet, Protocol, ProtocolMetrics, Retrieval, RunRecord

PROTOCOL_ORDER = ["paper", "standard"]


def _refuse_collisions(records: Sequence[RunRecord]) -> None:
    """Two runs that would fill the same cell (data set, method, held-out classes, seed) are of
    different settings (a backbone, a head, a cap): averaging or overwriting them would mix those
    settings silently, so the report refuses and names them."""
    seen: dict[tuple, RunRecord] = {}
    for r in records:
        key = (r.dataset, r.method, r.unseen, r.seed)
        other = seen.setdefault(key, r)
        if other is r:
            continue
        hint = (
            f"backbones {other.backbone} and {r.backbone}: report one at a time (steer report --backbone), "
            "or side by side with python -m paper --part backbones"
            if other.backbone != r.backbone
            else "report them from separate stores"
        )
        raise ValueError(
            f"runs {other.run_id} and {r.run_id} both give {r.dataset} {r.method} seed {r.seed} "
            f"with different settings; {hint}"
        )


class Results:
    """Records grouped for tables: ``blocks[(dataset, method, protocol)][seed]`` = metrics block,
    ``retrieval[(dataset, method)][seed]`` = retrieval metrics, of the closed-set runs;
    ``open_set[(dataset, method, unseen)][seed]`` = the open-set section of the runs that held classes
    out; methods in registry order. Runs measured on the validation split are left out."""

    def __init__(self, records: Sequence[RunRecord]):
        records = [r for r in records if r.split == "test"]  # selection runs (validation) are not reported
        if not records:
            raise ValueError("no results to report: the store holds no finished runs")
        _refuse_collisions(records)
        self.open_set: dict[tuple, dict[int, OpenSet]] = defaultdict(dict)
        for r in records:
            if r.unseen and r.open_set is not None:
                self.open_set[(r.dataset, r.method, r.unseen)][r.seed] = r.open_set
        self.open_set_records = [r for r in records if r.unseen]
        self.records = [r for r in records if not r.unseen]
        self.blocks: dict[tuple, dict[int, ProtocolMetrics]] = defaultdict(dict)
        self.retrieval: dict[tuple, dict[int, Retrieval]] = defaultdict(dict)
        self.geometry: dict[tuple, dict[int, dict]] = defaultdict(dict)  # (dataset, method) -> seed -> geometry
        self.cost: dict[str, list[dict]] = defaultdict(list)
        self.stats: dict[str, dict] = {}
        self.levels: dict[str, list[str]] = {}
        self.n_docs: dict[str, int] = {}  # documents in each run's retrieval split
        self.protocol_desc: dict[str, Protocol] = {}
        for r in records:
            self.stats.setdefault(r.dataset, r.dataset_stats)
            self.levels.setdefault(r.dataset, r.level_names)
        for r in self.records:
            for protocol, block in r.metrics.items():
                self.blocks[(r.dataset, r.method, protocol)][r.seed] = block
                self.protocol_desc.setdefault(protocol, block.protocol)
            if r.retrieval:
                self.retrieval[(r.dataset, r.method)][r.seed] = r.retrieval
            if r.geometry:
                self.geometry[(r.dataset, r.method)][r.seed] = r.geometry
                self.n_docs[r.dataset] = r.n_test - r.n_test // 2
            if r.cost:
                self.cost[r.method].append(r.cost | {"train_s": r.seconds["train"], "dataset": r.dataset})
        self.datasets = sorted({r.dataset for r in self.records})
        self.protocols = sorted({k[2] for k in self.blocks}, key=PROTOCOL_ORDER.index)
        self.methods = display_order(r.method for r in self.records)
        self.backbones = sorted({r.backbone for r in records})
        self.heads = sorted({r.head for r in records})
        self.seeds = sorted({r.seed for r in self.records})

    def values(self, dataset: str, method: str, protocol: str, metric: str) -> dict[int, float]:
        """Seed -> a steerability metric of one method on one data set."""
        return {s: b.metric(metric) for s, b in self.blocks.get((dataset, method, protocol), {}).items()}

    def accuracy(self, dataset: str, method: str, protocol: str, level: str, which: int) -> dict[int, float]:
        """Seed -> k-NN accuracy of a level at the ``which``-th prefix dim (-1: full)."""
        return {s: b.at(level, which) for s, b in self.blocks.get((dataset, method, protocol), {}).items()}

    def probe(self, dataset: str, method: str, level: str) -> dict[int, float]:
        """Seed -> accuracy of a linear probe for ``level`` on the shortest prefix, where recorded."""
        return {
            r.seed: r.probe.accuracy[level]
            for r in self.records
            if r.dataset == dataset and r.method == method and r.probe is not None
        }

    def shape(self, dataset: str, method: str, what: str, which: int = 0) -> dict[int, float]:
        """Seed -> a geometry figure (``cpcc`` or ``backbone_spearman``) at the ``which``-th prefix dim, where
        recorded."""
        out = {}
        for seed, g in self.geometry.get((dataset, method), {}).items():
            dims = list(g[what])
            out[seed] = g[what][dims[which]]
        return out

    def listed_methods(self) -> list[str]:
        """Every method but the dial's settings (which share one trained model per seed)."""
        return [m for m in self.methods if parse_dial(m) is None]

    def describe(self, protocol: str) -> str:
        p = self.protocol_desc[protocol]
        if protocol == "paper":
            how = f"leave-one-out {p.k}-NN within {p.n} test examples (seeded shuffle per seed)"
        else:
            how = f"{p.k}-NN, training split as reference, whole (capped) test split"
        return (
            f"Protocol `{protocol}`: {how}. Seeds {', '.join(map(str, self.seeds))}; backbone "
            f"{', '.join(self.backbones)}; head {', '.join(self.heads)}."
        )
