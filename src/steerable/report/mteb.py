"""Results in mteb's own format: one ``TaskResult`` per model and task, which mteb's loaders read back.

A model is one method's embeddings cut to one prefix dim and scored under one k-NN protocol
(``steerable/v5-standard-64d``); a task is one level of one data set's hierarchy
(``SteerableClinc150L0KNN``), an mteb classification task scored by k-NN accuracy. mteb is optional
(the ``mteb`` extra) and imported only when results are written.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..atomic import atomic_write_json
from .results import Results

REVISION = "no_revision_available"  # mteb's folder name for a model without a hub revision
DATASET_REVISION = "local"  # the data sets are local folders, not hub revisions
MISSING = "mteb results not written: mteb is not installed (pip install 'steerable[mteb]')"


def task_name(dataset: str, level: str) -> str:
    """The mteb task of one level of a data set: ``clinc150``, ``l0`` -> ``SteerableClinc150L0KNN``."""

    def alnum(s: str) -> str:
        return re.sub(r"[^0-9A-Za-z]", "", s)

    return f"Steerable{alnum(dataset.title())}{alnum(level.upper())}KNN"


def model_name(method: str, protocol: str, prefix_dim: int) -> str:
    """The mteb model of a method's ``prefix_dim``-d prefixes under a protocol: ``steerable/v5-standard-64d``."""
    return f"steerable/{method}-{protocol}-{prefix_dim}d"


def mteb_task(dataset: str, level: str) -> Any:
    """The mteb classification task (an instance) of one level of ``dataset``. It is not in mteb's
    registry, so ``TaskResult.task`` cannot find it: pass it where mteb takes a task, e.g.
    ``TaskResult.validate_and_filter_scores(task=mteb_task("clinc150", "l0"))``. Needs mteb."""
    from mteb.abstasks import AbsTaskClassification
    from mteb.abstasks.task_metadata import TaskMetadata

    name = task_name(dataset, level)
    metadata = TaskMetadata(
        name=name,
        type="Classification",
        main_score="accuracy",
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        dataset={"path": dataset, "revision": DATASET_REVISION},
        description=(
            f"Level {level} of the {dataset} hierarchy: cosine k-NN accuracy of the {level} labels "
            "on the test split, with each embedding cut to its first embed_dim coordinates (the "
            "model's prefix dim) and the k-NN protocol the model's name gives. "
            "scores_per_experiment holds one entry per training seed."
        ),
    )
    return type(name, (AbsTaskClassification,), {"metadata": metadata, "__doc__": metadata.description})()


def _accuracies(res: Results, method: str, protocol: str) -> dict[int, list[tuple[str, str, dict]]]:
    """Prefix dim -> (data set, level, seed -> k-NN accuracy) for every level measured at that dim."""
    by_dim = defaultdict(list)
    for ds in res.datasets:
        if by_seed := res.blocks.get((ds, method, protocol)):
            for dim in next(iter(by_seed.values())).dims:
                for level in res.levels[ds]:
                    by_dim[dim].append((ds, level, {s: b.accuracy[level][str(dim)] for s, b in by_seed.items()}))
    return dict(sorted(by_dim.items()))


def _scores(per_seed: dict[int, float], about: dict) -> dict:
    """One test-split score entry: the mean accuracy over seeds, each seed's, and ``about`` (what the
    score measured, in fields mteb has no place for)."""
    mean = float(np.mean(list(per_seed.values())))
    return {
        "test": {
            "default": {
                "main_score": mean,
                "accuracy": mean,
                "scores_per_experiment": [{"seed": s, "accuracy": float(v)} for s, v in sorted(per_seed.items())],
                "steerable": about,
            }
        }
    }


def write_mteb(res: Results, out: str | Path, *, log: Callable[[str], None] = print) -> list[Path]:
    """Every method's k-NN accuracy as mteb results in ``out``, laid out as mteb's result cache:
    ``<out>/results/<model>/no_revision_available/<Task>.json`` (``TaskResult.to_disk``) beside the
    model's ``model_meta.json``. ``mteb.ResultCache(out).load_results(include_remote=False)`` loads
    them all; ``TaskResult.from_disk`` reads one file. Returns the task files written.

    One model per method x protocol x prefix dim (``embed_dim`` its prefix dim, ``adapted_from`` the
    backbone), one task per data set x level. A score is the mean over seeds, with each seed's in
    ``scores_per_experiment`` and a ``steerable`` entry beside it holding what mteb has no field for
    (method, protocol, k, prefix dim, data set, level, backbone, head, steerable version). mteb
    writes its own version into each file. Without mteb installed nothing is written: ``log`` gets a
    one-line note and the list is empty.
    """
    try:
        import mteb
        from mteb.models.model_meta import ModelMeta, ScoringFunction
        from mteb.results import TaskResult
    except ImportError:
        log(MISSING)
        return []
    cache = mteb.ResultCache(out)
    tasks = {(ds, level): mteb_task(ds, level) for ds in res.datasets for level in res.levels[ds]}
    backbone, head = ", ".join(res.backbones), ", ".join(res.heads)
    written = []
    for protocol in res.protocols:
        k = res.protocol_desc[protocol].k
        for m in res.methods:
            for dim, measured in _accuracies(res, m, protocol).items():
                results = [
                    TaskResult.from_task_results(
                        tasks[(ds, level)],
                        _scores(
                            per_seed,
                            {
                                "method": m,
                                "protocol": protocol,
                                "k": k,
                                "prefix_dim": dim,
                                "dataset": ds,
                                "level": level,
                                "backbone": backbone,
                                "head": head,
                                "steerable_version": __version__,
                            },
                        ),
                        evaluation_time=None,  # type: ignore[arg-type]  # scores read from stored runs: none was timed
                    )
                    for ds, level, per_seed in measured
                ]
                meta = ModelMeta(
                    loader=None,
                    name=model_name(m, protocol, dim),
                    revision=REVISION,
                    release_date=None,
                    languages=None,
                    n_parameters=None,
                    memory_usage_mb=None,
                    max_tokens=None,
                    embed_dim=dim,
                    license=None,
                    open_weights=None,
                    public_training_code=None,
                    public_training_data=None,
                    framework=["PyTorch"],
                    similarity_fn_name=ScoringFunction("cosine"),
                    use_instructions=False,
                    training_datasets={r.task_name for r in results},  # each head saw its data's training split
                    adapted_from=backbone,
                )
                paths = [cache.get_task_result_path(r.task_name, meta) for r in results]
                paths[0].parent.mkdir(parents=True, exist_ok=True)
                for result, path in zip(results, paths):
                    result.to_disk(path)
                meta_json = meta.to_dict()  # training_datasets is a set: written sorted, the same each time
                meta_json["training_datasets"] = sorted(meta_json.get("training_datasets") or [])
                atomic_write_json(paths[0].parent / "model_meta.json", meta_json)
                written += paths
    return written
