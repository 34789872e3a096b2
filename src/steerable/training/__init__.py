"""Training a head on cached backbone vectors: the loop for one or more seeds in lockstep (:mod:`.loop`),
the models of a step with their parameters stacked over the seeds (:mod:`.stack`), its optimiser
(:mod:`.adamw`), seeds trained together (:mod:`.together`), the loss functions (:mod:`.losses`) and the
terms a schedule names (:mod:`.terms`), and what a step costs (:mod:`.cost`)."""

from __future__ import annotations

from .loop import TrainConfig, recipe_value, train

__all__ = ["TrainConfig", "recipe_value", "train"]
