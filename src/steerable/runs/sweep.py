"""Sweeps: a list of run specs, run by a pluggable executor into a results store.

Backbone vectors are encoded once, in the main process, before any run starts; runs then train on
the cache. Each run returns its record to the main process, which writes it into the store (one
atomic file per run), so a killed sweep resumes where it stopped and workers on other machines never
need the store's disk. An executor whose workers may not share this machine's disk
(``ships_inputs``) is also handed each data set and its texts' vectors, so that a worker needs
neither the data folder nor the backbone's vectors of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..backbone import Backbone, VectorCache, cache_dir
from ..data import HierarchicalDataset, load_dataset
from ..methods import preset
from ..metrics import default_protocols
from ..openset import Unseen
from ..train import TrainConfig
from .executors import LocalExecutor
from .record import RunRecord
from .run import run
from .spec import RunSpec
from .store import ResultsStore


@dataclass
class RunInputs:
    """What a run reads besides its spec, shipped to workers that may be on other machines: the data
    set and the backbone vectors of its texts (train, validation, test, in order)."""

    dataset: HierarchicalDataset
    vectors: np.ndarray

    @staticmethod
    def texts(dataset: HierarchicalDataset) -> list[str]:
        return [t for split in ("train", "validation", "test") for t in dataset.split(split).texts]


def execute_run(spec: dict, inputs: RunInputs | None = None, *, data_dir: str | None = None,
                threads: int | None = None, model_cache: str | None = None) -> dict:
    """Run one spec (in whatever process or machine the executor chose) and return its record as a
    dict (what crosses process boundaries); the caller stores it.

    Without ``inputs`` the data set is read from ``data_dir`` and the vectors from this machine's
    cache; with them, the shipped vectors are added to this machine's cache first. ``model_cache``:
    where models trained once for several runs (the dial) are kept; default: this machine's cache.
    """
    if threads:
        torch.set_num_threads(threads)
    s = RunSpec(**spec)
    backbone = Backbone(s.backbone)
    cache = VectorCache(backbone)
    if inputs is not None:
        dataset = inputs.dataset
        cache.add(RunInputs.texts(dataset), inputs.vectors)
    else:
        dataset = load_dataset(s.dataset, data_dir)
    schedule = preset(s.method, dataset.hierarchy.num_levels)
    cfg = TrainConfig.for_schedule(schedule, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr,
                                   seed=s.seed, precision=s.precision)
    t0 = time.perf_counter()
    result = run(dataset, schedule, head=s.head, backbone=backbone, train_config=cfg, cache=cache,
                 max_train=s.max_train, max_test=s.max_test, protocols=default_protocols(s.seed, s.paper_n),
                 progress=False, model_cache=Path(model_cache) if model_cache else cache_dir() / "models",
                 unseen=Unseen.parse(s.unseen) if s.unseen else None, split=s.split)
    record = RunRecord(
        run_id=s.run_id, dataset=s.dataset, method=s.method, seed=s.seed, backbone=s.backbone,
        head=s.head, spec=s.to_dict(), dataset_stats=dataset.stats(),
        level_names=list(dataset.hierarchy.level_names), metrics=result.metrics,
        retrieval=result.retrieval, probe=result.probe, history=result.history,
        seconds=result.config["seconds"] | {"total": time.perf_counter() - t0}, cost=result.config["cost"],
        open_set=result.open_set,
        environment={"torch_threads": torch.get_num_threads(), "torch": torch.__version__})
    return record.to_dict()


def prepare_vectors(runs: Sequence[RunSpec], data_dir: str | None, progress: bool = True) -> int:
    """Encode every split of every data set the sweep needs, once, into the shared cache.

    Returns how many texts went through a backbone (the rest came from the cache).
    """
    encoded = 0
    for backbone_name in dict.fromkeys(r.backbone for r in runs):
        cache = VectorCache(Backbone(backbone_name))
        for name in dict.fromkeys(r.dataset for r in runs if r.backbone == backbone_name):
            ds = load_dataset(name, data_dir)
            for split in ("train", "validation", "test"):
                cache.get_or_encode(ds.split(split).texts, progress=progress, desc=f"{name}/{split}")
        encoded += cache.encoded_count
    return encoded


def run_inputs(runs: Sequence[RunSpec], data_dir: str | None) -> dict[tuple[str, str], RunInputs]:
    """Each (backbone, data set) of the runs with its texts' vectors, from the cache (filled by
    :func:`prepare_vectors`)."""
    out = {}
    for backbone_name, name in dict.fromkeys((r.backbone, r.dataset) for r in runs):
        dataset = load_dataset(name, data_dir)
        vectors = VectorCache(Backbone(backbone_name)).get_or_encode(RunInputs.texts(dataset), progress=False)
        out[backbone_name, name] = RunInputs(dataset, vectors)
    return out


def run_sweep(runs: Sequence[RunSpec], store_root: str | Path, *, executor=None,
              data_dir: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print, require: tuple[str, ...] = ()) -> list[RunRecord]:
    """Run every spec that has no record yet (or whose record lacks a ``require`` field); returns the
    new records."""
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
    if getattr(executor, "ships_inputs", False):
        inputs = run_inputs(todo, data_dir)
        results = executor.map(execute_run, jobs, inputs=lambda job: inputs[job["backbone"], job["dataset"]])
    else:
        results = executor.map(execute_run, jobs, data_dir=data_dir, model_cache=str(store.root / "models"))
    for i, d in enumerate(results, start=1):
        record = RunRecord.from_dict(d)
        store.add(record)  # here, on the machine that holds the store
        new.append(record)
        s = "  ".join(f"S[{p}]={b['steerability_score']:+.3f}" for p, b in record.metrics.items())
        elapsed = time.perf_counter() - t0 - t_vectors
        eta = elapsed / i * (len(todo) - i)
        log(f"[{done + i}/{len(runs)}] {record.dataset} {record.method} seed {record.seed}"
            + (f" unseen {record.unseen}" if record.unseen else "") + ": "
            f"{s}  ({record.seconds['total']:.0f} s; eta {eta / 60:.1f} min)")
    store.log_invocation({"started": started, "seconds": time.perf_counter() - t0,
                          "vector_seconds": t_vectors, "texts_encoded": encoded, "runs": len(new)})
    return new
