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
from ..heads import DEFAULT_HEAD
from ..methods import default_setting, parse_setting, preset
from ..openset import Unseen
from ..train import recipe_value


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run."""

    dataset: str
    method: str
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

    def __post_init__(self):
        # Pin the training settings the method would use, so the run id names what actually ran.
        schedule = preset(self.method)
        object.__setattr__(self, "method", schedule.name)  # canonical: "dial0.5" -> "dial@0.5"
        base, value = parse_setting(self.method)
        default = default_setting(base)  # pinned now: the setting this spec means, whatever the default later
        object.__setattr__(self, "_explicit", f"{base}@{default:g}" if value is None and default is not None
                           else self.method)
        for key in ("epochs", "batch_size", "lr"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, recipe_value(schedule, key))
        if self.unseen is not None:
            object.__setattr__(self, "unseen", str(Unseen.parse(self.unseen)))  # validated, canonical
        if self.min_queries < 1:
            raise ValueError(f"min_queries must be at least 1, got {self.min_queries}")
        if self.split not in ("test", "validation"):
            raise ValueError(f"a run is measured on the test or the validation split, not {self.split!r}")

    @property
    def run_id(self) -> str:
        settings = asdict(self)
        for k in ("dataset", "method", "seed"):
            settings.pop(k)
        for key, default in (("unseen", None), ("split", "test"), ("min_queries", 200)):
            if settings[key] == default:  # runs with the defaults keep the ids they had before these fields
                settings.pop(key)
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.dataset}__{self.explicit_method}__s{self.seed}__{digest}"

    @property
    def explicit_method(self) -> str:
        """The method with the setting it runs at spelled out (``adversarial`` -> ``adversarial@1``)."""
        return self._explicit

    def to_dict(self) -> dict:
        return asdict(self)


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
