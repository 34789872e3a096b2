"""Invariants every head must keep: shapes, unit length, prefix definition, save/load."""

import numpy as np
import pytest
import torch

from steerable.heads import HEADS, FractalHead, build_head
from steerable.model import SteerableModel

from conftest import synthetic_hierarchy


def _model(kind: str) -> SteerableModel:
    torch.manual_seed(0)
    _, _, h = synthetic_hierarchy()
    return SteerableModel(HEADS[kind](16, num_blocks=4, block_dim=8), h, "synthetic").eval()


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_shapes_and_unit_length(kind, x):
    model = _model(kind)
    embs = model.embed_vectors(x)
    assert [e.shape for e in embs] == [(20, 8), (20, 16), (20, 24), (20, 32)]
    for e in embs:
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(model.head(torch.from_numpy(x), dim=16).numpy(), embs[1], atol=1e-6)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_prefix_is_renormalised_truncation_where_the_head_says_so(kind, x):
    model = _model(kind)
    full, short = model.embed_vectors(x, [32, 8])
    truncated = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    if model.head.prefix_is_truncation:
        np.testing.assert_allclose(short, truncated, atol=1e-5)
    else:  # the fractal head's full vector has a final LayerNorm the prefix does not
        assert not np.allclose(short, truncated, atol=1e-3)
        with torch.no_grad():
            blocks = model.head.blocks(torch.from_numpy(x)).numpy()
        first = blocks[:, 0] / np.linalg.norm(blocks[:, 0], axis=1, keepdims=True)
        np.testing.assert_allclose(short, first, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_per_example_prefix_lengths_match_fixed_ones(kind, x):
    model = _model(kind).eval()
    with torch.no_grad():
        blocks = model.head.blocks(torch.from_numpy(x))
        j = torch.tensor([1, 2, 3, 4] * 5)
        mixed = model.head.embed(blocks, j)
        for n in range(1, 5):
            rows = j == n
            np.testing.assert_allclose(mixed[rows].numpy(), model.head.embed(blocks, n)[rows].numpy(),
                                       atol=1e-6)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_save_load_gives_identical_vectors(kind, x, tmp_path):
    model = _model(kind)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = SteerableModel.load(tmp_path)
    for a, b in zip(model.embed_vectors(x), loaded.embed_vectors(x)):
        np.testing.assert_array_equal(a, b)
    assert loaded.hierarchy.classes == model.hierarchy.classes
    assert build_head(model.head.get_config_dict()).get_config_dict() == model.head.get_config_dict()


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
    model = _model("linear")
    assert model.level_dims() == {"l0": 8, "l1": 32}
