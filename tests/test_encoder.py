"""SteerableEncoder: fit trains, evaluate measures, a saved model loads back and encodes texts at any
prefix or level."""

import numpy as np
import pytest
import torch

from steerable import Backbone, FractalHead, SteerableEncoder, SteerableModel
from steerable.data import Hierarchy, load_dataset

from conftest import synthetic_model

TEXTS = ["book a flight to rome", "what is my checking balance", "set a timer for ten minutes"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    h = Hierarchy(("domain", "intent"), (("a", "b"), ("a1", "a2", "b1")), (np.array([0, 0, 1]),))
    model = SteerableModel(FractalHead(384), h, "sentence-transformers/all-MiniLM-L6-v2")
    path = tmp_path_factory.mktemp("model")
    model.save(path)
    return model, path


def test_save_load_encode_gives_identical_vectors(saved):
    model, path = saved
    enc = SteerableEncoder.from_pretrained(path)
    expected = model.embed_vectors(Backbone().encode_uncached(TEXTS))
    for d, want in zip([64, 128, 192, 256], expected):
        np.testing.assert_allclose(enc.encode(TEXTS, dim=d), want, atol=1e-6)
    np.testing.assert_array_equal(enc.encode(TEXTS, level="coarse"), enc.encode(TEXTS, dim=64))
    np.testing.assert_array_equal(enc.encode(TEXTS, level="intent"), enc.encode(TEXTS))
    assert enc.encode(TEXTS[0]).shape == (256,)


def test_bad_granularity_is_refused(saved):
    enc = SteerableEncoder.from_pretrained(saved[1])
    with pytest.raises(ValueError, match=r"dim must be one of \[64, 128, 192, 256\], got 100"):
        enc.encode(TEXTS, dim=100)
    with pytest.raises(ValueError, match="unknown level 'genre'"):
        enc.encode(TEXTS, level="genre")
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        SteerableEncoder.from_pretrained(saved[1] / "missing")


def test_the_encoder_moves_the_dial_without_retraining():
    model, x, _ = synthetic_model({"segments": [1, 3], "posterior": {"mix": 0.0, "train_mix": 0.5}}, kind="mlp")
    model.head.posterior["scales"] = [0.01, 0.5]
    enc = SteerableEncoder(model.eval(), backbone=object(), cache=False)
    assert enc.dial == 0.0
    free = model.embed_vectors(x[:50], [8])[0]
    coarse = enc.set_dial(1.0).model.embed_vectors(x[:50], [8])[0]
    assert enc.dial == 1.0 and not np.allclose(free, coarse)
    assert np.linalg.matrix_rank(coarse, tol=1e-4) <= model.hierarchy.num_classes(0)
    with pytest.raises(ValueError):
        enc.set_dial(2.0)
    plain, _, _ = synthetic_model()
    with pytest.raises(ValueError, match="no steerability dial"):
        SteerableEncoder(plain, backbone=object(), cache=False).set_dial(0.5)


def test_fit_trains_and_evaluate_is_a_separate_call(tiny_data_dir):
    data = load_dataset("tiny", tiny_data_dir)
    enc = SteerableEncoder.fit(data, "v5", head="linear", epochs=2, progress=False)
    assert [e["epoch"] for e in enc.history["epochs"]] == [1, 2] and not hasattr(enc, "metrics")
    metrics = enc.evaluate(data)
    assert set(metrics) == {"paper", "standard"}
    assert set(metrics["standard"]["accuracy"]) == {"l0", "l1"}
    assert enc.evaluate(data, seed=42) == metrics  # deterministic
    flat = SteerableEncoder.fit(data, "flat", progress=False)
    assert flat.model.head.kind == "identity" and flat.history == {} and flat.dims[-1] == 384
