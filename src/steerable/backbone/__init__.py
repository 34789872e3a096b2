"""The frozen backbone: texts to pooled vectors, each text encoded once (:class:`VectorCache`), with
PyTorch or ONNX Runtime (:mod:`.onnx`), from models shipped inside Python packages where it can
(:mod:`.model_parts`), batched by token count (:mod:`.batching`)."""

from __future__ import annotations

from .frozen import SHARD_ROWS, Backbone, VectorCache, split_vectors, text_key
from .names import DEFAULT_BACKBONE, backbone_spec, cache_dir, parse_backbone, resolve_model_path
from .onnx import RUNTIMES

__all__ = [
    "Backbone",
    "VectorCache",
    "split_vectors",
    "text_key",
    "SHARD_ROWS",
    "DEFAULT_BACKBONE",
    "backbone_spec",
    "cache_dir",
    "parse_backbone",
    "resolve_model_path",
    "RUNTIMES",
]
