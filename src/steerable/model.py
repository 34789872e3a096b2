"""A trained head with its per-level classifiers, hierarchy and backbone name; saved as safetensors + JSON."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_write, atomic_write_json, read_json
from .data import Hierarchy
from .heads import HEADS, Classifier, Head, build_head
from .schedule import Schedule, prefix_level

WEIGHTS, CONFIG = "model.safetensors", "config.json"


class SteerableModel(nn.Module):
    """Head plus one classifier per hierarchy level (used by the cross-entropy term)."""

    def __init__(self, head: Head, hierarchy: Hierarchy, backbone: str):
        super().__init__()
        self.head, self.hierarchy, self.backbone = head, hierarchy, backbone
        self.classifiers = nn.ModuleList(
            Classifier(head.dim, hierarchy.num_classes(k)) for k in range(hierarchy.num_levels)
        )

    @property
    def dims(self) -> list[int]:
        return self.head.prefix_dims

    def level_map(self, level: int) -> torch.Tensor:
        """Finest-level class -> its class at ``level`` (for losses on the head's fine posterior)."""
        return torch.from_numpy(self.hierarchy.fine_to_level(level))

    @classmethod
    def build(
        cls, head_kind: str, input_dim: int, hierarchy: Hierarchy, backbone: str, head_options: dict | None = None
    ) -> "SteerableModel":
        """A fresh model; ``head_options`` may hold the head's size settings plus ``segments``,
        ``posterior`` (whose coarse map is filled in from the hierarchy) and ``prefix``."""
        if head_kind not in HEADS:
            raise ValueError(f"unknown head {head_kind!r}; choose from {sorted(HEADS)}")
        options = dict(head_options or {})
        segments, posterior, prefix = (options.pop(k, None) for k in ("segments", "posterior", "prefix"))
        if posterior is not None:
            posterior = {"mix": 1.0} | dict(posterior) | {"parents": hierarchy.fine_to_level(0).tolist()}
        head = HEADS[head_kind](input_dim, **options).set_options(segments, posterior, prefix)
        return cls(head, hierarchy, backbone)

    @classmethod
    def for_schedule(
        cls,
        schedule: Schedule,
        head_kind: str,
        input_dim: int,
        hierarchy: Hierarchy,
        backbone: str,
        head_options: dict | None = None,
    ) -> "SteerableModel":
        """A fresh model to train with ``schedule``: the head kind the method needs (Flat: identity)
        or else ``head_kind``, with the method's head options under the caller's."""
        return cls.build(
            schedule.head or head_kind, input_dim, hierarchy, backbone, schedule.head_options | dict(head_options or {})
        )

    def level_dims(self) -> dict[str, int]:
        """The prefix dim that serves each level: prefix j -> level j-1, the full vector -> finest."""
        out: dict[str, int] = {}
        L = self.hierarchy.num_levels
        for j, d in enumerate(self.dims, start=1):
            lvl = L - 1 if j == self.head.num_blocks else prefix_level(j, L)
            out.setdefault(self.hierarchy.level_names[lvl], d)
        return out

    @torch.no_grad()
    def embed_vectors(
        self, vectors: np.ndarray, dims: list[int] | None = None, batch_size: int = 8192
    ) -> list[np.ndarray]:
        """Unit-length embeddings of backbone vectors, one (n, d) float32 array per requested dim."""
        dims = dims or self.dims
        was_training = self.training
        self.eval()
        outs: list[list[np.ndarray]] = [[] for _ in dims]
        device = next(self.parameters(), torch.empty(0)).device
        for s in range(0, len(vectors), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(vectors[s : s + batch_size], dtype=np.float32)).to(device)
            blocks = self.head.blocks(x)
            for i, d in enumerate(dims):
                j = self.head.blocks_for_dim(d)
                outs[i].append(self.head.embed(blocks, j)[:, :d].cpu().numpy())
        self.train(was_training)
        return [np.concatenate(o) if o else np.zeros((0, d), np.float32) for o, d in zip(outs, dims)]

    def get_config_dict(self) -> dict:
        return {"head": self.head.get_config_dict(), "hierarchy": self.hierarchy.to_dict(), "backbone": self.backbone}

    def fingerprint(self) -> str:
        """A digest of what the model computes: its configuration and every weight, bit for bit."""
        h = hashlib.sha1(json.dumps(self.get_config_dict(), sort_keys=True, default=str).encode())
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
        return h.hexdigest()

    def save(self, directory: str | Path, extra_config: dict | None = None) -> None:
        """Write ``model.safetensors`` and ``config.json`` atomically into ``directory``."""
        directory = Path(directory)
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        atomic_write(directory / WEIGHTS, lambda p: save_file(state, str(p)))
        atomic_write_json(directory / CONFIG, self.get_config_dict() | (extra_config or {}))

    @classmethod
    def load(cls, directory: str | Path) -> "SteerableModel":
        directory = Path(directory)
        cfg = read_json(directory / CONFIG) if (directory / CONFIG).exists() else {}
        if cfg and cfg.get("head") is None:
            raise ValueError(
                f"{directory}: a Flat run written by an older version (no head); train it "
                "again with --method flat (it trains nothing, so this takes seconds)"
            )
        if not cfg or not (directory / WEIGHTS).exists():
            raise FileNotFoundError(f"{directory}: not a run folder (needs {CONFIG} and {WEIGHTS})")
        model = cls(build_head(cfg["head"]), Hierarchy.from_dict(cfg["hierarchy"]), cfg["backbone"])
        model.load_state_dict(load_file(str(directory / WEIGHTS)))
        model.eval()
        return model
