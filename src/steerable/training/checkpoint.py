"""A training's checkpoint: after every epoch, everything the next epoch depends on (weights, optimiser,
random streams, history, the best state so far), keyed by what determines the training, so that only the
same training resumes from it, with the numbers of an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic import atomic_write
from ..model import SteerableModel
from ..schedule import Schedule

if TYPE_CHECKING:  # annotations only: the loop imports this module
    from .loop import TrainConfig


def training_digest(model: SteerableModel, schedule: Schedule, cfg: TrainConfig, x: np.ndarray, y: np.ndarray) -> str:
    """What determines a training: the model's configuration, schedule, settings and data."""
    h = hashlib.sha1(
        json.dumps(
            {"model": model.get_config_dict(), "schedule": schedule.to_dict(), "train": cfg.to_dict()},
            sort_keys=True,
            default=str,
        ).encode()
    )
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def save_checkpoint(
    path: Path,
    key: str,
    epoch: int,
    model: SteerableModel,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LambdaLR | None,
    rng: np.random.Generator,
    history: dict,
    best_score: float,
    best_state: dict | None,
) -> None:
    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"best.{k}": v.clone().contiguous() for k, v in (best_state or {}).items()}
    state = opt.state_dict()
    for i, per_param in state["state"].items():
        tensors |= {f"opt.{i}.{name}": v.clone().contiguous() for name, v in per_param.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "key": key,
        "epoch": epoch,
        "history": history,
        "best_score": best_score,
        "numpy_rng": rng.bit_generator.state,
        "param_groups": state["param_groups"],
        "lr_schedule": {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"} if sched else None,
    }
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata={"state": json.dumps(meta)}))


def load_checkpoint(
    path: Path,
    key: str,
    model: SteerableModel,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LambdaLR | None,
    rng: np.random.Generator,
) -> tuple[int, dict, float, dict[str, torch.Tensor] | None] | None:
    """(next epoch, history, best score, best state) from a checkpoint of this training, else None."""
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("state", "{}"))
        if meta.get("key") != key:
            return None
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    part = lambda prefix: {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
    model.load_state_dict(part("model."))
    per_param: dict[int, dict] = {}
    for name, v in part("opt.").items():
        i, field_name = name.split(".", 1)
        per_param.setdefault(int(i), {})[field_name] = v
    opt.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})
    if sched is not None:
        sched.load_state_dict(meta["lr_schedule"] | {"lr_lambdas": [None]})
    torch.set_rng_state(tensors["rng.torch"])
    rng.bit_generator.state = meta["numpy_rng"]
    return meta["epoch"] + 1, meta["history"], meta["best_score"], part("best.") or None
