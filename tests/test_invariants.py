"""The invariants every method keeps, whatever the hierarchy's depth and the head's number of blocks: a
prefix is the renormalised truncation of the full vector where the head says so; save -> load gives the
same vectors bit for bit; the sentence-transformers export (its head modules, saved and loaded back)
gives the same vectors. One parametrised matrix: method x {2, 3 levels} x {2, 4, 8 blocks}."""

import numpy as np
import pytest
import torch

from steerable.data import Hierarchy
from steerable.export import exported_head
from steerable.methods import METHODS, preset
from steerable.model import SteerableModel
from steerable.training import TrainConfig, train

METHOD_NAMES = [m for m in METHODS if m != "dial"] + ["dial@0.5"]
BLOCK, INPUT_DIM = 8, 72  # the identity head needs more input dims than all but its last block


def _hierarchy_data(levels: int, seed: int = 0):
    """(x, labels, hierarchy): 3 coarse classes of 2 children (of 2 grandchildren with three levels), 12
    examples of each finest class, classes apart in the first dims, children in the next ones."""
    rng = np.random.default_rng(seed)
    n_fine = 6 if levels == 2 else 12
    fine = np.repeat(np.arange(n_fine), 12)
    parents = [np.arange(n_fine) // 2] if levels == 2 else [np.arange(6) // 2, np.arange(12) // 2]
    chain = [fine]
    for p in reversed(parents):
        chain.insert(0, p[chain[0]])
    labels = np.stack(chain, axis=1)
    centres = [rng.normal(size=(labels[:, k].max() + 1, INPUT_DIM)) for k in range(levels)]
    x = sum(c[labels[:, k]] for k, c in enumerate(centres)) + 0.3 * rng.normal(size=(len(fine), INPUT_DIM))
    names = tuple(f"l{k}" for k in range(levels))
    classes = tuple(tuple(f"c{k}_{i}" for i in range(labels[:, k].max() + 1)) for k in range(levels))
    return x.astype(np.float32), labels, Hierarchy(names, classes, tuple(p.astype(np.int64) for p in parents))


def _model(name: str, levels: int, blocks: int) -> tuple[SteerableModel, np.ndarray]:
    x, y, h = _hierarchy_data(levels)
    schedule = preset(name, levels, blocks)
    torch.manual_seed(0)
    model = SteerableModel.for_schedule(
        schedule, "mlp", INPUT_DIM, h, "synthetic", {"num_blocks": blocks, "block_dim": BLOCK}
    )
    cfg = TrainConfig.for_schedule(schedule, epochs=1, batch_size=16, seed=0)
    train(model, schedule, x, y, x[::5], y[::5], cfg, progress=False)  # fits a fitted head, trains the rest
    return model.eval(), x[:20]


@pytest.mark.parametrize("blocks", [2, 4, 8])
@pytest.mark.parametrize("levels", [2, 3])
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_keeps_its_prefixes_through_save_load_and_export(name, levels, blocks, tmp_path):
    model, x = _model(name, levels, blocks)
    embs = model.embed_vectors(x)
    assert len(embs) == blocks and [e.shape[1] for e in embs] == model.dims
    full = embs[-1]
    if model.head.prefix_is_truncation:
        for e, d in zip(embs[:-1], model.dims[:-1]):
            truncated = full[:, :d] / np.linalg.norm(full[:, :d], axis=1, keepdims=True)
            np.testing.assert_allclose(e, truncated, atol=1e-5)

    model.save(tmp_path / "model")
    loaded = SteerableModel.load(tmp_path / "model")
    for a, b in zip(embs, loaded.embed_vectors(x)):
        np.testing.assert_array_equal(a, b)

    features = {"sentence_embedding": torch.from_numpy(x)}
    for i, module in enumerate(exported_head(model)):  # each saved and loaded back as the export does
        folder = tmp_path / f"module{i}"
        folder.mkdir()
        module.save(str(folder))
        features = type(module).load(str(folder))(features)
    np.testing.assert_allclose(features["sentence_embedding"].detach().numpy(), full, atol=1e-5)
