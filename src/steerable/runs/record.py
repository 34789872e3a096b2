"""The run record: what one finished run of a sweep measured, as stored in a results store.

A record is written once, as JSON, when its run finishes; every reader (the store's long table, the
reports) goes through :class:`RunRecord`, whose measured sections are typed: :class:`ProtocolMetrics`
per evaluation protocol, :class:`Retrieval`, :class:`Probe` and :class:`OpenSet`.

``schema_version`` names the shape; a record without one was written before the field existed and has
the shape of version 1. Version 2 added ``open_set``. Version 3 reads every section into its type and
refuses a section that lacks a field (the JSON is the same shape as version 2's; a version 2 record
whose probe or open-set section predates a field reads with it empty). ``environment`` (the torch
thread count and version a run ran with, and ``trained_together``: how many runs' heads, this one's
included, trained as one stacked model), ``geometry`` (CPCC and the rank correlation with the
backbone's cosines), ``history``, ``seconds`` and ``cost`` stay free-form and read as ``{}`` where
absent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypeVar

from ..methods import canonical

SCHEMA_VERSION = 3  # 3: typed sections; 2: open_set (runs with classes held out); 1 reads as 2 with none

STEERABILITY_METRICS = (
    "short_coarse",
    "full_fine",
    "specialization_gap",
    "coarse_gain",
    "fine_gain",
    "steerability_score",
    "control_auc",
)

_Section = TypeVar("_Section")


def _section(cls: type[_Section], d: Mapping[str, Any], source: str) -> _Section:
    """A section dataclass from its JSON form: every field without a default must be there (the error
    names the record and the section); keys it does not know are left out."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    missing = [
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.default is MISSING and f.default_factory is MISSING and f.name not in d
    ]
    if missing:
        raise ValueError(f"{source}: no {', '.join(missing)}")
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Steerability:
    """k-NN accuracy of every level at every prefix dim, and the steerability metrics read from it
    (:func:`steerable.metrics.steerability`)."""

    dims: list[int]
    accuracy: dict[str, dict[str, float]]  # level -> str(dim) -> accuracy, as JSON keys them
    short_coarse: float
    full_fine: float
    specialization_gap: float
    coarse_gain: float
    fine_gain: float
    steerability_score: float
    control_auc: float

    def at(self, level: str, which: int = -1) -> float:
        """Accuracy of ``level`` at the ``which``-th prefix dim (-1: the full vector)."""
        return self.accuracy[level][str(self.dims[which])]

    def metric(self, name: str) -> float:
        """A steerability metric by name (one of :data:`STEERABILITY_METRICS`)."""
        if name not in STEERABILITY_METRICS:
            raise KeyError(f"no steerability metric {name!r}; there are {', '.join(STEERABILITY_METRICS)}")
        return float(getattr(self, name))


@dataclass(frozen=True)
class Protocol:
    """How a protocol measured: ``k`` neighbours; ``n`` test texts and the shuffle ``seed`` where it
    samples them (the paper protocol), None where it takes the whole split."""

    name: str
    k: int
    n: int | None
    seed: int | None


@dataclass
class ProtocolMetrics(Steerability):
    """One protocol's block of ``metrics.json``."""

    protocol: Protocol

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "metrics") -> ProtocolMetrics:
        if not isinstance(d.get("protocol"), Mapping):
            raise ValueError(f"{source}: no protocol")
        return _section(cls, {**d, "protocol": _section(Protocol, d["protocol"], f"{source}.protocol")}, source)


@dataclass
class OpenSet(Steerability):
    """``metrics.json``'s ``open_set`` section (:func:`steerable.openset.open_set_metrics`): the texts of
    the classes held out of training, queried against a pool of every class."""

    unseen: str  # as requested: coarse:K, fine:F
    drawn: str  # what was held out after the draw's minimum
    seed: int
    queries: int
    pool: int
    k: int
    held_out: dict[str, int]  # level -> classes among the queries
    held_out_classes: dict[str, list[str]] = field(default_factory=dict)  # level -> names; {} before it was kept
    clustering: dict[str, dict[str, float]] = field(default_factory=dict)  # "level@dim" -> ARI, V-measure

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "open_set") -> OpenSet:
        return _section(cls, d, source)


@dataclass
class Probe:
    """Leakage of the shortest prefix (:func:`steerable.metrics.probe_prefix`): a linear probe's test
    accuracy per level, what the coarse label alone tells, and the prefix's numerical and effective
    rank (None in records written before they were kept)."""

    dim: int
    accuracy: dict[str, float]
    rank: int | None = None
    effective_rank: float | None = None
    coarse_only: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "probe") -> Probe:
        return _section(cls, d, source)


class Retrieval(Mapping[str, float]):
    """Retrieval metrics by the keys :func:`steerable.search.metrics.evaluate_retrieval` writes
    (``recall@10/l1/64``, ``mrr/l0/64``, ``ndcg@10/64``, ``funnel/overlap@10/K``, ...), with accessors
    for the ones reports read. Empty where the run measured none."""

    def __init__(self, values: Mapping[str, float] | None = None):
        self._values = {str(k): float(v) for k, v in (values or {}).items()}

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Retrieval({len(self)} metrics)"

    def recall(self, k: int, level: str, dim: int) -> float | None:
        return self._values.get(f"recall@{k}/{level}/{dim}")

    def mrr(self, level: str, dim: int) -> float | None:
        return self._values.get(f"mrr/{level}/{dim}")

    def ndcg(self, dim: int) -> float | None:
        return self._values.get(f"ndcg@10/{dim}")

    @property
    def dims(self) -> list[int]:
        """The prefix dims measured."""
        return sorted({int(k.rsplit("/", 1)[1]) for k in self._values if k.startswith("ndcg@10/")})

    @property
    def shortlists(self) -> list[int]:
        """The funnel's shortlist sizes measured."""
        return sorted({int(k.rsplit("/", 1)[1]) for k in self._values if k.startswith("funnel/overlap")})

    def to_dict(self) -> dict[str, float]:
        return dict(self._values)


@dataclass
class RunRecord:
    """One finished run."""

    run_id: str
    dataset: str
    method: str
    seed: int
    backbone: str
    head: str
    spec: dict[str, Any]  # the RunSpec's fields
    dataset_stats: dict[str, Any]
    level_names: list[str]
    metrics: dict[str, ProtocolMetrics]  # protocol name -> its block
    retrieval: Retrieval = field(default_factory=Retrieval)
    probe: Probe | None = None
    history: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    open_set: OpenSet | None = None  # None for a closed-set run
    geometry: dict[str, Any] = field(default_factory=dict)  # steerable.metrics.geometry; {} before it was kept
    # what the numbers also depend on beyond the spec: {"torch_threads": n, "torch": version} (float sums
    # are ordered by the thread count); {} for records written before it was kept
    environment: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "record") -> RunRecord:
        """A record from its JSON form (any version up to :data:`SCHEMA_VERSION`); ``source`` names it in
        errors."""
        version = d.get("schema_version", 1)
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"{source}: schema version {version} is newer than this steerable reads "
                f"({SCHEMA_VERSION}); upgrade steerable"
            )
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in d]
        if missing:
            raise ValueError(f"{source}: not a run record (missing {', '.join(missing)})")
        typed = {
            "metrics": {p: ProtocolMetrics.from_dict(b, f"{source}: metrics.{p}") for p, b in d["metrics"].items()},
            "retrieval": Retrieval(d.get("retrieval")),
            "probe": Probe.from_dict(d["probe"], f"{source}: probe") if d.get("probe") else None,
            "open_set": OpenSet.from_dict(d["open_set"], f"{source}: open_set") if d.get("open_set") else None,
            # a record names its method as runs do now (an old "adversarial@1" is "adversarial" once 1 is
            # the default); its run id keeps the setting it ran at
            "method": canonical(d["method"]),
            "schema_version": SCHEMA_VERSION,
        }
        return cls(**{k: v for k, v in d.items() if k in names} | typed)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (:meth:`from_dict` reads it back)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return out | {
            "metrics": {p: asdict(b) for p, b in self.metrics.items()},
            "retrieval": self.retrieval.to_dict(),
            "probe": asdict(self.probe) if self.probe else {},
            "open_set": asdict(self.open_set) if self.open_set else {},
        }

    @property
    def protocols(self) -> list[str]:
        return list(self.metrics)

    def value(self, protocol: str, metric: str) -> float | None:
        """A steerability metric (``steerability_score``, ``short_coarse``, ...) under a protocol."""
        block = self.metrics.get(protocol)
        return None if block is None else block.metric(metric)

    def accuracy(self, protocol: str, level: str, which: int = -1) -> float | None:
        """k-NN accuracy of a level at the ``which``-th prefix dim (-1: the full vector)."""
        block = self.metrics.get(protocol)
        return None if block is None else block.at(level, which)

    def dims(self, protocol: str | None = None) -> list[int]:
        return self.metrics[protocol or self.protocols[0]].dims

    @property
    def unseen(self) -> str | None:
        """The classes the run held out of training (``fine:F`` / ``coarse:K``), None for a closed-set run."""
        return self.spec.get("unseen")

    @property
    def split(self) -> str:
        """The split the run was measured on: test, or validation for a selection run."""
        return str(self.spec.get("split", "test"))

    @property
    def n_test(self) -> int:
        """Test examples the run used (the data set's test split, capped)."""
        cap = self.spec.get("max_test")
        n = int(self.dataset_stats["test"])
        return min(n, cap) if cap else n
