"""Invariants every head keeps under every method: shapes, unit length, the prefix definition,
per-example prefix lengths, save/load. One parametrized matrix: head kind x method."""

import numpy as np
import pytest
import torch

from steerable.heads import HEADS, FractalHead, IdentityHead, build_head
from steerable.methods import METHODS, preset
from steerable.model import SteerableModel
from steerable.training import TrainConfig, train

from conftest import synthetic_hierarchy

METHOD_NAMES = [m for m in METHODS if m != "dial"] + ["dial@0.5"]
INPUT_DIM, BLOCK = 40, 8  # the identity head needs more input dims than its first three blocks


def _combos():
    """(head kind, method) pairs a run can build: a method that needs a head kind gets only that one,
    and a head with nothing to train (identity, PCA) serves only the methods that train nothing."""
    for kind in sorted(HEADS):
        for name in METHOD_NAMES:
            s = preset(name)
            if (s.head or kind) == kind and (HEADS[kind].trainable or not s.trains):
                yield kind, name


@pytest.fixture(scope="module")
def data():
    x, y, h = synthetic_hierarchy(per_fine=12, dim=INPUT_DIM, seed=1)
    return x, y, h


def _model(kind: str, name: str, data) -> SteerableModel:
    """The model a run builds, after one short epoch of the method's training (if it trains)."""
    x, y, h = data
    schedule = preset(name)
    torch.manual_seed(0)
    model = SteerableModel.build(
        kind, INPUT_DIM, h, "synthetic", schedule.head_options | {"num_blocks": 4, "block_dim": BLOCK}
    )
    cfg = TrainConfig.for_schedule(schedule, epochs=1, batch_size=32, seed=0)
    train(model, schedule, x, y, x[:40], y[:40], cfg, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def models(data):
    return {}


def _cached(models, kind, name, data):
    if (kind, name) not in models:
        models[(kind, name)] = _model(kind, name, data)
    return models[(kind, name)]


@pytest.mark.parametrize("kind,name", list(_combos()))
def test_invariants(kind, name, data, models, tmp_path):
    x = data[0][:30]
    model = _cached(models, kind, name, data)
    dims = model.dims
    embs = model.embed_vectors(x)
    assert [e.shape for e in embs] == [(30, d) for d in dims]
    for e in embs:
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():  # the head's own forward agrees with the model's batched embedding
        np.testing.assert_allclose(model.head(torch.from_numpy(x), dim=dims[1]).numpy(), embs[1], atol=1e-6)

    truncated = embs[-1][:, : dims[0]] / np.linalg.norm(embs[-1][:, : dims[0]], axis=1, keepdims=True)
    if model.head.prefix_is_truncation:
        np.testing.assert_allclose(embs[0], truncated, atol=1e-5)
    else:  # the fractal head's full vector has a final LayerNorm its prefixes do not
        assert not np.allclose(embs[0], truncated, atol=1e-3)

    with torch.no_grad():  # per-example prefix lengths (as training samples them) match fixed ones
        blocks = model.head.blocks(torch.from_numpy(x))
        j = torch.tensor([1, 2, 3, 4] * 7 + [1, 2])
        mixed = model.head.embed(blocks, j)
        for n in range(1, 5):
            np.testing.assert_allclose(mixed[j == n].numpy(), model.head.embed(blocks, n)[j == n].numpy(), atol=1e-6)

    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = SteerableModel.load(tmp_path)
    for a, b in zip(embs, loaded.embed_vectors(x)):
        np.testing.assert_array_equal(a, b)
    assert loaded.hierarchy.classes == model.hierarchy.classes
    assert build_head(model.head.get_config_dict()).get_config_dict() == model.head.get_config_dict()


def test_every_head_and_method_is_in_the_matrix():
    combos = set(_combos())
    assert {k for k, _ in combos} == set(HEADS)
    assert {m for _, m in combos} == set(METHOD_NAMES)
    assert ("identity", "flat") in combos and ("mlp", "flat") not in combos and ("pca", "flat_pca") in combos


def test_flat_is_the_identity_head_on_the_raw_vector():
    x = np.random.default_rng(0).normal(size=(5, INPUT_DIM)).astype(np.float32)
    head = IdentityHead(INPUT_DIM, block_dim=BLOCK)
    assert head.prefix_dims == [8, 16, 24, INPUT_DIM] and sum(p.numel() for p in head.parameters()) == 0
    with torch.no_grad():
        for d in head.prefix_dims:
            expected = x[:, :d] / np.linalg.norm(x[:, :d], axis=1, keepdims=True)
            np.testing.assert_allclose(head(torch.from_numpy(x), dim=d).numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs more than 24 input dims, got 24"):
        IdentityHead(24, block_dim=BLOCK)
    with pytest.raises(ValueError, match="takes no segments, posterior or prefix options"):
        IdentityHead(INPUT_DIM, block_dim=BLOCK).set_options(segments=(1, 3))
    x, y, h = synthetic_hierarchy(dim=INPUT_DIM)
    model = SteerableModel.build("identity", INPUT_DIM, h, "synthetic", {"block_dim": BLOCK})
    with pytest.raises(ValueError, match="the identity head has nothing to train"):
        train(model, preset("v5"), x, y, x, y, TrainConfig(epochs=1), progress=False)


def test_fractal_head_matches_the_original_layout():
    head = FractalHead(384)
    n_params = sum(p.numel() for p in head.parameters())
    # the original's ~2.07M with classifiers, less the 295,680 query/key weights that a one-token
    # input never uses
    assert 1_700_000 < n_params < 1_800_000
    assert head.prefix_dims == [64, 128, 192, 256]


def test_bad_dims_are_rejected():
    head = FractalHead(16, block_dim=8)
    with pytest.raises(ValueError, match=r"dim must be one of \[8, 16, 24, 32\], got 10"):
        head(torch.zeros(1, 16), dim=10)
    with pytest.raises(ValueError, match="num_blocks must be at least 2"):
        FractalHead(16, num_blocks=1)
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        build_head({"kind": "nope"})


def test_level_dims_map_prefixes_to_levels():
    _, _, h = synthetic_hierarchy()
    model = SteerableModel(HEADS["linear"](16, num_blocks=4, block_dim=8), h, "synthetic")
    assert model.level_dims() == {"l0": 8, "l1": 32}


def test_pca_head_prefix_is_the_top_principal_components():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, INPUT_DIM)) * np.linspace(3, 0.1, INPUT_DIM)).astype(np.float32)
    x = x @ np.linalg.qr(rng.normal(size=(INPUT_DIM, INPUT_DIM)))[0].astype(np.float32) + 5.0  # rotated, shifted
    head = HEADS["pca"](INPUT_DIM, block_dim=BLOCK)
    head.fit(torch.from_numpy(x))
    with torch.no_grad():
        z = head.blocks(torch.from_numpy(x)).numpy()
    var = z.var(axis=0, ddof=1)
    assert (np.diff(var) <= 1e-3).all()  # largest variance first
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-3)
    centred = x - x.mean(0)
    np.testing.assert_allclose(
        var[:8].sum(),
        np.linalg.svd(centred, compute_uv=False)[:8] @ np.linalg.svd(centred, compute_uv=False)[:8] / (len(x) - 1),
        rtol=1e-3,
    )


def test_coarse_onehot_prefix_is_one_prototype_per_predicted_class(data):
    x, y, h = data
    model = _model("mlp", "coarse_onehot", data)
    prefix = model.embed_vectors(x, [BLOCK])[0]
    assert len(np.unique(prefix.round(5), axis=0)) <= h.num_classes(0)  # one vector per coarse class
