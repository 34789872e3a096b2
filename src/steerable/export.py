"""Export a trained model for other stacks: a sentence-transformers folder, and ONNX for the head.

The sentence-transformers folder holds the backbone's modules followed by :class:`SteerableHeadModule`
(the head, as a module) and a Normalize, so ``SentenceTransformer(path)`` encodes texts offline
exactly as :class:`~steerable.encoder.SteerableEncoder` does. ``steerable.json`` beside it declares
the prefix dims and the level each serves; where the head's prefix is the renormalised truncation of
its full vector (``prefix_is_truncation``), ``SentenceTransformer(path, truncate_dim=64)`` with
normalisation gives the 64-d prefix, as Matryoshka-aware serving stacks expect.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules.dense import Dense
from sentence_transformers.base.modules.module import Module as _STModule
from sentence_transformers.base.modules.normalize import Normalize
from sentence_transformers.sentence_transformer.modules.layer_norm import LayerNorm

from .backbone import resolve_model_path
from .heads import IdentityHead, LinearHead, MLPHead, PCAHead, build_head
from .io import atomic_write_json
from .model import SteerableModel


class SteerableHeadModule(_STModule):
    """The trained head as a sentence-transformers module: pooled vector -> full embedding."""

    config_keys = ["head"]

    def __init__(self, head: dict):
        super().__init__()
        self.head = head
        self.model = build_head(head)
        self.model.eval()

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        x = features["sentence_embedding"]
        blocks = self.model.blocks(x.to(next(self.model.parameters()).dtype))
        features["sentence_embedding"] = self.model.embed(blocks, self.model.num_blocks)
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return self.model.dim

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> "SteerableHeadModule":
        config = cls.load_config(model_name_or_path, subfolder=subfolder)
        module = cls(**config)
        weights = os.path.join(model_name_or_path, subfolder, "model.safetensors")
        module.load_state_dict(load_file(weights))
        return module


def _native_modules(head) -> list | None:
    """The head as sentence-transformers' own Dense / LayerNorm modules, where it can be said so.

    Dense applies ``act(W x + b)``; a GELU between two layers becomes an identity Dense with a GELU
    activation. Returns None for heads with no such form (the fractal head, and any head with the
``segments`` or ``posterior`` option).
    """
    if type(head) is IdentityHead:  # the raw backbone: nothing between the pooling and Normalize
        return []
    if head.segments or head.posterior:  # per-segment normalising / the posterior have no ST form
        return None

    def dense(linear: torch.nn.Linear | None, dim: int, act: torch.nn.Module) -> Dense:
        d = Dense(dim if linear is None else linear.in_features,
                  dim if linear is None else linear.out_features, activation_function=act)
        with torch.no_grad():
            if linear is None:
                d.linear.weight.copy_(torch.eye(dim))
                d.linear.bias.zero_()
            else:
                d.linear.load_state_dict(linear.state_dict())
        return d

    def norm(ln: torch.nn.LayerNorm) -> LayerNorm:
        m = LayerNorm(ln.normalized_shape[0])
        m.norm.load_state_dict(ln.state_dict())
        return m

    if isinstance(head, PCAHead):  # (x - mean) C^T as one affine map
        rotation = torch.nn.Linear(head.input_dim, head.input_dim)
        with torch.no_grad():
            rotation.weight.copy_(head.components)
            rotation.bias.copy_(-head.components @ head.mean)
        return [dense(rotation, 0, torch.nn.Identity())]
    if isinstance(head, LinearHead):
        return [dense(head.proj, 0, torch.nn.Identity())]
    if isinstance(head, MLPHead):
        t, hid = head.trunk, head.hidden_dim
        return [dense(t[0], 0, torch.nn.Identity()), norm(t[1]), dense(None, hid, torch.nn.GELU()),
                dense(t[4], 0, torch.nn.Identity()), norm(t[5]), dense(None, hid, torch.nn.GELU()),
                dense(head.proj, 0, torch.nn.Identity())]
    return None


def export_sentence_transformer(model: SteerableModel, out: str | Path) -> Path:
    """Write a folder that ``SentenceTransformer(out)`` loads offline: backbone, head, Normalize.

    The MLP and linear heads are written as sentence-transformers' own modules, so loading needs
    nothing from this package. The fractal head has no such form: it is written as
    :class:`SteerableHeadModule`, which loads with ``trust_remote_code=True`` where ``steerable`` is
    installed.
    """
    out = Path(out)
    model = model.eval()
    st = SentenceTransformer(resolve_model_path(model.backbone), device="cpu")
    head_modules = _native_modules(model.head)
    if head_modules is None:
        custom = SteerableHeadModule(model.head.get_config_dict())
        custom.model.load_state_dict(model.head.state_dict())
        head_modules = [custom]
    exported = SentenceTransformer(modules=list(st) + head_modules + [Normalize()], device="cpu")
    exported.save(str(out))
    atomic_write_json(out / "steerable.json", {
        "prefix_dims": model.dims,
        "levels": model.level_dims(),
        "prefix_is_truncation": model.head.prefix_is_truncation,
        "matryoshka_dims": model.dims if model.head.prefix_is_truncation else [model.dims[-1]],
        "trust_remote_code": any(isinstance(m, SteerableHeadModule) for m in head_modules),
        "backbone": model.backbone,
        "level_names": list(model.hierarchy.level_names),
    })
    return out


def export_onnx(model: SteerableModel, path: str | Path, dim: int | None = None) -> Path:
    """The head alone as ONNX: input ``pooled`` (batch, input_dim) -> ``embedding`` (batch, dim)."""
    try:
        import onnx  # noqa: F401  (an optional extra; torch's exporter needs it)
    except ImportError:
        raise ImportError("exporting ONNX needs the 'onnx' extra: pip install 'steerable[onnx]'") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = model.head.eval()
    dim = dim or head.dim

    class _Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, pooled):
            return self.head(pooled, dim=dim)

    torch.onnx.export(_Wrapped(), (torch.zeros(2, head.input_dim),), str(path),
                      input_names=["pooled"], output_names=["embedding"],
                      dynamic_axes={"pooled": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=17, dynamo=False)
    return path
