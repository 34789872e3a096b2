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
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules.dense import Dense
from sentence_transformers.base.modules.module import Module as _STModule
from sentence_transformers.base.modules.normalize import Normalize
from sentence_transformers.sentence_transformer.modules.layer_norm import LayerNorm

from .atomic import atomic_write_json, atomic_write_text
from .backbone import resolve_model_path
from .extras import require
from .heads import Head, IdentityHead, LinearHead, MLPHead, PCAHead, RandomSubsetHead, build_head
from .metrics import METRIC_NAMES
from .model import SteerableModel


class SteerableHeadModule(_STModule):
    """The trained head as a sentence-transformers module: pooled vector -> full embedding."""

    config_keys = ["head"]

    def __init__(self, head: dict):
        super().__init__()
        self.head = head
        self.model = build_head(head)
        self.model.eval()

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        x = features["sentence_embedding"]
        weights = next(iter(self.model.state_dict().values()), None)  # a head may have buffers alone
        blocks = self.model.blocks(x.to(weights.dtype) if weights is not None and weights.is_floating_point() else x)
        features["sentence_embedding"] = self.model.embed(blocks, self.model.num_blocks)
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return self.model.dim

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(  # type: ignore[override]  # sentence-transformers passes hub options this local module ignores
        cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any
    ) -> "SteerableHeadModule":
        config = cls.load_config(model_name_or_path, subfolder=subfolder)
        module = cls(**config)
        weights = os.path.join(model_name_or_path, subfolder, "model.safetensors")
        module.load_state_dict(load_file(weights))
        return module


def _native_modules(head: Head) -> list | None:
    """The head as sentence-transformers' own Dense / LayerNorm modules, where it can be said so.

    Dense applies ``act(W x + b)``; a GELU between two layers becomes an identity Dense with a GELU
    activation. Returns None for heads with no such form (the fractal head, and any head with the
    ``segments``, ``posterior`` or ``prefix`` option).
    """
    if type(head) is IdentityHead:  # the raw backbone: nothing between the pooling and Normalize
        return []
    if head.segments or head.posterior or head.prefix:  # these options have no sentence-transformers form
        return None

    def dense(linear: torch.nn.Module | None, dim: int, act: torch.nn.Module) -> Dense:
        assert linear is None or isinstance(linear, torch.nn.Linear)
        d = Dense(
            dim if linear is None else linear.in_features,
            dim if linear is None else linear.out_features,
            activation_function=act,
        )
        with torch.no_grad():
            if linear is None:
                d.linear.weight.copy_(torch.eye(dim))
                d.linear.bias.zero_()
            else:
                d.linear.load_state_dict(linear.state_dict())
        return d

    def norm(ln: torch.nn.Module) -> LayerNorm:
        assert isinstance(ln, torch.nn.LayerNorm)
        m = LayerNorm(ln.normalized_shape[0])
        m.norm.load_state_dict(ln.state_dict())
        return m

    if isinstance(head, RandomSubsetHead):  # the backbone's dims in another order: a permutation matrix
        order = torch.nn.Linear(head.input_dim, head.input_dim)
        with torch.no_grad():
            order.weight.copy_(torch.eye(head.input_dim)[head.order])
            order.bias.zero_()
        return [dense(order, 0, torch.nn.Identity())]
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
        return [
            dense(t[0], 0, torch.nn.Identity()),
            norm(t[1]),
            dense(None, hid, torch.nn.GELU()),
            dense(t[4], 0, torch.nn.Identity()),
            norm(t[5]),
            dense(None, hid, torch.nn.GELU()),
            dense(head.proj, 0, torch.nn.Identity()),
        ]
    return None


# Licenses of backbones whose license is known here; any other backbone's card points to its own.
BACKBONE_LICENSES = {"sentence-transformers/all-MiniLM-L6-v2": "apache-2.0"}


def _protocol_text(name: str, block: dict, test: int | None) -> str:
    """How a ``metrics.json`` block was measured, in words, with the number of test texts it read."""
    p = block.get("protocol", {})
    k = p.get("k", block.get("k"))
    if name == "open_set":
        return (
            f"{k}-NN, leave-one-out, of the {block['queries']} test texts of the classes held out of "
            f"training, in a pool of {block['pool']} test texts of every class"
        )
    if p.get("name") == "paper":
        n = min(p["n"], test) if test else p["n"]
        return f"{k}-NN, leave-one-out within {n} test texts drawn by a seeded shuffle"
    return f"{k}-NN with the training split as the reference, over " + (
        f"all {test} test texts" if test else "every test text"
    )


def _metrics_section(metrics: dict, test: int | None = None) -> list[str]:
    """Markdown tables of a run's ``metrics.json``: k-NN accuracy per level at every prefix, and the
    steerability metrics, per protocol (``test``: the test texts the run measured)."""
    lines = []
    for name, block in metrics.items():
        if not isinstance(block, dict) or "accuracy" not in block:
            continue
        dims = block["dims"]
        lines += [
            "",
            f"**{name}** ({_protocol_text(name, block, test)})",
            "",
            "| level | " + " | ".join(f"{d}-d" for d in dims) + " |",
            "|---|" + "---|" * len(dims),
        ]
        lines += [
            f"| {level} | " + " | ".join(f"{row[str(d)]:.4f}" for d in dims) + " |"
            for level, row in block["accuracy"].items()
        ]
        scalars = [f"{m} {block[m]:+.4f}" for m in METRIC_NAMES if isinstance(block.get(m), (int, float))]
        if scalars:
            lines += ["", "Steerability: " + ", ".join(scalars) + "."]
    return lines


def _data_section(data: dict, model: SteerableModel) -> list[str]:
    """What the model was trained on, from a run's ``config.json`` data section."""
    source = (
        f"the files {', '.join(f'`{Path(f).name}`' for f in data['files'].values() if f)}"
        if "files" in data
        else f"the data set `{data['name']}`"
    )
    sizes = data.get("sizes", {})
    h = model.hierarchy
    lines = [
        "## Training data",
        "",
        f"Trained on {source}: "
        + ", ".join(f"{n:,} {split} texts" for split, n in sizes.items())
        + " ("
        + "; ".join(f"{name}: {h.num_classes(i)} classes" for i, name in enumerate(h.level_names))
        + ").",
    ]
    caps = [
        f"{what} capped at {data[key]:,}"
        for key, what in (("max_train", "training"), ("max_test", "test"))
        if data.get(key)
    ]
    if caps:
        lines[-1] += " " + "; ".join(caps).capitalize() + " (seeded subsamples)."
    if data.get("held_out"):
        held = data["held_out"]
        lines[-1] += (
            f" Classes held out of training ({held['drawn']}): "
            + "; ".join(f"{lvl}: {', '.join(names)}" for lvl, names in held["classes"].items() if names)[:400]
            + "."
        )
    return lines + [""]


def model_card(
    model: SteerableModel,
    *,
    metrics: dict | None = None,
    method: str | None = None,
    trust_remote_code: bool = False,
    data: dict | None = None,
) -> str:
    """The exported folder's README.md: base model, levels and the prefix serving each, what it was trained
    on (``data``: a run config's data section), the run's metrics, license, and how to load and
    truncate it."""
    backbone = model.backbone
    license_id = BACKBONE_LICENSES.get(backbone if "/" in backbone else f"sentence-transformers/{backbone}")
    levels = model.level_dims()
    h = model.hierarchy
    full = model.dims[-1]
    coarse_name, coarse_dim = next(iter(levels.items()))
    front = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        f"base_model: {backbone}",
        *([f"license: {license_id}"] if license_id else []),
        "tags:",
        "- sentence-transformers",
        "- feature-extraction",
        *(["- matryoshka"] if model.head.prefix_is_truncation else []),
        "- steerable",
        "---",
    ]
    trust = ", trust_remote_code=True" if trust_remote_code else ""
    lines = [
        *front,
        "",
        f"# Steerable embeddings on {backbone}",
        "",
        f"A frozen [{backbone}](https://huggingface.co/{backbone}) with a trained `{model.head.kind}` head"
        + (f" (method `{method}`)" if method else "")
        + f": {full}-d unit vectors whose prefixes serve the "
        "coarse labels of a hierarchy and whose full vector serves the finest.",
        "",
        "## Levels",
        "",
        "| level | classes | prefix |",
        "|---|---|---|",
        *[
            f"| {name} | {h.num_classes(h.level_names.index(name))} | "
            f"{'the full vector' if dim == full else f'first {dim} dims'} |"
            for name, dim in levels.items()
        ],
        "",
        f"Prefix lengths: {', '.join(map(str, model.dims))}. `steerable.json` beside this card declares the same.",
        "",
        "## Use",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'model = SentenceTransformer("path/to/this/folder"{trust})',
        f"fine = model.encode(texts)  # (len(texts), {full}), unit length: the {h.level_names[-1]} level",
        "```",
        "",
    ]
    if model.head.prefix_is_truncation:
        lines += [
            f"The {coarse_dim}-d prefix ({coarse_name}) is the first {coarse_dim} dims, re-normalised: a "
            "truncated unit vector is no longer unit length, so normalise after truncating:",
            "",
            "```python",
            f'coarse_model = SentenceTransformer("path/to/this/folder", truncate_dim={coarse_dim}{trust})',
            f"coarse = coarse_model.encode(texts, normalize_embeddings=True)"
            f"  # (len(texts), {coarse_dim}): {coarse_name}",
            "```",
            "",
        ]
    else:
        lines += [
            f"This head's prefixes are not truncations of its full vector: `truncate_dim` does not "
            f"give the {coarse_name} prefix; use `steerable.SteerableEncoder` with `level=` for it.",
            "",
        ]
    lines += [
        "With `steerable` installed, the run folder also loads as "
        "`steerable.SteerableEncoder.from_pretrained(run).encode(texts, level=...)`.",
        "",
    ]
    if data:
        lines += _data_section(data, model)
    if metrics:
        test = (data or {}).get("sizes", {}).get("test")
        lines += [
            "## Metrics",
            "",
            "Measured when the model was trained (k-NN accuracy of each level at each prefix length):",
            *_metrics_section(metrics, test),
            "",
        ]
    lines += [
        "## License",
        "",
        (
            f"{license_id.replace('apache-2.0', 'Apache-2.0')}, following the base model "
            f"{backbone}, whose weights this folder contains."
            if license_id
            else f"The weights follow the license of the base model, {backbone}: check its model card "
            "before you share or use this folder."
        ),
        "",
    ]
    return "\n".join(lines)


def exported_head(model: SteerableModel) -> list:
    """The sentence-transformers modules that follow the backbone's pooling in an export: the head (as
    sentence-transformers' own modules where it has that form, else :class:`SteerableHeadModule`) and a
    Normalize."""
    modules = _native_modules(model.head)
    if modules is None:
        custom = SteerableHeadModule(model.head.get_config_dict())
        custom.model.load_state_dict(model.head.state_dict())
        modules = [custom]
    return [*modules, Normalize()]


def export_sentence_transformer(
    model: SteerableModel,
    out: str | Path,
    *,
    metrics: dict | None = None,
    method: str | None = None,
    data: dict | None = None,
) -> Path:
    """Write a folder that ``SentenceTransformer(out)`` loads offline: backbone, head, Normalize.

    The MLP and linear heads are written as sentence-transformers' own modules, so loading needs
    nothing from this package. The fractal head has no such form: it is written as
    :class:`SteerableHeadModule`, which loads with ``trust_remote_code=True`` where ``steerable`` is
    installed. ``README.md`` is a model card (:func:`model_card`) with the run's ``metrics``, ``method``
    and training ``data`` (its config's data section) where given.
    """
    out = Path(out)
    model = model.eval()
    st = SentenceTransformer(resolve_model_path(model.backbone), device="cpu")
    head_modules = exported_head(model)
    exported = SentenceTransformer(modules=list(st) + head_modules, device="cpu")
    exported.save(str(out))
    trust_remote_code = any(isinstance(m, SteerableHeadModule) for m in head_modules)
    atomic_write_text(
        out / "README.md",
        model_card(model, metrics=metrics, method=method, data=data, trust_remote_code=trust_remote_code),
    )
    atomic_write_json(
        out / "steerable.json",
        {
            "prefix_dims": model.dims,
            "levels": model.level_dims(),
            "prefix_is_truncation": model.head.prefix_is_truncation,
            "matryoshka_dims": model.dims if model.head.prefix_is_truncation else [model.dims[-1]],
            "trust_remote_code": trust_remote_code,
            "backbone": model.backbone,
            "level_names": list(model.hierarchy.level_names),
        },
    )
    return out


def export_onnx(model: SteerableModel, path: str | Path, dim: int | None = None) -> Path:
    """The head alone as ONNX: input ``pooled`` (batch, input_dim) -> ``embedding`` (batch, dim)."""
    require("onnx", "onnx", "exporting ONNX")  # torch's exporter needs it
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = model.head.eval()
    dim = dim or head.dim

    class _Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = head

        def forward(self, pooled: torch.Tensor) -> torch.Tensor:
            return self.head(pooled, dim=dim)

    with warnings.catch_warnings():  # the tracer's notes on Python-side shape logic: the graph is checked
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # against the head in the tests
        warnings.filterwarnings("ignore", message="Constant folding")
        torch.onnx.export(
            _Wrapped(),
            (torch.zeros(2, head.input_dim),),
            str(path),
            input_names=["pooled"],
            output_names=["embedding"],
            dynamic_axes={"pooled": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path
