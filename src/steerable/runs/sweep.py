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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..backbone import Backbone, VectorCache, cache_dir
from ..data import HierarchicalDataset, load_dataset
from .executors import LocalExecutor, RayExecutor
from .record import RunRecord
from .run import Where, run_seeds
from .spec import RunSpec
from .store import ResultsStore

# Seeds trained together, at most: the paper's five. Memory allows far more (docs/training_speed.md),
# but a group is one job, so larger groups leave fewer jobs to spread over workers.
DEFAULT_GROUP = 5


@dataclass
class RunInputs:
    """What a run reads besides its spec, shipped to workers that may be on other machines: the data
    set and the backbone vectors of its texts (train, validation, test, in order)."""

    dataset: HierarchicalDataset
    vectors: np.ndarray

    @staticmethod
    def texts(dataset: HierarchicalDataset) -> list[str]:
        return [t for split in ("train", "validation", "test") for t in dataset.split(split).texts]


def execute_runs(
    specs: list[dict],
    inputs: RunInputs | None = None,
    *,
    data_dir: str | None = None,
    threads: int | None = None,
    model_cache: str | None = None,
    group: bool = True,
) -> list[dict]:
    """Run specs that differ only by seed (in whatever process or machine the executor chose) and
    return their records as dicts (what crosses process boundaries), in order; the caller stores them.
    With ``group``, their heads train together as one stacked model, where they can
    (:func:`~steerable.runs.run.run_seeds`): every seed gets the numbers of its solo run.

    Without ``inputs`` the data set is read from ``data_dir`` and the vectors from this machine's
    cache; with them, the shipped vectors are added to this machine's cache first. ``model_cache``:
    where models trained once for several runs (the dial) are kept; default: this machine's cache.
    """
    if threads:
        torch.set_num_threads(threads)
    runs = [RunSpec.from_dict(spec) for spec in specs]
    s = runs[0]
    backbone = Backbone(s.backbone)
    cache = VectorCache(backbone)
    if inputs is not None:
        dataset = inputs.dataset
        cache.add(RunInputs.texts(dataset), inputs.vectors)
    else:
        dataset = load_dataset(s.dataset, data_dir)
    t0 = time.perf_counter()
    where = Where(backbone, cache, Path(model_cache) if model_cache else cache_dir() / "models", progress=False)
    results = run_seeds(runs, dataset=dataset, where=where, group=group)
    share = (time.perf_counter() - t0) / len(runs)  # evaluation runs one by one: each run's share of the whole
    records = []
    for spec, result in zip(runs, results):
        environment = {"torch_threads": torch.get_num_threads(), "torch": torch.__version__}
        if "trained_together" in result.config:
            environment["trained_together"] = result.config["trained_together"]
        record = {
            "run_id": spec.run_id,
            "dataset": spec.dataset,
            "method": spec.method,
            "seed": spec.seed,
            "backbone": spec.backbone,
            "head": spec.head,
            "spec": spec.to_dict(),
            "dataset_stats": dataset.stats(),
            "level_names": list(dataset.hierarchy.level_names),
            "metrics": result.metrics,
            "retrieval": result.retrieval,
            "probe": result.probe,
            "history": result.history,
            "seconds": result.config["seconds"] | {"total": share},
            "cost": result.config["cost"],
            "open_set": result.open_set,
            "geometry": result.geometry,
            "environment": environment,
        }
        records.append(RunRecord.from_dict(record, source=spec.run_id).to_dict())  # checked before it travels
    return records


def execute_run(
    spec: dict,
    inputs: RunInputs | None = None,
    *,
    data_dir: str | None = None,
    threads: int | None = None,
    model_cache: str | None = None,
) -> dict:
    """One spec's record (:func:`execute_runs` of that spec alone)."""
    return execute_runs([spec], inputs, data_dir=data_dir, threads=threads, model_cache=model_cache)[0]


def seed_groups(runs: Sequence[RunSpec], size: int = 0) -> list[list[RunSpec]]:
    """The runs in groups that differ only by seed (at most ``size`` runs each; 0: no limit), in the
    order each group's first run comes."""
    groups: dict[RunSpec, list[list[RunSpec]]] = {}
    first: dict[int, int] = {}  # id of a group -> the position of its first run in ``runs``
    for i, r in enumerate(runs):
        chunks = groups.setdefault(replace(r, seed=0), [[]])
        if size and len(chunks[-1]) >= size:
            chunks.append([])
        if not chunks[-1]:
            first[id(chunks[-1])] = i
        chunks[-1].append(r)
    # a grid listed seed by seed runs its first seeds of every setting before the next ones
    return sorted((chunk for chunks in groups.values() for chunk in chunks), key=lambda chunk: first[id(chunk)])


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


def run_sweep(
    runs: Sequence[RunSpec],
    store_root: str | Path,
    *,
    executor: LocalExecutor | RayExecutor | None = None,
    data_dir: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    require: tuple[str, ...] = (),
    group: int = DEFAULT_GROUP,
) -> list[RunRecord]:
    """Run every spec that has no record yet (or whose record lacks a ``require`` field); returns the
    new records.

    ``group``: runs that differ only by seed execute together, up to this many at a time, their heads
    trained as one stacked model (:func:`steerable.training.together.train_group`: the same numbers as training
    each alone, in less time); 0 or 1 runs each one by itself."""
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
    jobs = [[r.to_dict() for r in chunk] for chunk in (seed_groups(todo, group) if group else [[r] for r in todo])]
    if getattr(executor, "ships_inputs", False):
        inputs = run_inputs(todo, data_dir)
        results = executor.map(execute_runs, jobs, inputs=lambda job: inputs[job[0]["backbone"], job[0]["dataset"]])
    else:
        results = executor.map(execute_runs, jobs, data_dir=data_dir, model_cache=str(store.root / "models"))
    records = (RunRecord.from_dict(d) for ds in results for d in ds)
    for i, record in enumerate(records, start=1):
        store.add(record)  # here, on the machine that holds the store
        new.append(record)
        s = "  ".join(f"S[{p}]={b.steerability_score:+.3f}" for p, b in record.metrics.items())
        elapsed = time.perf_counter() - t0 - t_vectors
        eta = elapsed / i * (len(todo) - i)
        log(
            f"[{done + i}/{len(runs)}] {record.dataset} {record.method} seed {record.seed}"
            + (f" unseen {record.unseen}" if record.unseen else "")
            + ": "
            f"{s}  ({record.seconds['total']:.0f} s; eta {eta / 60:.1f} min)"
        )
    store.log_invocation(
        {
            "started": started,
            "seconds": time.perf_counter() - t0,
            "vector_seconds": t_vectors,
            "texts_encoded": encoded,
            "runs": len(new),
        }
    )
    return new
