"""Exported models load in other stacks and give the project's own vectors."""

import json

import numpy as np
import pytest
import torch

from steerable import SteerableEncoder, SteerableModel
from steerable.data import Hierarchy
from steerable.export import export_onnx, export_sentence_transformer
from steerable.heads import HEADS

TEXTS = ["book a flight to rome", "what is my checking balance", "set a timer for ten minutes"]


def _model(kind: str) -> SteerableModel:
    torch.manual_seed(0)
    h = Hierarchy(("domain", "intent"), (("a", "b"), ("a1", "a2", "b1")), (np.array([0, 0, 1]),))
    return SteerableModel(HEADS[kind](384), h, "sentence-transformers/all-MiniLM-L6-v2").eval()


@pytest.mark.parametrize("kind", ["mlp", "linear", "identity", "pca"])
def test_sentence_transformers_loads_the_export_offline(kind, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = _model(kind)
    if kind == "pca":
        model.head.fit(torch.from_numpy(np.random.default_rng(1).normal(size=(500, 384)).astype(np.float32)))
    export_sentence_transformer(model, tmp_path / "st")
    ours = SteerableEncoder(model)
    st = SentenceTransformer(str(tmp_path / "st"))  # no trust_remote_code: only native modules
    np.testing.assert_allclose(st.encode(TEXTS), ours.encode(TEXTS), atol=1e-5)
    st64 = SentenceTransformer(str(tmp_path / "st"), truncate_dim=64)
    np.testing.assert_allclose(st64.encode(TEXTS, normalize_embeddings=True), ours.encode(TEXTS, dim=64), atol=1e-5)
    meta = json.loads((tmp_path / "st" / "steerable.json").read_text())
    assert (
        meta["matryoshka_dims"]
        == model.dims
        == ([64, 128, 192, 384] if kind in ("identity", "pca") else [64, 128, 192, 256])
    )
    assert meta["levels"] == {"domain": 64, "intent": model.dims[-1]} and not meta["trust_remote_code"]


def test_fractal_head_exports_as_a_custom_module(tmp_path):
    from sentence_transformers import SentenceTransformer

    model = _model("fractal")
    export_sentence_transformer(model, tmp_path / "st")
    meta = json.loads((tmp_path / "st" / "steerable.json").read_text())
    assert meta["trust_remote_code"] and meta["matryoshka_dims"] == [256]
    st = SentenceTransformer(str(tmp_path / "st"), trust_remote_code=True)
    np.testing.assert_allclose(st.encode(TEXTS), SteerableEncoder(model).encode(TEXTS), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_onnx_head_matches(kind, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = _model(kind)
    x = np.random.default_rng(0).normal(size=(5, 384)).astype(np.float32)
    for dim in (model.dims[0], model.dims[-1]):
        path = export_onnx(model, tmp_path / f"head{dim}.onnx", dim=dim)
        out = ort.InferenceSession(str(path)).run(None, {"pooled": x})[0]
        np.testing.assert_allclose(out, model.embed_vectors(x, [dim])[0], atol=1e-5)


def test_the_export_has_a_model_card(tmp_path):
    model = _model("linear")
    metrics = {
        "standard": {
            "protocol": {"name": "standard", "k": 5},
            "dims": model.dims,
            "accuracy": {
                "domain": {str(d): 0.9 for d in model.dims},
                "intent": {str(d): 0.5 + d / 1000 for d in model.dims},
            },
            "steerability_score": 0.125,
        }
    }
    export_sentence_transformer(model, tmp_path / "st", metrics=metrics, method="v5")
    card = (tmp_path / "st" / "README.md").read_text()
    assert "This model trained" not in card  # not sentence-transformers' generic card
    for part in [
        "base_model: sentence-transformers/all-MiniLM-L6-v2",
        "license: apache-2.0",
        "Apache-2.0, following the base model sentence-transformers/all-MiniLM-L6-v2",
        "method `v5`",
        "| domain | 2 | first 64 dims |",
        "| intent | 3 | the full vector |",
        "truncate_dim=64",
        "normalize_embeddings=True",
        "no longer unit length",
        'SentenceTransformer("path/to/this/folder")',
        "## Metrics",
        "| intent | 0.5640 | 0.6280 | 0.6920 | 0.7560 |",
        "steerability_score +0.1250",
    ]:
        assert part in card, part


def test_the_card_says_what_the_model_trained_on_and_how_each_protocol_measured(tmp_path):
    from steerable.export import model_card

    model = _model("linear")
    block = lambda name, n=None: {
        "protocol": {"name": name, "k": 5, **({"n": n} if n else {})},  # noqa: E731
        "dims": model.dims,
        "accuracy": {"domain": {str(d): 0.9 for d in model.dims}},
    }
    data = {
        "name": "intents",
        "files": {"train": "/data/intents.csv", "test": None, "validation": None},
        "sizes": {"train": 140, "validation": 25, "test": 32},
        "max_train": None,
        "max_test": None,
        "held_out": {"drawn": "coarse:1", "classes": {"domain": ["travel"], "intent": ["flight", "hotel"]}},
    }
    card = model_card(model, metrics={"paper": block("paper", 500), "standard": block("standard")}, data=data)
    for part in [
        "## Training data",
        "Trained on the files `intents.csv`: 140 train texts, 25 validation texts, "
        "32 test texts (domain: 2 classes; intent: 3 classes).",
        "Classes held out of training (coarse:1): domain: travel; intent: flight, hotel.",
        "**paper** (5-NN, leave-one-out within 32 test texts drawn by a seeded shuffle)",
        "**standard** (5-NN with the training split as the reference, over all 32 test texts)",
    ]:
        assert part in card, part
    assert "n=500" not in card and "500 test texts" not in card


def test_the_card_of_a_head_whose_prefix_is_no_truncation_says_so(tmp_path):
    model = _model("fractal")
    model.backbone = "BAAI/bge-small-en-v1.5"
    from steerable.export import model_card

    card = model_card(model, trust_remote_code=True)
    assert "truncate_dim` does not give the domain prefix" in card and "trust_remote_code=True" in card
    assert "license:" not in card and "follow the license of the base model, BAAI/bge-small-en-v1.5" in card
    assert "## Metrics" not in card


def test_the_sentence_transformers_floor_is_the_version_the_export_needs():
    """The export imports Normalize from sentence_transformers.base.modules, where it is since 6.0."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    (spec,) = re.findall(r'^\s*"sentence-transformers([^"]*)"', pyproject, flags=re.M)
    assert spec == ">=6.0" and version("sentence-transformers") in SpecifierSet(spec)
