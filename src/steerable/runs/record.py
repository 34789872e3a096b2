"""The run record: what one finished run of a sweep measured, as stored in a results store.

A record is written once, as JSON, when its run finishes; every reader (the store's long table, the
reports) goes through :class:`RunRecord`. ``schema_version`` names the shape; a record without one
was written before the field existed and has the shape of version 1. Version 2 added ``open_set``.
``environment`` (the torch thread count and version a run ran with, and ``trained_together``: how
many runs' heads, this one's included, trained as one stacked model) and ``geometry`` (CPCC and the
rank correlation with the backbone's cosines) are optional and read as ``{}`` where absent, so they
need no new version.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

from ..methods import canonical

SCHEMA_VERSION = 2  # 2: open_set (runs with classes held out of training); 1 reads as 2 with none


@dataclass
class RunRecord:
    """One finished run. ``metrics`` is ``metrics.json``'s content: per protocol, a block with
    ``protocol``, ``dims``, ``accuracy[level][dim]`` and every steerability metric by name."""

    run_id: str
    dataset: str
    method: str
    seed: int
    backbone: str
    head: str
    spec: dict  # the RunSpec's fields
    dataset_stats: dict
    level_names: list[str]
    metrics: dict
    retrieval: dict = field(default_factory=dict)  # keys as steerable.search.metrics writes them
    probe: dict = field(default_factory=dict)  # steerable.metrics.probe_prefix
    history: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    open_set: dict = field(default_factory=dict)  # steerable.openset.open_set_metrics; {} for closed-set runs
    geometry: dict = field(default_factory=dict)  # steerable.metrics.geometry; {} for records written before it
    # what the numbers also depend on beyond the spec: {"torch_threads": n, "torch": version} (float sums
    # are ordered by the thread count); {} for records written before it was kept
    environment: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, d: dict, source: str = "record") -> "RunRecord":
        """A record from its JSON form; ``source`` names it in errors."""
        version = d.get("schema_version", 1)
        if version > SCHEMA_VERSION:
            raise ValueError(f"{source}: schema version {version} is newer than this steerable reads "
                             f"({SCHEMA_VERSION}); upgrade steerable")
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in d]
        if missing:
            raise ValueError(f"{source}: not a run record (missing {', '.join(missing)})")
        # a record names its method as runs do now (an old "adversarial@1" is "adversarial" once 1 is the
        # default); its run id keeps the setting it ran at
        return cls(**{k: v for k, v in d.items() if k in names}
                   | {"method": canonical(d["method"]), "schema_version": SCHEMA_VERSION})

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def protocols(self) -> list[str]:
        return list(self.metrics)

    def value(self, protocol: str, metric: str) -> float | None:
        """A steerability metric (``steerability_score``, ``short_coarse``, ...) under a protocol."""
        block = self.metrics.get(protocol)
        return None if block is None else block.get(metric)

    def accuracy(self, protocol: str, level: str, which: int = -1) -> float | None:
        """k-NN accuracy of a level at the ``which``-th prefix dim (-1: the full vector)."""
        block = self.metrics.get(protocol)
        return None if block is None else block["accuracy"][level][str(block["dims"][which])]

    def dims(self, protocol: str | None = None) -> list[int]:
        return self.metrics[protocol or self.protocols[0]]["dims"]

    @property
    def unseen(self) -> str | None:
        """The classes the run held out of training (``fine:F`` / ``coarse:K``), None for a closed-set run."""
        return self.spec.get("unseen")

    @property
    def split(self) -> str:
        """The split the run was measured on: test, or validation for a selection run."""
        return self.spec.get("split", "test")

    @property
    def n_test(self) -> int:
        """Test examples the run used (the data set's test split, capped)."""
        cap = self.spec.get("max_test")
        return min(self.dataset_stats["test"], cap) if cap else self.dataset_stats["test"]
