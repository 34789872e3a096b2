"""Training a head on cached backbone vectors: the loop (:mod:`.loop`), its optimiser (:mod:`.adamw`),
seeds trained together as one stacked model (:mod:`.together`), the loss functions (:mod:`.losses`) and
the terms a schedule names (:mod:`.terms`), and what a step costs (:mod:`.cost`)."""

from __future__ import annotations

from .loop import TrainConfig, recipe_value, train

__all__ = ["TrainConfig", "recipe_value", "train"]
