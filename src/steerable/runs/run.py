"""One run, end to end: cached backbone vectors -> trained head -> metrics -> a run folder.

A run folder holds ``config.json`` (everything that determined the run), ``model.safetensors`` and
``metrics.json`` (per protocol: accuracy per level per prefix dim and each steerability metric);
``retrieval.json`` and ``probe.json`` beside them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import __version__
from ..atomic import atomic_folder, atomic_write_json, read_json
from ..backbone import Backbone, VectorCache, split_vectors
from ..data import HierarchicalDataset, SplitVectors, load_dataset, load_files
from ..metrics import Protocol, evaluate_embeddings, geometry, paper_protocol, probe_prefix, standard_protocol
from ..model import SteerableModel
from ..openset import HeldOut, Unseen, hold_out, open_set_metrics, split_held_out
from ..schedule import Schedule
from ..search.metrics import evaluate_retrieval
from ..training import TrainConfig, train
from ..training.cost import encoding_flops_per_text, head_parameters, training_flops_per_example
from ..training.together import train_group, why_not_together
from .spec import RunSpec

METRICS = "metrics.json"


@dataclass
class RunResult:
    config: dict
    metrics: dict
    model: SteerableModel
    history: dict = field(default_factory=dict)
    retrieval: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    open_set: dict = field(default_factory=dict)  # steerable.openset.open_set_metrics, with unseen classes
    held_out: HeldOut | None = None  # what the run held out of training, with unseen classes
    geometry: dict = field(default_factory=dict)  # steerable.metrics.geometry on the (seen) test texts


@dataclass
class Where:
    """Where and how runs execute, which does not change what they measure: the backbone's encoder (its
    name is the spec's), the vector cache, the model cache (models whose encoding is set after training,
    such as the dial's, kept by what determined their training, so each setting trains once), the device
    heads train on, and progress bars."""

    backbone: Backbone | None = None
    cache: VectorCache | None = None
    model_cache: str | Path | None = None
    device: str | None = None
    progress: bool = True


def run(
    spec: RunSpec,
    *,
    dataset: HierarchicalDataset | None = None,
    data_dir: str | None = None,
    where: Where | None = None,
    out: str | Path | None = None,
    dataset_source: dict | None = None,
    checkpoint: str | Path | None = None,
) -> RunResult:
    """Train the run ``spec`` names (a method with no terms, such as Flat, trains nothing) and measure it;
    write a run folder when ``out`` is given.

    ``dataset``: the data set ``spec.dataset`` names, given by value (a user's own files, combined data
    sets); else it is loaded by name from ``data_dir``. ``dataset_source``: where it came from, for the
    run folder's config. With ``spec.unseen`` the classes it draws are held out of training and
    validation; the closed-set metrics, probe and retrieval are then measured on the test texts of the
    seen classes and ``metrics["open_set"]`` on the held-out ones (:mod:`steerable.openset`); the config
    names them. ``spec.split == "validation"``: every measurement is made on the validation split
    instead of the test split (which is then never read): the runs a selection step compares candidates
    with; with ``unseen`` too, the held-out classes' validation texts are the open-set queries (episodic
    held-out classes). ``checkpoint``: a file the training writes after each epoch and resumes from when
    the same run is started again (:func:`~steerable.training.train`).
    """
    (result,) = run_seeds(
        [spec], dataset=dataset, data_dir=data_dir, where=where, dataset_source=dataset_source, checkpoint=checkpoint
    )
    if out is not None:
        save_run(result, out)
    return result


def run_seeds(
    specs: Sequence[RunSpec],
    *,
    dataset: HierarchicalDataset | None = None,
    data_dir: str | None = None,
    where: Where | None = None,
    dataset_source: dict | None = None,
    group: bool = True,
    checkpoint: str | Path | None = None,
) -> list[RunResult]:
    """:func:`run` for each of ``specs``, which must differ only by seed; the results in their order.

    With ``group`` the seeds' heads train together as one stacked model
    (:func:`steerable.training.together.train_group`), which gives every seed the numbers of its solo run;
    trainings that cannot train together (another head kind, bf16, training sets of other sizes) train
    one by one. The other arguments are :func:`run`'s (``checkpoint``: for a single spec only).
    """
    if not specs:
        return []
    first = specs[0]
    if any(replace(s, seed=first.seed) != first for s in specs):
        raise ValueError("runs executed together must differ only by seed")
    if checkpoint is not None and len(specs) > 1:
        raise ValueError("a checkpoint is for a single run")
    where = where or Where()
    backbone = where.backbone or Backbone(first.backbone)
    if backbone.name != first.backbone:
        raise ValueError(f"the spec's backbone is {first.backbone!r}, the encoder given is {backbone.name!r}")
    cache = where.cache if where.cache is not None else VectorCache(backbone)  # (an empty cache is falsy)
    where = replace(where, backbone=backbone, cache=cache)
    if dataset is None:
        dataset = load_dataset(first.dataset, data_dir)
    elif dataset.name != first.dataset:
        raise ValueError(f"the spec names data set {first.dataset!r}, the data set given is {dataset.name!r}")
    schedule = first.build_schedule(dataset.hierarchy.num_levels)
    runs = [_Prepared.make(spec, dataset, schedule, where) for spec in specs]
    todo = [r for r in runs if r.history is None]  # not already in the model cache
    if (
        group
        and len(todo) > 1
        and schedule.trains
        and why_not_together([r.model for r in todo], [r.cfg for r in todo], [len(r.vecs.train) for r in todo]) is None
    ):
        t0 = time.perf_counter()
        histories = train_group(
            [r.model for r in todo],
            schedule,
            [(r.vecs.train, r.vecs.y_train, r.vecs.validation, r.vecs.y_validation) for r in todo],
            [r.cfg for r in todo],
            progress=where.progress,
            device=where.device,
        )
        share = (time.perf_counter() - t0) / len(todo)  # each run's share of the group's time
        for r, history in zip(todo, histories):
            r.trained(history, share, together=len(todo))
    else:
        for r in todo:
            r.train(checkpoint)
    return [r.evaluate(dataset_source) for r in runs]


def protocols_of(spec: RunSpec) -> list[Protocol]:
    """The protocols ``spec`` is measured under, in its order."""
    return [
        paper_protocol(spec.paper_n, seed=spec.seed, k=spec.k) if name == "paper" else standard_protocol(k=spec.k)
        for name in spec.protocols
    ]


@dataclass
class _Prepared:
    """One run between its stages: data and model ready (:meth:`make`), trained (:meth:`train`, or
    :meth:`trained` by a grouped training), then measured (:meth:`evaluate`)."""

    spec: RunSpec
    dataset: HierarchicalDataset  # with any unseen classes held out
    held: HeldOut | None
    schedule: Schedule
    cfg: TrainConfig
    where: Where
    vecs: SplitVectors
    model: SteerableModel
    key: str | None
    t_encode: float
    t_train: float  # so far: building the model (and finding it in the model cache)
    history: dict | None  # None until trained
    together: int = 1  # how many runs' heads trained as one stacked model with this one's

    @classmethod
    def make(cls, spec: RunSpec, dataset: HierarchicalDataset, schedule: Schedule, where: Where) -> "_Prepared":
        cfg = TrainConfig.for_schedule(
            schedule,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            lr=spec.lr,
            seed=spec.seed,
            precision=spec.precision,
        )
        head_options = head_shape(spec)
        backbone, cache = where.backbone, where.cache
        assert backbone is not None and cache is not None  # run_seeds fills both in
        held, whole = None, dataset
        if spec.unseen is not None:
            unseen = replace(Unseen.parse(spec.unseen), min_queries=spec.min_queries)
            dataset, held = hold_out(dataset, unseen, cfg.seed, max_test=spec.max_test, measured_on=spec.split)
        t0 = time.perf_counter()
        vecs = split_vectors(
            dataset,
            backbone,
            cache=cache,
            max_train=spec.max_train,
            max_test=spec.max_test,
            seed=cfg.seed,
            progress=where.progress,
        )
        if spec.split == "validation":  # measured on the validation split: the test split plays no part
            # with held-out classes, every validation text is measured (the held-out ones are the
            # queries: episodic held-out classes); training still sees the seen classes' texts only
            measured = whole.validation
            x = cache.get_or_encode(measured.texts, progress=where.progress, desc=f"{dataset.name}/validation")
            vecs = replace(vecs, test=x, y_test=measured.labels)
        t_encode = time.perf_counter() - t0
        t1 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        model = SteerableModel.for_schedule(
            schedule, spec.head, vecs.train.shape[1], dataset.hierarchy, backbone.name, head_options
        )
        key = _training_key(schedule, cfg, spec.head, head_options, dataset.name, backbone, vecs, where.device)
        history = _load_trained(model, where.model_cache, key)
        return cls(
            spec, dataset, held, schedule, cfg, where, vecs, model, key, t_encode, time.perf_counter() - t1, history
        )

    def train(self, checkpoint: str | Path | None = None) -> None:
        """Train alone (unless the model cache already held the trained model)."""
        if self.history is not None:
            return
        t0 = time.perf_counter()
        v = self.vecs
        history = train(
            self.model,
            self.schedule,
            v.train,
            v.y_train,
            v.validation,
            v.y_validation,
            self.cfg,
            progress=self.where.progress,
            checkpoint=checkpoint,
            device=self.where.device,
        )
        self.trained(history, time.perf_counter() - t0)

    def trained(self, history: dict, seconds: float, together: int = 1) -> None:
        self.history, self.t_train, self.together = history, self.t_train + seconds, together
        _save_trained(self.model, self.where.model_cache, self.key, history)

    def evaluate(self, dataset_source: dict | None) -> RunResult:
        model, vecs, cfg, schedule, h = self.model, self.vecs, self.cfg, self.schedule, self.dataset.hierarchy
        spec = self.spec
        protocols = protocols_of(spec)
        cost = {}
        if schedule.trains:
            cost = {
                "head_parameters": head_parameters(model),
                "train_flops_per_example": training_flops_per_example(
                    model, schedule, vecs.train, vecs.y_train, cfg.batch_size
                ),
                "encode_flops_per_text": encoding_flops_per_text(model),
            }
        # each split is embedded once, shared by classification, the probe and retrieval
        all_test, train_embs = model.embed_vectors(vecs.test), model.embed_vectors(vecs.train)
        seen, unseen_mask = split_held_out(vecs, self.held)
        test_embs, y_test = [e[~unseen_mask] for e in all_test], seen.y_test  # the seen classes'
        metrics = evaluate_embeddings(test_embs, y_test, train_embs, vecs.y_train, model.dims, h.level_names, protocols)
        open_set = (
            open_set_metrics(all_test, model.dims, vecs.y_test, unseen_mask, h.level_names, self.held, cfg.seed)
            if self.held is not None
            else {}
        )
        probe = probe_prefix(train_embs[0], vecs.y_train, test_embs[0], y_test, h.level_names, seed=cfg.seed)
        shape = geometry(test_embs, model.dims, y_test, seen.test, seed=cfg.seed)
        retrieval_metrics = (
            evaluate_retrieval(test_embs, model.dims, y_test, h.level_names, cfg.seed) if spec.retrieval else {}
        )
        device, unseen, backbone = self.where.device, spec.unseen, self.where.backbone
        assert backbone is not None and self.history is not None  # filled in by run_seeds and training
        config: dict[str, Any] = {
            "steerable_version": __version__,
            "method": schedule.name,
            "dataset": {
                "name": self.dataset.name,
                **(dataset_source or {}),
                "max_train": spec.max_train,
                "max_test": spec.max_test,
                "sizes": {"train": len(vecs.y_train), "validation": len(vecs.y_validation), "test": len(vecs.y_test)},
                "notes": self.dataset.notes,
                "unseen": unseen,
                **({"held_out": self.held.to_dict()} if self.held else {}),
                "measured_on": spec.split,
            },
            "backbone": {"name": backbone.name, "fingerprint": backbone.fingerprint()},
            "schedule": schedule.to_dict(),
            "train": cfg.to_dict() | ({"device": str(device)} if device not in (None, "cpu") else {}),
            "protocols": [p.describe() for p in protocols],
            "history": self.history,
            "seconds": {"encode": self.t_encode, "train": self.t_train},
            "cost": cost,
        }
        if self.together > 1:  # "train" seconds are then this run's share of the group's
            config["trained_together"] = self.together
        return RunResult(config, metrics, model, self.history, retrieval_metrics, probe, open_set, self.held, shape)


def head_shape(spec: RunSpec) -> dict:
    """The head options of a spec's shape: none at the default four blocks of 64."""
    return {} if (spec.blocks, spec.block_dim) == (4, 64) else {"num_blocks": spec.blocks, "block_dim": spec.block_dim}


def _training_key(
    schedule: Schedule,
    cfg: TrainConfig,
    head: str,
    head_options: dict,
    dataset: str,
    backbone: Backbone,
    vecs: SplitVectors,
    device: str | None = None,
) -> str | None:
    """What determined a trained model whose encoding mix is set after training, else None."""
    post = schedule.head_options.get("posterior") or {}
    prefix = schedule.head_options.get("prefix") or {}
    if "train_mix" not in post and prefix.get("mode") != "mix":
        return None
    sch = schedule.to_dict()
    sch.pop("name")
    sch["head_options"] = dict(sch["head_options"])
    for option, value in (("posterior", post), ("prefix", prefix)):
        if value:  # the mix used to encode is set after training: the same training for every value
            sch["head_options"][option] = {k: v for k, v in value.items() if k != "mix"}
    blob = json.dumps(
        {
            "schedule": sch,
            "train": cfg.to_dict(),
            "head": head,
            "options": head_options,
            "dataset": dataset,
            "backbone": backbone.fingerprint(),
            "data": hashlib.sha1(vecs.train.tobytes() + vecs.y_train.tobytes()).hexdigest(),
        }
        | ({"device": str(device)} if device not in (None, "cpu") else {}),  # other kernels, other bits
        sort_keys=True,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _load_trained(model: SteerableModel, cache: str | Path | None, key: str | None) -> dict | None:
    """The cached model's history (its weights and calibration loaded into ``model``), else None."""
    if cache is None or key is None or not (Path(cache) / key / "config.json").exists():
        return None
    cached = SteerableModel.load(Path(cache) / key)
    model.load_state_dict(cached.state_dict())
    if model.head.posterior and cached.head.posterior:
        model.head.posterior["scales"] = cached.head.posterior["scales"]
    model.eval()
    return read_json(Path(cache) / key / "config.json")["history"]


def _save_trained(model: SteerableModel, cache: str | Path | None, key: str | None, history: dict) -> None:
    if cache is not None and key is not None:
        model.save(Path(cache) / key, extra_config={"history": history})  # config last: marks done


def save_run(result: RunResult, out: str | Path) -> None:
    """Write the run folder whole: filled beside ``out`` and renamed into place, so ``out`` holds this
    run's files and nothing older (an existing folder is replaced). ``metrics.json`` holds a block per
    protocol, and the ``open_set`` section of a run with unseen classes."""
    with atomic_folder(out) as tmp:
        result.model.save(tmp, extra_config={"run": result.config})
        if result.retrieval:
            atomic_write_json(tmp / "retrieval.json", result.retrieval)
        if result.probe:
            atomic_write_json(tmp / "probe.json", result.probe)
        if result.geometry:
            atomic_write_json(tmp / "geometry.json", result.geometry)
        atomic_write_json(tmp / METRICS, result.metrics | ({"open_set": result.open_set} if result.open_set else {}))


def load_run(directory: str | Path) -> tuple[dict, SteerableModel, dict | None]:
    """(config, model, metrics or None if unfinished) of a run folder."""
    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{directory}: not a run folder (no config.json)")
    config = read_json(directory / "config.json")
    model = SteerableModel.load(directory)
    metrics = read_json(directory / METRICS) if (directory / METRICS).exists() else None
    return config, model, metrics


def run_dataset(config: dict, data_dir: str | None = None) -> HierarchicalDataset:
    """The data set a run folder's ``config.json`` was trained on: its own files, or a named data set."""
    ds = config["run"]["dataset"]
    if "files" in ds:
        f = ds["files"]
        return load_files(
            f["train"], f["test"], f["validation"], text_col=ds["text_col"], level_cols=ds["levels"], name=ds["name"]
        )
    return load_dataset(ds["name"], data_dir, ds["levels"])
