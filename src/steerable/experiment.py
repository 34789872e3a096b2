"""One run, end to end: cached backbone vectors -> trained head -> metrics -> a run folder.

A run folder holds ``config.json`` (everything that determined the run), ``model.safetensors`` and
``metrics.json`` (per protocol: accuracy
per level per prefix dim and each steerability metric).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch.nn.functional as F
import torch

from . import __version__
from .backbone import Backbone, VectorCache
from .data import HierarchicalDataset, LabelledTexts
from .evaluate import Protocol, accuracy_table, metrics_block, paper_protocol, standard_protocol
from .heads import DEFAULT_HEAD, HEADS
from .io import atomic_write_json, read_json
from .model import SteerableModel
from .efficiency import encoding_flops_per_text, head_parameters, training_flops_per_example
from .methods import preset
from .schedule import Schedule
from .train import TrainConfig, train

METRICS = "metrics.json"


def default_protocols(seed: int, paper_n: int = 500) -> list[Protocol]:
    return [paper_protocol(paper_n, seed=seed), standard_protocol()]


@dataclass
class SplitVectors:
    """Backbone vectors of each split, after the caps."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    y_train: np.ndarray
    y_validation: np.ndarray
    y_test: np.ndarray


def split_vectors(dataset: HierarchicalDataset, backbone: Backbone, *, cache: VectorCache | None = None,
                  max_train: int | None = None, max_test: int | None = None, seed: int = 42,
                  progress: bool = True) -> SplitVectors:
    """Encode (or fetch from the cache) every split; caps are seeded subsamples."""
    cache = cache if cache is not None else VectorCache(backbone)
    parts: dict[str, LabelledTexts] = {
        "train": dataset.train.cap(max_train, seed),
        "validation": dataset.validation,
        "test": dataset.test.cap(max_test, seed),
    }
    vecs = {name: cache.get_or_encode(p.texts, progress=progress, desc=f"{dataset.name}/{name}")
            for name, p in parts.items()}
    return SplitVectors(vecs["train"], vecs["validation"], vecs["test"], parts["train"].labels,
                        parts["validation"].labels, parts["test"].labels)


def evaluate_embeddings(test: list[np.ndarray], y_test: np.ndarray, train: list[np.ndarray],
                        y_train: np.ndarray, dims: Sequence[int], level_names: Sequence[str],
                        protocols: Sequence[Protocol]) -> dict:
    """``metrics.json`` content: one block per protocol."""
    return {p.name: metrics_block(accuracy_table(test, y_test, p, train, y_train), dims, level_names, p)
            for p in protocols}


def prefix_embeddings(model: SteerableModel, vectors: np.ndarray) -> tuple[list[int], list[np.ndarray]]:
    """(dims, one embedding array per prefix) of a model."""
    return model.dims, model.embed_vectors(vectors)


def evaluate_model(model: SteerableModel, vecs: SplitVectors, level_names: Sequence[str],
                   protocols: Sequence[Protocol], test_embeddings: list[np.ndarray] | None = None,
                   train_embeddings: list[np.ndarray] | None = None) -> dict:
    """Metrics of a model (trained, or the identity head of the raw backbone)."""
    ref = train_embeddings if train_embeddings is not None else model.embed_vectors(vecs.train)
    test = test_embeddings if test_embeddings is not None else model.embed_vectors(vecs.test)
    return evaluate_embeddings(test, vecs.y_test, ref, vecs.y_train, model.dims, level_names, protocols)


ADAPTIVE_MARGINS = (0.005, 0.01, 0.02, 0.05)
ADAPTIVE_SHORTLIST = 100


def evaluate_retrieval(model: SteerableModel, vecs: SplitVectors, level_names: Sequence[str],
                       seed: int, shortlists: Sequence[int] = (10, 20, 50, 100, 200),
                       test_embeddings: list[np.ndarray] | None = None) -> dict:
    """Retrieval on a seeded 50/50 query/document split of the test set, at every prefix dim.

    Recall@k per level, MRR per level and nDCG@10 (graded hierarchy gain) per dim; and the
    multi-stage funnel (shortest prefix shortlists K, full vector reranks): overlap with the exact
    full-vector top 10 and label Recall@10, per K; and adaptive search (a query whose short-prefix
    top-1 beats its top-2 by at least the margin is answered by the prefix alone, the others are
    reranked from a shortlist of 100): overlap, Recall@10 and the fraction of queries extended, per
    margin. Keys are ``metric[/level]/dim``, ``funnel/metric[/level]/K`` or
    ``adaptive@<margin>/metric[/level]/K``.
    """
    from .retrieval import (adaptive, multistage, overlap_at_k, rank, recall_at_k, retrieval_metrics,
                            split_queries)

    dims = model.dims
    embs = test_embeddings if test_embeddings is not None else model.embed_vectors(vecs.test)
    q, d = split_queries(len(vecs.test), seed=seed)
    yq, yd = vecs.y_test[q], vecs.y_test[d]
    out = retrieval_metrics({dim: e[q] for dim, e in zip(dims, embs)},
                            {dim: e[d] for dim, e in zip(dims, embs)}, yq, yd, level_names)
    short, full = embs[0], embs[-1]
    exact = rank(full[q], full[d], 10)
    for K in shortlists:
        if K > len(d):
            continue
        funnel = multistage(short[q], short[d], full[q], full[d], K, 10)
        out[f"funnel/overlap@10/{K}"] = overlap_at_k(funnel, exact)
        for lvl, v in zip(level_names, recall_at_k(funnel, yq, yd, (10,))[10]):
            out[f"funnel/recall@10/{lvl}/{K}"] = float(v)
    K = min(ADAPTIVE_SHORTLIST, len(d))
    if K >= 10:
        for margin in ADAPTIVE_MARGINS:
            ranked, extended = adaptive(short[q], short[d], full[q], full[d], margin, 10, K)
            out[f"adaptive@{margin:g}/overlap@10/{K}"] = overlap_at_k(ranked, exact)
            out[f"adaptive@{margin:g}/extended/{K}"] = extended
            for lvl, v in zip(level_names, recall_at_k(ranked, yq, yd, (10,))[10]):
                out[f"adaptive@{margin:g}/recall@10/{lvl}/{K}"] = float(v)
    return out


@dataclass
class RunResult:
    config: dict
    metrics: dict
    model: SteerableModel
    history: dict = field(default_factory=dict)
    retrieval: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)


def probe_prefix(model: SteerableModel, vecs: SplitVectors, level_names: Sequence[str],
                 test_embeddings: list[np.ndarray] | None = None, seed: int = 0,
                 train_embeddings: list[np.ndarray] | None = None) -> dict:
    """Leakage: per level, the test accuracy of a linear probe trained on the shortest prefix.

    What a party holding only the 64-d code could read off it with a linear model (a trained probe
    on the training split, scored on the test split); and the prefix's numerical and effective rank
    on the test split.
    """
    from .evaluate import coarse_only_accuracy, effective_rank, linear_probe, numerical_rank

    train_embs = train_embeddings if train_embeddings is not None else model.embed_vectors(vecs.train)
    test = test_embeddings[0] if test_embeddings is not None else model.embed_vectors(vecs.test)[0]
    return {"dim": model.dims[0], "rank": numerical_rank(test), "effective_rank": effective_rank(test), "accuracy": {
        lvl: linear_probe(train_embs[0], vecs.y_train[:, k], test, vecs.y_test[:, k], seed=seed)
        for k, lvl in enumerate(level_names)},
        "coarse_only": {lvl: coarse_only_accuracy(vecs.y_train, vecs.y_test, k)
                        for k, lvl in enumerate(level_names)}}


def run(dataset: HierarchicalDataset, method: str | Schedule = "v5", *, head: str = DEFAULT_HEAD,
        head_options: dict | None = None, backbone: Backbone | None = None,
        train_config: TrainConfig | None = None, max_train: int | None = None,
        max_test: int | None = None, protocols: Sequence[Protocol] | None = None,
        cache: VectorCache | None = None, out: str | Path | None = None,
        dataset_source: dict | None = None, retrieval: bool = True,
        progress: bool = True, model_cache: str | Path | None = None) -> RunResult:
    """Train (a method with no terms, such as Flat, trains nothing) and evaluate; write a run folder
    when ``out`` is given.

    ``model_cache``: a folder where models whose encoding can change after training (the dial) are
    kept by what determined their training, so each dial setting of a sweep trains once.
    """
    backbone = backbone or Backbone()
    h = dataset.hierarchy
    head_options = dict(head_options or {})
    schedule = method if isinstance(method, Schedule) else preset(
        method, h.num_levels, head_options.get("num_blocks", 4))
    head = schedule.head or head  # a method that needs a head kind (Flat: identity) brings it
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose from {sorted(HEADS)}")
    cfg = train_config or TrainConfig.for_schedule(schedule)
    protocols = list(protocols) if protocols is not None else default_protocols(cfg.seed)
    t0 = time.perf_counter()
    vecs = split_vectors(dataset, backbone, cache=cache, max_train=max_train, max_test=max_test,
                         seed=cfg.seed, progress=progress)
    t_encode = time.perf_counter() - t0

    t1 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    model = SteerableModel.build(head, vecs.train.shape[1], h, backbone.name,
                                 schedule.head_options | head_options)
    key = _training_key(schedule, cfg, head, head_options, dataset.name, backbone, vecs)
    history = _load_trained(model, model_cache, key)
    if history is None:
        history = train(model, schedule, vecs.train, vecs.y_train, vecs.validation,
                        vecs.y_validation, cfg, progress=progress)
        _save_trained(model, model_cache, key, history)
    t_train = time.perf_counter() - t1
    cost = {}
    if schedule.trains:
        cost = {"head_parameters": head_parameters(model),
                "train_flops_per_example": training_flops_per_example(
                    model, schedule, vecs.train, vecs.y_train, cfg.batch_size),
                "encode_flops_per_text": encoding_flops_per_text(model)}
    # each split is embedded once, shared by classification, the probe and retrieval
    _, test_embs = prefix_embeddings(model, vecs.test)
    _, train_embs = prefix_embeddings(model, vecs.train)
    metrics = evaluate_model(model, vecs, h.level_names, protocols, test_embs, train_embs)
    probe = probe_prefix(model, vecs, h.level_names, test_embs, seed=cfg.seed, train_embeddings=train_embs)
    retrieval_metrics = (evaluate_retrieval(model, vecs, h.level_names, cfg.seed, test_embeddings=test_embs)
                         if retrieval else {})

    config = {
        "steerable_version": __version__,
        "method": schedule.name,
        "dataset": {"name": dataset.name, **(dataset_source or {}), "max_train": max_train,
                    "max_test": max_test, "sizes": {"train": len(vecs.y_train),
                                                    "validation": len(vecs.y_validation),
                                                    "test": len(vecs.y_test)},
                    "notes": dataset.notes},
        "backbone": {"name": backbone.name, "fingerprint": backbone.fingerprint()},
        "schedule": schedule.to_dict(),
        "train": cfg.to_dict(),
        "protocols": [p.describe() for p in protocols],
        "history": history,
        "seconds": {"encode": t_encode, "train": t_train},
        "cost": cost,
    }
    result = RunResult(config, metrics, model, history, retrieval_metrics, probe)
    if out is not None:
        save_run(result, out, h)
    return result


def _training_key(schedule: Schedule, cfg: TrainConfig, head: str, head_options: dict, dataset: str,
                  backbone: Backbone, vecs: SplitVectors) -> str | None:
    """What determined a trained model whose encoding mix is set after training, else None."""
    post = schedule.head_options.get("posterior") or {}
    if "train_mix" not in post:
        return None
    import hashlib
    import json

    sch = schedule.to_dict()
    sch.pop("name")
    sch["head_options"] = dict(sch["head_options"], posterior={k: v for k, v in post.items() if k != "mix"})
    blob = json.dumps({"schedule": sch, "train": cfg.to_dict(), "head": head, "options": head_options,
                       "dataset": dataset, "backbone": backbone.fingerprint(),
                       "data": hashlib.sha1(vecs.train.tobytes() + vecs.y_train.tobytes()).hexdigest()},
                      sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _load_trained(model: SteerableModel, cache: str | Path | None, key: str | None) -> dict | None:
    """The cached model's history (its weights and calibration loaded into ``model``), else None."""
    if cache is None or key is None or not (Path(cache) / key / "config.json").exists():
        return None
    cached = SteerableModel.load(Path(cache) / key)
    model.load_state_dict(cached.state_dict())
    model.head.posterior["scales"] = cached.head.posterior["scales"]
    model.eval()
    return read_json(Path(cache) / key / "config.json")["history"]


def _save_trained(model: SteerableModel, cache: str | Path | None, key: str | None, history: dict) -> None:
    if cache is not None and key is not None:
        model.save(Path(cache) / key, extra_config={"history": history})  # config last: marks done


def save_run(result: RunResult, out: str | Path, hierarchy) -> None:
    """Write the run folder; ``metrics.json`` last, so its presence marks a finished run."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS).unlink(missing_ok=True)
    result.model.save(out, extra_config={"run": result.config})
    if result.retrieval:
        atomic_write_json(out / "retrieval.json", result.retrieval)
    if result.probe:
        atomic_write_json(out / "probe.json", result.probe)
    atomic_write_json(out / METRICS, result.metrics)


def load_run(directory: str | Path) -> tuple[dict, SteerableModel | None, dict | None]:
    """(config, model, metrics or None if unfinished) of a run folder."""
    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{directory}: not a run folder (no config.json)")
    config = read_json(directory / "config.json")
    model = SteerableModel.load(directory)
    metrics = read_json(directory / METRICS) if (directory / METRICS).exists() else None
    return config, model, metrics
