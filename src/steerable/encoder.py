"""Texts in, steerable embeddings out: a backbone plus a trained head (fit here, or loaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .backbone import Backbone, VectorCache, split_vectors
from .data import HierarchicalDataset
from .heads import DEFAULT_HEAD
from .methods import preset
from .metrics import Protocol, default_protocols, evaluate
from .model import SteerableModel
from .schedule import Schedule
from .train import TrainConfig, train


class SteerableEncoder:
    """Encode texts at a chosen granularity: ``dim=64`` or ``level="coarse"`` for the short prefix,
    the full vector by default.

    >>> enc = SteerableEncoder.from_pretrained("runs/clinc150-v5-mlp-s42")  # doctest: +SKIP
    >>> enc.encode(["book a flight to rome"], level="coarse").shape                # doctest: +SKIP
    (1, 64)
    """

    def __init__(self, model: SteerableModel, backbone: Backbone | None = None, *, cache: bool = True):
        self.model = model.eval()
        self.backbone = backbone or Backbone(model.backbone)
        self._cache = VectorCache(self.backbone) if cache else None
        self.history: dict = {}

    @classmethod
    def fit(cls, dataset: HierarchicalDataset, method: str | Schedule = "v5", *, head: str = DEFAULT_HEAD,
            backbone: Backbone | None = None, progress: bool = True, **train_options) -> "SteerableEncoder":
        """Train a head on a data set's training split (validation split for picking the epoch).

        ``method``: a method name (``steerable.METHODS``) or a schedule; ``train_options`` are
        :class:`~steerable.train.TrainConfig` fields (``seed``, ``epochs``, ...) over the method's
        recipe. The training history is kept in ``encoder.history``; :meth:`evaluate` measures it.
        """
        backbone = backbone or Backbone()
        schedule = method if isinstance(method, Schedule) else preset(method, dataset.hierarchy.num_levels)
        cfg = TrainConfig.for_schedule(schedule, **train_options)
        vectors = split_vectors(dataset, backbone, seed=cfg.seed, progress=progress)
        torch.manual_seed(cfg.seed)
        model = SteerableModel.for_schedule(schedule, head, vectors.train.shape[1], dataset.hierarchy,
                                            backbone.name)
        history = train(model, schedule, vectors.train, vectors.y_train, vectors.validation,
                        vectors.y_validation, cfg, progress=progress)
        encoder = cls(model, backbone)
        encoder.history = history
        return encoder

    def evaluate(self, dataset: HierarchicalDataset, protocols: Sequence[Protocol] | None = None, *,
                 max_train: int | None = None, max_test: int | None = None, seed: int = 42,
                 progress: bool = False) -> dict:
        """k-NN accuracy per level at every prefix and the steerability metrics on ``dataset`` (test
        split; the training split as the reference set), per protocol (default: both)."""
        if dataset.hierarchy.classes != self.model.hierarchy.classes:
            raise ValueError(f"{dataset.name} has another label set than this model was trained on")
        vectors = split_vectors(dataset, self.backbone, cache=self._cache, max_train=max_train,
                                max_test=max_test, seed=seed, progress=progress)
        protocols = list(protocols) if protocols is not None else default_protocols(seed)
        return evaluate(self.model, vectors, dataset.hierarchy.level_names, protocols)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, cache: bool = True, runtime: str | None = None,
                        max_length: int | None = None, device: str | None = None) -> "SteerableEncoder":
        """Load a run folder written by ``steer train`` (or :meth:`save_pretrained`).

        The backbone is the one the model was trained on, with its runtime and maximum sequence
        length; ``runtime``, ``max_length`` and ``device`` override them (:class:`Backbone`).
        """
        model = SteerableModel.load(path)
        backbone = Backbone(model.backbone, runtime=runtime, max_length=max_length, device=device)
        return cls(model, backbone, cache=cache)

    def save_pretrained(self, path: str | Path) -> None:
        self.model.save(path)

    @property
    def dial(self) -> float | None:
        """The steerability dial of a model trained with ``--method dial`` (else None)."""
        post = self.model.head.posterior
        return post["mix"] if post and "train_mix" in post else None

    def set_dial(self, value: float) -> "SteerableEncoder":
        """Move a dial-trained model between an MRL-like prefix (0) and a pure coarse code (1).

        No retraining: the dial sets how the 64-d prefix mixes its coarse-posterior and free parts.
        """
        if self.dial is None:
            raise ValueError("this model has no steerability dial; train it with --method dial")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"the dial must be in [0, 1], got {value}")
        self.model.head.posterior["mix"] = float(value)
        return self

    @property
    def dims(self) -> list[int]:
        return self.model.dims

    @property
    def levels(self) -> dict[str, int]:
        """Level name -> the prefix dim that serves it; also "coarse" and "fine"."""
        by_name = self.model.level_dims()
        names = list(by_name)
        return by_name | {"coarse": by_name[names[0]], "fine": by_name[names[-1]]}

    def resolve_dim(self, dim: int | None = None, level: str | None = None) -> int:
        if dim is not None and level is not None:
            raise ValueError("give dim or level, not both")
        if level is not None:
            if level not in self.levels:
                raise ValueError(f"unknown level {level!r}; choose from {sorted(self.levels)}")
            return self.levels[level]
        dim = self.dims[-1] if dim is None else dim
        if dim not in self.dims:
            raise ValueError(f"dim must be one of {self.dims}, got {dim}")
        return dim

    def encode(self, texts: Sequence[str] | str, *, dim: int | None = None, level: str | None = None,
               progress: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, shape (n, dim)."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        d = self.resolve_dim(dim, level)
        if self._cache is not None:
            vectors = self._cache.get_or_encode(texts, progress=progress)
        else:
            vectors = self.backbone.encode_uncached(texts, progress=progress)
        (out,) = self.model.embed_vectors(vectors, [d])
        return out[0] if single else out
