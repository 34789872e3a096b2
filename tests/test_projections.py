"""steerable.projections: closed-form coarse views of the backbone, and the heads and hybrids built on them."""

import numpy as np
import pytest
import torch

from steerable.methods import preset, projection
from steerable.metrics import knn_accuracy
from steerable.model import SteerableModel
from steerable.projections import PROJECTIONS, Scatter, fit_projection
from steerable.training import TrainConfig, train

from conftest import synthetic_hierarchy

WIDTH = 8


@pytest.fixture(scope="module")
def data():
    """Coarse classes in the first half of 32 dims, each fine class's offset in the second half."""
    x, y, h = synthetic_hierarchy(k0=4, branching=4, per_fine=30, dim=32, noise=0.6, seed=3)
    return x, y, h


@pytest.mark.parametrize("kind,setting", [("pca", None), ("gep", 1.0), ("nuisance", 8), ("lda", 4.0)])
def test_every_projection_keeps_every_direction_and_is_deterministic(data, kind, setting):
    x, y, _ = data
    mean, c = fit_projection(kind, x, y, WIDTH, setting)
    assert c.shape == (32, 32) and np.linalg.matrix_rank(c) == 32  # the full vector loses nothing
    np.testing.assert_allclose(mean, x.mean(0), atol=1e-6)
    again = fit_projection(kind, x, y, WIDTH, setting)[1]
    np.testing.assert_array_equal(c, again)
    rest = c[WIDTH:]  # the principal axes of what the prefix leaves out: orthonormal, orthogonal to it
    np.testing.assert_allclose(rest @ rest.T, np.eye(32 - WIDTH), atol=1e-8)
    np.testing.assert_allclose(rest @ c[:WIDTH].T, 0, atol=1e-8)
    if kind in ("pca", "nuisance"):  # orthonormal prefix too: the full vector is the backbone, rotated
        np.testing.assert_allclose(c @ c.T, np.eye(32), atol=1e-8)


def test_nuisance_removal_leaves_out_the_directions_fine_classes_spread_along(data):
    x, y, _ = data
    s = Scatter(x, y)
    _, c = fit_projection("nuisance", x, y, WIDTH, 3)
    top = np.linalg.eigh(s.nuisance)[1][:, -3:]
    np.testing.assert_allclose(c[:WIDTH] @ top, 0, atol=1e-8)
    assert np.trace(c[:WIDTH] @ s.nuisance @ c[:WIDTH].T) < 0.2 * np.trace(s.nuisance)


def _accuracy(x, y, c, mean, width):
    z = (x - mean) @ c[:width].T
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return knn_accuracy(z[::2], y[::2], z[1::2], y[1::2])


def test_a_projected_prefix_tells_the_coarse_class_and_not_the_fine_one_where_pca_tells_both(data):
    x, y, _ = data
    pca = _accuracy(x, y, fit_projection("pca", x, y, WIDTH)[1], x.mean(0), WIDTH)
    for kind, setting in (("gep", 1.0), ("nuisance", 12)):
        mean, c = fit_projection(kind, x, y, WIDTH, setting)
        acc = _accuracy(x, y, c, mean, WIDTH)
        assert acc[0] > 0.9 and acc[1] < pca[1] - 0.3, (kind, acc, pca)
    assert pca[0] > 0.9 and pca[1] > 0.7


def test_bad_projections_and_settings_are_refused(data):
    x, y, _ = data
    with pytest.raises(ValueError, match="unknown projection 'svd'; choose from pca, gep, nuisance, lda"):
        fit_projection("svd", x, y, WIDTH)
    with pytest.raises(ValueError, match="the gep projection is fitted on labelled training vectors"):
        fit_projection("gep", x, None, WIDTH, 1.0)
    with pytest.raises(ValueError, match="a 32-d prefix needs more than 32 input dims"):
        fit_projection("pca", x, y, 32)
    with pytest.raises(ValueError, match="gep's λ must be at least 0, got -1"):
        projection("gep", -1.0)
    with pytest.raises(ValueError, match="nuisance's setting must be at least 1, got 0.5"):
        preset("nuisance@0.5")
    assert set(PROJECTIONS) == {"pca", "gep", "nuisance", "lda"}


def _hybrid(name, data, epochs=1):
    x, y, h = data
    schedule = preset(name)
    torch.manual_seed(0)
    model = SteerableModel.for_schedule(
        schedule, "mlp", x.shape[1], h, "synthetic", {"num_blocks": 4, "block_dim": WIDTH}
    )
    train(
        model, schedule, x, y, x[:40], y[:40], TrainConfig.for_schedule(schedule, epochs=epochs, seed=0), progress=False
    )
    return model.eval()


def _first_block(model, x):
    with torch.no_grad():
        return model.head.blocks(torch.from_numpy(x))[:, 0].numpy()


def test_a_fixed_prefix_is_the_projection_and_training_leaves_it_as_it_is(data):
    x, y, _ = data
    model = _hybrid("proj_mrl", data, epochs=2)
    kind, setting = model.head.prefix["projection"], model.head.prefix["setting"]
    mean, c = fit_projection(kind, x, y, WIDTH, setting)
    np.testing.assert_allclose(_first_block(model, x), (x - mean) @ c[:WIDTH].T, atol=1e-4)
    assert not any(n.startswith("head.prefix") for n, _ in model.named_parameters())


def test_an_initialised_prefix_starts_at_the_projection_and_trains(data):
    x, y, h = data
    schedule = preset("proj_anchored")
    torch.manual_seed(0)
    model = SteerableModel.for_schedule(
        schedule, "mlp", x.shape[1], h, "synthetic", {"num_blocks": 4, "block_dim": WIDTH}
    )
    model.head.fit(torch.from_numpy(x), y)
    mean, c = fit_projection(model.head.prefix["projection"], x, y, WIDTH, model.head.prefix["setting"])
    start = _first_block(model, x)
    np.testing.assert_allclose(start, (x - mean) @ c[:WIDTH].T, atol=1e-4)
    trained = _hybrid("proj_anchored", data)
    assert not np.allclose(_first_block(trained, x), start, atol=1e-3)  # it moved


def test_the_blend_mixes_pca_and_the_trained_prefix_when_encoding(data):
    x, y, _ = data
    model = _hybrid("blend@0.5", data)
    mean, c = fit_projection("pca", x, y, WIDTH)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        free = model.head.features_and_blocks(xt)[1][:, 0]
        pca = (xt - torch.from_numpy(mean).float()) @ torch.from_numpy(c[:WIDTH]).float().T
        expected = 0.5 * torch.nn.functional.normalize(free, dim=-1) + 0.5 * torch.nn.functional.normalize(pca, dim=-1)
    np.testing.assert_allclose(_first_block(model, x), expected.numpy(), atol=1e-5)
    model.head.prefix["mix"] = 0.0  # PCA's prefix alone
    np.testing.assert_allclose(
        _first_block(model, x) / np.linalg.norm(_first_block(model, x), axis=1, keepdims=True),
        torch.nn.functional.normalize(pca, dim=-1).numpy(),
        atol=1e-5,
    )
