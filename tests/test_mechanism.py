"""The mechanism on a synthetic hierarchy in embedding space (no backbone).

V5 (short prefix -> coarse, full -> fine) must be steerable, MRL (every prefix -> fine) must not,
and the Inverted ablation must flip the sign.
"""

import numpy as np
import pytest
import torch

from steerable.evaluate import accuracy_table, standard_protocol, steerability
from steerable.heads import LinearHead
from steerable.model import SteerableModel
from steerable.methods import preset
from steerable.train import TrainConfig, train

from conftest import synthetic_hierarchy


def _steerability(method: str, seed: int) -> float:
    x, y, h = synthetic_hierarchy()
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(x))
    tr, va, te = idx[: len(x) // 2], idx[len(x) // 2: 3 * len(x) // 4], idx[3 * len(x) // 4:]
    torch.manual_seed(seed)
    model = SteerableModel(LinearHead(x.shape[1], num_blocks=4, block_dim=8), h, "synthetic")
    train(model, preset(method), x[tr], y[tr], x[va], y[va],
          TrainConfig(epochs=10, batch_size=32, lr=3e-3, seed=seed, select_best=False), progress=False)
    acc = accuracy_table(model.embed_vectors(x[te]), y[te], standard_protocol(),
                         model.embed_vectors(x[tr]), y[tr])
    return steerability(acc)["steerability_score"]


@pytest.fixture(scope="module")
def scores():
    return {m: np.mean([_steerability(m, s) for s in (1, 2, 3)]) for m in ("v5", "mrl", "inverted")}


def test_v5_is_steerable(scores):
    assert scores["v5"] > 0.15, scores


def test_mrl_is_not_steerable(scores):
    assert abs(scores["mrl"]) < 0.05, scores


def test_inverted_flips_the_sign(scores):
    assert scores["inverted"] < -0.05, scores
    assert scores["v5"] > scores["mrl"] > scores["inverted"]
