"""Seeds trained together give each seed exactly what training it alone gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerable.methods import METHODS, preset, trains
from steerable.model import SteerableModel
from steerable.training import TrainConfig, train
from steerable.training.together import train_group, why_not_together

from conftest import synthetic_hierarchy

SEEDS = (3, 11, 42)


def _models(sch, head: str, h, input_dim: int, seeds=SEEDS) -> list[SteerableModel]:
    out = []
    for seed in seeds:  # as a run builds its model: seeded, then built
        torch.manual_seed(seed)
        out.append(SteerableModel.for_schedule(sch, head, input_dim, h, "synthetic", {"block_dim": 8}))
    return out


def _without_timing(history: dict) -> dict:
    history = dict(history)
    history["epochs"] = [{k: v for k, v in e.items() if k != "seconds"} for e in history["epochs"]]
    return history


def _assert_same(
    solo: list[SteerableModel], grouped: list[SteerableModel], solo_h: list[dict], grouped_h: list[dict]
) -> None:
    for a, b, ha, hb in zip(solo, grouped, solo_h, grouped_h):
        for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(va, vb), name
        assert _without_timing(ha) == _without_timing(hb)
        assert not b.training and next(b.parameters()).device.type == "cpu"
        if a.head.posterior:
            assert a.head.posterior == b.head.posterior  # the calibrated scales too


TRAINED = [n + "@0.5" if METHODS[n].needs_setting else n for n in METHODS if trains(n)]


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _solo_and_grouped(name, head: str, batch_size: int, seeds=SEEDS):
    x, y, h = synthetic_hierarchy(per_fine=10)  # 160 rows: batch 13 leaves a last batch of 4, 53 one of 1
    sch = preset(name) if isinstance(name, str) else name
    cfgs = [TrainConfig.for_schedule(sch, epochs=2, batch_size=batch_size, lr=1e-3, seed=s) for s in seeds]
    solo, grouped = _models(sch, head, h, x.shape[1], seeds), _models(sch, head, h, x.shape[1], seeds)
    solo_h = [train(m, sch, x, y, x[:40], y[:40], c, progress=False) for m, c in zip(solo, cfgs)]
    grouped_h = train_group(grouped, sch, [(x, y, x[:40], y[:40])] * len(seeds), cfgs, progress=False)
    return solo, grouped, solo_h, grouped_h


@pytest.mark.parametrize("head", ["mlp", "linear"])
@pytest.mark.parametrize("name", TRAINED)
def test_grouped_seeds_equal_their_solo_trainings_bit_for_bit(name, head, threads):
    """Every trained method of the registry on both stacked heads: every weight (torch.equal), every
    logged loss and validation accuracy, the best epoch and a posterior head's calibration are those
    of three separate trainings, across loss kinds, samplers, learning-rate schedules, block dropout,
    gradient scales, the posterior and prefix options, and a last batch too small for some seeds'
    paths to reach every level (their classifiers then get no gradient, as alone)."""
    threads(1)
    solo, grouped, solo_h, grouped_h = _solo_and_grouped(name, head, batch_size=13)
    _assert_same(solo, grouped, solo_h, grouped_h)
    # the seeds really differ: a group that shared one stream or one model would fail above or here
    assert not torch.equal(grouped[0].head.proj.weight, grouped[1].head.proj.weight)


@pytest.mark.parametrize("name", ["v5", "heal", "bottleneck", "mrl_distill", "proj_anchored", "proj_mrl"])
def test_grouped_seeds_equal_their_solo_trainings_at_two_threads(name, threads):
    """The same at two threads, with a last batch of one row (products of a single row and column)."""
    threads(2)
    _assert_same(*_solo_and_grouped(name, "mlp", batch_size=53))


def test_a_sign_aware_distill_term_groups_bit_for_bit(threads):
    """MRL-distill whose prefix distils as soft signs (a schedule of one's own, not a registry method)."""
    from steerable.methods.matryoshka import prefix_distillation
    from steerable.schedule import Schedule

    base = preset("mrl")
    sch = Schedule("signs", base.terms + (prefix_distillation(2, 4, 3.0, 0.05, sign_slope=1.0),), base.block_keep)
    threads(1)
    _assert_same(*_solo_and_grouped(sch, "mlp", batch_size=13))


def test_each_seed_may_have_its_own_training_data_of_the_same_size():
    """A run's subsample depends on its seed: seeds with different rows (of one size) still group."""
    x, y, h = synthetic_hierarchy(per_fine=12)
    sch = preset("v5")
    seeds = (5, 6)
    cfgs = [TrainConfig(epochs=2, batch_size=16, lr=1e-3, seed=s) for s in seeds]
    data = []
    for s in seeds:
        rows = np.random.default_rng(s).permutation(len(x))[:100]
        data.append((x[rows], y[rows], x[:30], y[:30]))
    solo, grouped = _models(sch, "mlp", h, x.shape[1], seeds), _models(sch, "mlp", h, x.shape[1], seeds)
    solo_h = [train(m, sch, *d, c, progress=False) for m, d, c in zip(solo, data, cfgs)]
    _assert_same(solo, grouped, solo_h, train_group(grouped, sch, data, cfgs, progress=False))


def test_what_cannot_group_is_refused_with_the_reason():
    x, y, h = synthetic_hierarchy(per_fine=10)
    sch = preset("v5")
    cfg = TrainConfig(epochs=1, seed=1)
    mlp = _models(sch, "mlp", h, x.shape[1], (1, 2))
    assert why_not_together(mlp, [cfg, TrainConfig(epochs=1, seed=2)], [100, 100]) is None
    assert "fractal" in why_not_together(_models(sch, "fractal", h, x.shape[1], (1, 2)), [cfg, cfg], [100, 100])
    assert "more than the seed" in why_not_together(mlp, [cfg, TrainConfig(epochs=2, seed=2)], [100, 100])
    assert "bf16" in why_not_together(mlp, [TrainConfig(precision="bf16")] * 2, [100, 100])
    assert "size" in why_not_together(mlp, [cfg, cfg], [100, 90])
    mixed = [mlp[0], _models(sch, "mlp", h, x.shape[1], (2,))[0]]
    mixed[1].head.set_options(segments=[1, 3])
    assert "more than their weights" in why_not_together(mixed, [cfg, cfg], [100, 100])
    with pytest.raises(ValueError, match="size"):
        train_group(mlp, sch, [(x, y, x, y), (x[:50], y[:50], x, y)], [cfg, cfg], progress=False)
