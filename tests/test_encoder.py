"""SteerableEncoder: a saved run folder loads back and encodes texts at any prefix or level."""

import numpy as np
import pytest
import torch

from steerable import Backbone, FractalHead, SteerableEncoder, SteerableModel
from steerable.data import Hierarchy

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
