"""Training: positives are right, the same seed gives the same numbers, bad settings are refused."""

import copy

import numpy as np
import pytest
import torch

from steerable.heads import FractalHead
from steerable.methods import preset
from steerable.model import SteerableModel
from steerable.training import TrainConfig, train
from steerable.training.loop import BalancedBatches, PositiveSampler

from conftest import synthetic_hierarchy


def test_positive_sampler_draws_another_example_of_the_same_label():
    y = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    sampler = PositiveSampler(y)
    rng = np.random.default_rng(0)
    idx = np.arange(len(y))
    seen = set()
    for _ in range(200):
        pos = sampler(idx, rng)
        assert (y[pos] == y[idx]).all()
        assert (pos != idx)[y[idx] != 2].all()  # label 2 is a singleton: its own positive
        seen.update(zip(idx.tolist(), pos.tolist()))
    assert (0, 1) in seen and (0, 2) in seen and (6, 9) in seen  # every partner gets drawn


def _train_once(seed: int, method: str = "v5"):
    x, y, h = synthetic_hierarchy(per_fine=10)
    torch.manual_seed(seed)
    model = SteerableModel(FractalHead(16, block_dim=8), h, "synthetic")
    hist = train(
        model,
        preset(method),
        x,
        y,
        x[:40],
        y[:40],
        TrainConfig(epochs=2, batch_size=16, lr=1e-3, seed=seed),
        progress=False,
    )
    return model.embed_vectors(x), hist


def test_same_seed_same_numbers():
    (a, ha), (b, hb) = _train_once(7), _train_once(7)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert [e["loss"] for e in ha["epochs"]] == [e["loss"] for e in hb["epochs"]]
    c, _ = _train_once(8)
    assert not np.array_equal(a[-1], c[-1])


def test_history_records_every_epoch_and_the_best():
    _, hist = _train_once(1, "mrl")
    assert [e["epoch"] for e in hist["epochs"]] == [1, 2]
    assert hist["best_epoch"] in (1, 2)
    assert all(np.isfinite(e["loss"]) for e in hist["epochs"])


def test_mismatched_schedule_is_refused():
    x, y, h = synthetic_hierarchy(per_fine=2)
    model = SteerableModel(FractalHead(16, block_dim=8), h, "synthetic")
    with pytest.raises(ValueError, match="schedule 'v5' is for 3 levels, the data has 2"):
        train(model, preset("v5", num_levels=3), x, y, x, y, TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        TrainConfig(epochs=0)


def test_balanced_batches_hold_classes_times_four():
    y = np.repeat(np.arange(30), 7)
    idx = BalancedBatches(y, 64)(np.random.default_rng(0))
    counts = np.bincount(y[idx])
    assert len(idx) == 64 and set(counts[counts > 0]) == {4} and (counts > 0).sum() == 16


@pytest.mark.parametrize("name", ["v5", "mrl", "heal", "bottleneck"])
def test_training_matches_the_plain_per_tensor_loop_bit_for_bit(name):
    """Speed-ups of the loop (the flat optimiser and clipping) may not change a single number: the
    trained weights equal those of the textbook loop (per-tensor AdamW, per-tensor clipping), also where
    a classifier gets no gradient (MRL trains no coarse classifier)."""
    from steerable.training.loop import schedule_loss

    x, y, h = synthetic_hierarchy(per_fine=10)
    sch, cfg = preset(name), TrainConfig(epochs=2, batch_size=16, lr=1e-3, seed=3, select_best=False)
    torch.manual_seed(3)
    fast = SteerableModel.for_schedule(sch, "mlp", 16, h, "synthetic", {"block_dim": 8})
    plain = SteerableModel.for_schedule(sch, "mlp", 16, h, "synthetic", {"block_dim": 8})
    plain.load_state_dict(fast.state_dict())
    train(fast, sch, x, y, x[:40], y[:40], cfg, progress=False)

    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    samplers = {k: PositiveSampler(y[:, k]) for k in sch.supervised_levels()}
    params = list(plain.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    xt = torch.from_numpy(x)
    for _ in range(cfg.epochs):
        plain.train()
        perm = rng.permutation(len(x))
        for s in range(0, len(x), cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            positives = {k: sampler(idx, rng) for k, sampler in samplers.items()}
            loss = schedule_loss(plain, sch, xt, y, idx, positives, rng, cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=False)
            opt.step()
    for (name, a), b in zip(fast.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["v5", "mrl", "heal", "adversarial", "bottleneck", "dial@0.5", "mrl_distill"])
def test_a_head_trains_on_a_gpu_as_on_the_cpu(name):
    """Every loss kind runs on the device; the same batches give the same weights up to the kernels'
    rounding (no dropout: the two devices draw different masks), and the model comes back on the CPU."""
    x, y, h = synthetic_hierarchy(per_fine=10)
    sch = preset(name)
    cfg = TrainConfig.for_schedule(sch, epochs=2, batch_size=16, seed=3, select_best=False)
    torch.manual_seed(3)
    cpu = SteerableModel.for_schedule(sch, "mlp", 16, h, "synthetic", {"block_dim": 8, "dropout": 0.0})
    gpu = copy.deepcopy(cpu)
    train(cpu, sch, x, y, x[:40], y[:40], cfg, progress=False)
    history = train(gpu, sch, x, y, x[:40], y[:40], cfg, progress=False, device="cuda")
    assert all(t.device.type == "cpu" for t in gpu.state_dict().values()) and len(history["epochs"]) == 2
    for (key, a), b in zip(cpu.state_dict().items(), gpu.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-3), key


def test_a_killed_training_resumes_from_its_checkpoint_with_the_same_numbers(tmp_path, monkeypatch):
    import steerable.training.checkpoint as checkpoint_module
    import steerable.training.loop as train_module

    x, y, h = synthetic_hierarchy(per_fine=10)
    sch = preset("v5")
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-3, seed=5, lr_schedule="cosine")

    def fresh():
        torch.manual_seed(5)
        return SteerableModel.for_schedule(sch, "mlp", 16, h, "synthetic", {"block_dim": 8})

    whole = fresh()
    hist = train(whole, sch, x, y, x[:40], y[:40], cfg, progress=False)

    ckpt = tmp_path / "run.checkpoint.safetensors"
    real, calls = train_module.validation_accuracy, []

    def killed_in_epoch_two(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(train_module, "validation_accuracy", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(fresh(), sch, x, y, x[:40], y[:40], cfg, progress=False, checkpoint=ckpt)
    monkeypatch.setattr(train_module, "validation_accuracy", real)
    assert ckpt.exists()  # written after epoch 1
    torch.manual_seed(123)  # the resumed run restores its own random streams
    resumed = fresh()
    hist2 = train(resumed, sch, x, y, x[:40], y[:40], cfg, progress=False, checkpoint=ckpt)
    assert not ckpt.exists()
    assert hist2["epochs"] == [e | {"seconds": e2["seconds"]} for e, e2 in zip(hist["epochs"], hist2["epochs"])]
    assert hist2["best_epoch"] == hist["best_epoch"]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    # a checkpoint of another training (other seed) is ignored
    other = fresh()
    checkpoint_module.save_checkpoint(
        ckpt,
        "another",
        2,
        other,
        torch.optim.AdamW(other.parameters()),
        None,
        np.random.default_rng(0),
        {"epochs": [], "best_epoch": None},
        0.0,
        None,
    )
    again = fresh()
    train(again, sch, x, y, x[:40], y[:40], cfg, progress=False, checkpoint=ckpt)
    for a, b in zip(whole.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
