"""Sweeps: data sets x methods x seeds (x backbones), run by a pluggable executor into a results store.

Backbone vectors are encoded once, in the main process, before any run starts; runs then train on
the cache. Finished runs are skipped, so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .backbone import DEFAULT_BACKBONE
from .heads import DEFAULT_HEAD

PAPER_SEEDS = (42, 123, 456, 789, 1024)
MAIN_METHODS = ("v5", "mrl", "flat")
ABLATIONS = ("inverted", "no_prefix", "uhmt")


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
    epochs: int | None = None  # None: as the method's recipe says (see resolved)
    batch_size: int | None = None
    lr: float | None = None
    precision: str = "fp32"
    paper_n: int = 500

    def __post_init__(self):
        # Pin the training settings the method would use, so the run id names what actually ran.
        from .methods import preset
        from .train import recipe_value

        schedule = preset(self.method)
        object.__setattr__(self, "method", schedule.name)  # canonical: "dial0.5" -> "dial@0.5"
        for key in ("epochs", "batch_size", "lr"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, recipe_value(schedule, key))

    @property
    def run_id(self) -> str:
        settings = asdict(self)
        for k in ("dataset", "method", "seed"):
            settings.pop(k)
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.dataset}__{self.method}__s{self.seed}__{digest}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SweepSpec:
    """A grid of runs: main methods on every data set, ablations on some."""

    datasets: Sequence[str]
    methods: Sequence[str] = MAIN_METHODS
    seeds: Sequence[int] = PAPER_SEEDS
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
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"{path}: unknown sweep fields {sorted(unknown)}")
        return cls(**d)


def execute_run(spec: dict, store_root: str, data_dir: str | None = None, threads: int | None = None
                ) -> dict:
    """Run one spec (in whatever process the executor chose) and record it; returns the record."""
    import torch

    from .backbone import Backbone
    from .data import load_dataset
    from .experiment import default_protocols, run
    from .store import ResultsStore
    from .train import TrainConfig

    if threads:
        torch.set_num_threads(threads)
    from .methods import preset

    s = RunSpec(**spec)
    dataset = load_dataset(s.dataset, data_dir)
    schedule = preset(s.method, dataset.hierarchy.num_levels)
    cfg = TrainConfig.for_schedule(schedule, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr,
                                   seed=s.seed, precision=s.precision)
    t0 = time.perf_counter()
    result = run(dataset, schedule, head=s.head, backbone=Backbone(s.backbone),
                 train_config=cfg, max_train=s.max_train, max_test=s.max_test,
                 protocols=default_protocols(s.seed, s.paper_n), progress=False,
                 model_cache=Path(store_root) / "models")
    record = {
        "run_id": s.run_id, "dataset": s.dataset, "method": s.method, "seed": s.seed,
        "backbone": s.backbone, "head": s.head, "spec": s.to_dict(),
        "dataset_stats": dataset.stats(), "level_names": list(dataset.hierarchy.level_names),
        "metrics": result.metrics, "retrieval": result.retrieval, "probe": result.probe,
        "history": result.history,
        "seconds": result.config["seconds"] | {"total": time.perf_counter() - t0},
        "cost": result.config["cost"],
    }
    ResultsStore(store_root).add(record)
    return record


class LocalExecutor:
    """Runs in local worker processes (in this process when ``workers`` is 1).

    Each worker gets ``threads`` torch threads (default: the cores shared out among the workers).
    """

    def __init__(self, workers: int = 1, threads: int | None = None):
        self.workers = max(1, workers)
        self.threads = threads

    def map(self, fn: Callable, jobs: Sequence[dict], **kwargs) -> Iterable[dict]:
        if self.workers == 1:
            for job in jobs:
                yield fn(job, threads=self.threads, **kwargs)
            return
        import multiprocessing as mp

        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(fn, job, threads=threads, **kwargs) for job in jobs]
            for f in as_completed(futures):
                yield f.result()


class RayExecutor:
    """Runs as Ray tasks: on a cluster (``address``) or a local Ray instance (``address=None``)."""

    def __init__(self, address: str | None = None, num_cpus_per_run: int = 1):
        try:
            import ray
        except ImportError:
            raise SystemExit("steer: the Ray executor needs the 'ray' extra: pip install 'steerable[ray]'")
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                     log_to_driver=False)
        self.num_cpus = num_cpus_per_run

    def map(self, fn: Callable, jobs: Sequence[dict], **kwargs) -> Iterable[dict]:
        remote = self.ray.remote(num_cpus=self.num_cpus)(fn)
        pending = [remote.remote(job, threads=self.num_cpus, **kwargs) for job in jobs]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            yield self.ray.get(done[0])


def prepare_vectors(runs: Sequence[RunSpec], data_dir: str | None, progress: bool = True) -> int:
    """Encode every split of every data set the sweep needs, once, into the shared cache.

    Returns how many texts went through a backbone (the rest came from the cache).
    """
    from .backbone import Backbone, VectorCache
    from .data import load_dataset

    encoded = 0
    for backbone_name in dict.fromkeys(r.backbone for r in runs):
        backbone = Backbone(backbone_name)
        cache = VectorCache(backbone)
        for name in dict.fromkeys(r.dataset for r in runs if r.backbone == backbone_name):
            ds = load_dataset(name, data_dir)
            for split in ("train", "validation", "test"):
                cache.get_or_encode(ds.split(split).texts, progress=progress, desc=f"{name}/{split}")
        encoded += cache.encoded_count
    return encoded


def run_sweep(runs: Sequence[RunSpec], store_root: str | Path, *, executor=None,
              data_dir: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print, require: tuple[str, ...] = ()) -> list[dict]:
    """Run every spec that has no record yet (or whose record lacks a ``require`` key); returns the
    new records."""
    from .store import ResultsStore

    store = ResultsStore(store_root)
    todo = [r for r in runs if not store.has(r.run_id, require)]
    done = len(runs) - len(todo)
    log(f"sweep: {len(runs)} runs, {done} already recorded, {len(todo)} to go -> {store.root}")
    if not todo:
        return []
    started, t0, new = time.time(), time.perf_counter(), []
    encoded = prepare_vectors(todo, data_dir, progress=progress)
    t_vectors = time.perf_counter() - t0
    executor = executor or LocalExecutor()
    jobs = [r.to_dict() for r in todo]
    for i, record in enumerate(executor.map(execute_run, jobs, store_root=str(store.root),
                                            data_dir=data_dir), start=1):
        new.append(record)
        m = record["metrics"]
        s = "  ".join(f"S[{p}]={b['steerability_score']:+.3f}" for p, b in m.items())
        elapsed = time.perf_counter() - t0 - t_vectors
        eta = elapsed / i * (len(todo) - i)
        log(f"[{done + i}/{len(runs)}] {record['dataset']} {record['method']} seed {record['seed']}: "
            f"{s}  ({record['seconds']['total']:.0f} s; eta {eta / 60:.1f} min)")
    store.log_invocation({"started": started, "seconds": time.perf_counter() - t0,
                          "vector_seconds": t_vectors, "texts_encoded": encoded, "runs": len(new)})
    return new


BEYOND_METHODS = ("flat", "mrl", "v5", "mrl_supcon", "heal", "separated", "successive_balanced",
                  "adversarial", "adversarial_mrl", "bottleneck")
BEYOND_DATASETS = ("clinc150", "trec", "20newsgroups")
DIAL_DATASETS = ("clinc150", "trec", "20newsgroups")
DIAL_SETTINGS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


# Issue 6's claims are tested on seeds that no earlier run used for every method picked after seeing
# PAPER_SEEDS runs: the dial at 0.75 (of the candidates with a free block in the prefix, the only one
# that beat HEAL with p < 0.01 on all three data sets on the main grid), the adversarial prefix (its
# strength was picked on seed 42) and Adversarial (MRL recipe) (picked on 20 Newsgroups seeds 42, 123
# and 456 among ten variants of recipe and terms, after every SupCon-recipe method missed the paper
# MRL's accuracy there). A test on the seeds a choice was made on would be biased by it, so the
# confirmation reruns these methods, HEAL and the MRL references of the accuracy bounds on fresh seeds. The seeds are reserved: reports keep every run
# on them apart from the main tables (report_beyond.split_confirmation).
CONFIRM_SEEDS = (7, 2718, 16180, 31415, 57721)
CONFIRM_METHODS = ("dial@0.75", "adversarial", "adversarial_mrl")


def confirm_references() -> tuple[str, ...]:
    """HEAL, the paper's MRL and the MRL trained as each of :data:`CONFIRM_METHODS` is."""
    from .methods import mrl_reference

    same = sorted({mrl_reference(m) for m in CONFIRM_METHODS} - {"mrl"})
    return ("heal", "mrl", *same)


def confirm_sweep(datasets: Sequence[str], *, quick: bool = False,
                  settings: dict | None = None) -> list[RunSpec]:
    """:func:`confirm_references` and :data:`CONFIRM_METHODS` on CLINC, TREC and 20 Newsgroups, on
    :data:`CONFIRM_SEEDS`."""
    base = {"max_train": 10_000, "max_test": 2_000} | (settings or {})
    seeds = CONFIRM_SEEDS[:2] if quick else CONFIRM_SEEDS
    main = [d for d in BEYOND_DATASETS if d in datasets][: 1 if quick else None]
    methods = (*confirm_references(), *CONFIRM_METHODS)
    return [RunSpec(ds, m, s, **base) for ds in main for m in methods for s in seeds]


def beyond_sweep(datasets: Sequence[str], *, quick: bool = False, seeds: Sequence[int] | None = None,
                 settings: dict | None = None) -> list[RunSpec]:
    """Issue 6's grid: HEAL, the new methods and the paper's MRL/V5/Flat on CLINC, TREC and 20
    Newsgroups; the dial's settings on the same three. 5 seeds; the paper sweep's caps.

    Dial runs come last, the first setting of each seed first, so that each seed's dial model is
    trained once and the other settings load it from the store's model cache.
    """
    from .methods import dial_name

    base = {"max_train": 10_000, "max_test": 2_000} | (settings or {})
    seeds = list(seeds or (PAPER_SEEDS[:2] if quick else PAPER_SEEDS))
    main = [d for d in BEYOND_DATASETS if d in datasets][: 1 if quick else None]
    dial_ds = [d for d in DIAL_DATASETS if d in datasets][: 1 if quick else None]
    values = (0.0, 0.25, 0.5, 1.0) if quick else DIAL_SETTINGS
    runs = [RunSpec(ds, m, s, **base) for ds in main for m in BEYOND_METHODS for s in seeds]
    for v in values:
        runs += [RunSpec(ds, dial_name(v), s, **base) for ds in dial_ds for s in seeds]
    return runs


def paper_sweep(datasets: Sequence[str], *, quick: bool = False, seeds: Sequence[int] | None = None,
                settings: dict | None = None) -> SweepSpec:
    """The paper's grid: V5, MRL, Flat everywhere; ablations on CLINC and TREC; 5 seeds; caps."""
    base = {"max_train": 10_000, "max_test": 2_000} | (settings or {})
    if quick:
        ds = [d for d in datasets if d == "clinc150"] or list(datasets)[:1]
        return SweepSpec(ds, MAIN_METHODS, seeds or PAPER_SEEDS[:2], ablations=ABLATIONS,
                         ablation_datasets=ds, settings=base)
    return SweepSpec(datasets, MAIN_METHODS, seeds or PAPER_SEEDS, ablations=ABLATIONS,
                     ablation_datasets=[d for d in ("clinc150", "trec") if d in datasets],
                     settings=base)
