"""What determines a run, and grids of runs.

A :class:`RunSpec` names a run's data set, method, seed, backbone, head, caps and training settings;
its ``run_id`` (data set, method, seed and a digest of the rest) keys the run's record in a results
store. A method with a setting is named bare at its current default (``adversarial``), but its run id
always names the setting it ran at (``adversarial@1``), so changing a default never lets an old record
stand for the new value. A :class:`SweepSpec` is a grid: data sets x methods x seeds x backbones,
with extra methods (ablations) on some data sets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..backbone import DEFAULT_BACKBONE
from ..heads import DEFAULT_HEAD, HEADS
from ..methods import default_setting, parse_setting, preset
from ..openset import Unseen
from ..schedule import Schedule
from ..training import recipe_value

# Fields added after records were first stored: at these defaults a spec's id and dict are what they were
# before the field existed, so a results store keeps serving its records.
LATER_DEFAULTS = {
    "unseen": None,
    "split": "test",
    "min_queries": 200,
    "blocks": 4,
    "block_dim": 64,
    "schedule": None,
    "protocols": ("paper", "standard"),
    "k": 5,
    "retrieval": True,
}
PROTOCOL_NAMES = ("paper", "standard")


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run, checked when it is made: what :func:`~steerable.runs.run` runs.

    ``dataset`` names the data set (a canonical one under ``STEER_DATA_DIR``, or the name of one given to
    :func:`~steerable.runs.run` by value); ``method`` a method of :data:`~steerable.methods.METHODS`
    (``name@setting`` for a setting), or ``schedule`` a custom schedule as JSON (the method is then its
    name); ``blocks`` x ``block_dim`` the head's shape; ``protocols``, ``k`` and ``paper_n`` how it is
    measured; ``retrieval``: whether retrieval metrics are measured too.
    """

    dataset: str
    method: str = "v5"
    seed: int = 42
    backbone: str = DEFAULT_BACKBONE
    head: str = DEFAULT_HEAD
    max_train: int | None = None
    max_test: int | None = None
    epochs: int | None = None  # None: as the method's recipe says (pinned in __post_init__)
    batch_size: int | None = None
    lr: float | None = None
    precision: str = "fp32"
    paper_n: int = 500
    unseen: str | None = None  # classes held out of training: "fine:F" or "coarse:K" (steerable.openset)
    min_queries: int = 200  # with unseen: test texts the held-out classes must hold (steerable.openset.Unseen)
    split: str = "test"  # the split every measurement is made on; "validation" for selection runs
    blocks: int = 4
    block_dim: int = 64
    schedule: str | None = None  # a custom schedule, as JSON (steerable.schedule.Schedule.to_dict)
    protocols: tuple[str, ...] = ("paper", "standard")
    k: int = 5
    retrieval: bool = True
    # the method with its setting spelled out, pinned when the spec is made: the setting this spec means,
    # whatever the default later (see explicit_method)
    _explicit: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ValueError("a run needs a data set")
        # Pin the training settings the method would use, so the run id names what actually ran.
        schedule = self.build_schedule()
        object.__setattr__(self, "method", schedule.name)  # canonical: "dial0.5" -> "dial@0.5"
        base, value = parse_setting(self.method) if self.schedule is None else (self.method, None)
        default = default_setting(base) if self.schedule is None else None
        object.__setattr__(
            self, "_explicit", f"{base}@{default:g}" if value is None and default is not None else self.method
        )
        for key in ("epochs", "batch_size", "lr"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, recipe_value(schedule, key))
        if self.unseen is not None:
            object.__setattr__(self, "unseen", str(Unseen.parse(self.unseen)))  # validated, canonical
        object.__setattr__(self, "protocols", tuple(self.protocols))
        problems = [
            (self.min_queries < 1, f"min_queries must be at least 1, got {self.min_queries}"),
            (
                self.split not in ("test", "validation"),
                f"a run is measured on the test or the validation split, not {self.split!r}",
            ),
            ((schedule.head or self.head) not in HEADS, f"unknown head {self.head!r}; choose from {sorted(HEADS)}"),
            (self.blocks < 2, f"a head needs at least 2 blocks, got {self.blocks}"),
            (self.block_dim < 1, f"block_dim must be at least 1, got {self.block_dim}"),
            (
                not self.protocols or any(p not in PROTOCOL_NAMES for p in self.protocols),
                f"protocols must be among {', '.join(PROTOCOL_NAMES)}, got {list(self.protocols)}",
            ),
            (self.k < 1, f"k must be at least 1, got {self.k}"),
            (self.paper_n < 2, f"paper_n must be at least 2, got {self.paper_n}"),
            (self.precision not in ("fp32", "bf16"), f"precision must be fp32 or bf16, got {self.precision!r}"),
        ]
        for bad, message in problems:
            if bad:
                raise ValueError(message)

    def build_schedule(self, num_levels: int = 2) -> Schedule:
        """The method's schedule for ``num_levels`` levels and this spec's blocks (or the custom one)."""
        if self.schedule is not None:
            return Schedule.from_dict(json.loads(self.schedule))
        return preset(self.method, num_levels, self.blocks)

    @property
    def run_id(self) -> str:
        settings = self.to_dict()
        for k in ("dataset", "method", "seed"):
            settings.pop(k)
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.dataset}__{self.explicit_method}__s{self.seed}__{digest}"

    @property
    def explicit_method(self) -> str:
        """The method with the setting it runs at spelled out (``adversarial`` -> ``adversarial@1``)."""
        return self._explicit

    def to_dict(self) -> dict:
        """The fields, less those added later while at their defaults (:data:`LATER_DEFAULTS`)."""
        out = asdict(self)
        del out["_explicit"]
        out["protocols"] = list(out["protocols"])
        for key, default in LATER_DEFAULTS.items():
            if out[key] == (list(default) if isinstance(default, tuple) else default):
                del out[key]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        """A spec from :meth:`to_dict` (or a stored record's ``spec``)."""
        d = dict(d)
        if "protocols" in d:
            d["protocols"] = tuple(d["protocols"])
        return cls(**d)


@dataclass
class SweepSpec:
    """A grid of runs: ``methods`` on every data set, ``ablations`` on ``ablation_datasets`` too."""

    datasets: Sequence[str]
    methods: Sequence[str] = ("v5", "mrl")
    seeds: Sequence[int] = (42,)
    backbones: Sequence[str] = (DEFAULT_BACKBONE,)
    ablations: Sequence[str] = ()
    ablation_datasets: Sequence[str] = ()
    settings: dict = field(default_factory=dict)  # RunSpec fields shared by every run

    def runs(self) -> list[RunSpec]:
        out = []
        for backbone in self.backbones:
            for ds in self.datasets:
                methods = list(self.methods) + (list(self.ablations) if ds in self.ablation_datasets else [])
                for method in methods:
                    for seed in self.seeds:
                        out.append(RunSpec(ds, method, seed, backbone, **self.settings))
        return out

    @classmethod
    def from_file(cls, path: str | Path) -> "SweepSpec":
        """A sweep from a small JSON file with the fields of this class."""
        d = json.loads(Path(path).read_text())
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown sweep fields {sorted(unknown)}")
        return cls(**d)
