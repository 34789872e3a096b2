"""Beyond V5: the extended schedule vocabulary (SupCon, stop-gradient, suffix spans, within-parent
contrast, the coarse-posterior prefix, segments), the new presets and the dial."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steerable.evaluate import accuracy_table, linear_probe, standard_protocol, steerability
from steerable.heads import LinearHead, MLPHead
from steerable.losses import posterior_nll, supcon
from steerable.model import SteerableModel
from steerable.methods import adversarial, dial, mrl_reference, parse_dial, preset
from steerable.schedule import Schedule, Term
from steerable.train import BalancedBatches, TrainConfig, schedule_loss, train

from conftest import synthetic_hierarchy, train_synthetic_preset


def test_supcon_matches_a_hand_computed_value():
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), dim=-1)
    y = torch.tensor([0, 0, 1])
    loss = supcon(e, y, temperature=1.0)
    s = (e @ e.T).numpy()
    want0 = -(s[0, 1] - math.log(math.exp(s[0, 1]) + math.exp(s[0, 2])))
    assert loss[0].item() == pytest.approx(want0, rel=1e-5)
    assert loss[2].item() == 0.0  # no positive in the batch


def test_supcon_within_drops_other_parents_from_the_denominator_and_siblings_weigh_more():
    e = torch.nn.functional.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    fine = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    coarse = fine // 2
    plain = supcon(e, fine, 0.5)
    within = supcon(e, fine, 0.5, within=coarse)
    assert (within < plain).all()  # fewer terms in every denominator
    hard = supcon(e, fine, 0.5, siblings=coarse, sibling_weight=1.3)
    assert (hard > plain).all()


def test_posterior_nll_sums_children_and_reduces_to_cross_entropy():
    logits = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 5])
    ident = torch.arange(6)
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(posterior_nll(logits, ident, y), ce, atol=1e-6)
    parents = torch.tensor([0, 0, 0, 1, 1, 1])
    p = logits.softmax(-1)
    want = -torch.log(torch.stack([p[:, :3].sum(1), p[:, 3:].sum(1)], 1))[torch.arange(5), y // 3]
    assert torch.allclose(posterior_nll(logits, parents, y // 3), want, atol=1e-6)


def _model(head_options=None, seed=0, kind="linear"):
    x, y, h = synthetic_hierarchy()
    torch.manual_seed(seed)
    return SteerableModel.build(kind, x.shape[1], h, "synthetic", {"num_blocks": 4, "block_dim": 8}
                                | (head_options or {})), x, y


def test_grad_scale_zero_keeps_a_terms_gradient_off_the_first_block():
    model, x, y = _model()
    fine_full = Term((0, 0, 0, 1), ((0, 1),) * 4, loss="supcon", temperature=0.1, ce_weight=0.0,
                     grad=(0, 1, 1, 1))
    sch = Schedule("t", (fine_full,))
    idx = np.arange(64)
    rng = np.random.default_rng(0)
    from steerable.train import PositiveSampler
    pos = {1: PositiveSampler(y[:, 1])(idx, rng)}
    schedule_loss(model, sch, torch.from_numpy(x), y, idx, pos, rng, TrainConfig().loss).backward()
    g = model.head.proj.weight.grad
    assert g[:8].abs().max() == 0 and g[8:].abs().max() > 0


def test_a_negative_grad_scale_reverses_the_gradient_on_that_block_only():
    from steerable.train import PositiveSampler

    def grad(scale):
        model, x, y = _model()
        term = Term((0, 0, 0, 1), ((0, 1),) * 4, loss="supcon", temperature=0.1, ce_weight=0.0,
                    grad=(scale, 1, 1, 1))
        idx, rng = np.arange(64), np.random.default_rng(0)
        pos = {1: PositiveSampler(y[:, 1])(idx, rng)}
        schedule_loss(model, Schedule("t", (term,)), torch.from_numpy(x), y, idx, pos, rng,
                      TrainConfig().loss).backward()
        return model.head.proj.weight.grad

    plain, reversed_ = grad(1.0), grad(-0.5)
    assert plain[:8].abs().max() > 0
    assert torch.allclose(reversed_[:8], -0.5 * plain[:8], atol=1e-6)  # block 1: scaled and flipped
    assert torch.allclose(reversed_[8:], plain[8:], atol=1e-6)  # the other blocks: untouched


def _synthetic_accuracy(name: str, **overrides) -> np.ndarray:
    """k-NN accuracy[level, step] of the 8-d prefix (step 0) and the full 32-d vector (step 1) of
    preset ``name`` trained on a synthetic hierarchy, on its held-out third."""
    (short_tr, full_tr), (short_te, full_te), y_tr, y_te = train_synthetic_preset(name, **overrides)
    return accuracy_table([short_te, full_te], y_te, standard_protocol(), [short_tr, full_tr], y_tr)


def test_the_adversarial_prefix_learns_less_of_the_fine_label_than_separated():
    """Same data, seed and recipe; the only difference is the reversed within-coarse fine term on the
    prefix. Its prefix must keep the coarse label and lose fine-label neighbours."""
    adv, sep = (_synthetic_accuracy(name, epochs=8)[:, 0] for name in ("adversarial", "separated"))
    assert adv[0] > 0.9  # coarse kept
    assert adv[1] < sep[1] - 0.1  # fine neighbourhoods broken up


def test_adversarial_in_the_mrl_recipe_steers_the_prefix_and_keeps_mrls_full_vector():
    """Adversarial (MRL recipe) against the paper's MRL, same data, seed and recipe: its prefix keeps
    the coarse label and loses the fine one, while the full vector classifies the fine label as well."""
    adv, mrl = (_synthetic_accuracy(name, epochs=8, lr=1e-3) for name in ("adversarial_mrl", "mrl"))
    assert adv[0, 0] > 0.9 and adv[1, 0] < mrl[1, 0] - 0.1  # coarse kept, fine lost on the prefix
    assert adv[1, 1] > mrl[1, 1] - 0.05  # the full vector still knows the fine label


def test_segments_keep_the_prefix_a_truncation_and_weigh_segments_equally():
    model, x, _ = _model({"segments": [1, 3]}, kind="mlp")
    full, short = model.embed_vectors(x[:20], [32, 8])
    assert np.allclose(np.linalg.norm(full[:, :8], axis=1), math.sqrt(0.5), atol=1e-5)
    trunc = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert np.allclose(trunc, short, atol=1e-5)


def test_posterior_prefix_is_a_function_of_the_coarse_posterior(tmp_path):
    model, x, _ = _model({"posterior": {"mix": 1.0}}, kind="mlp")
    short, full = model.embed_vectors(x, [8, 32])
    k0 = model.hierarchy.num_classes(0)
    assert np.linalg.matrix_rank(short, tol=1e-4) <= k0 < 8  # lives in the span of k0 prototypes
    model.save(tmp_path)
    again = SteerableModel.load(tmp_path)
    assert again.head.posterior["parents"] == model.hierarchy.fine_to_level(0).tolist()
    assert np.allclose(again.embed_vectors(x, [32])[0], full, atol=1e-6)


def test_posterior_mix_zero_is_the_free_block():
    model, x, _ = _model({"posterior": {"mix": 0.0}}, kind="mlp")
    model.eval()
    blocks, logits = model.head.outputs(torch.from_numpy(x[:5]))
    _, raw = model.head.features_and_blocks(torch.from_numpy(x[:5]))
    assert torch.allclose(blocks[:, 0], torch.nn.functional.normalize(raw[:, 0], dim=-1), atol=1e-6)
    assert logits.shape == (5, model.hierarchy.num_classes(1))


def test_presets_round_trip_as_json_and_the_dial_parses():
    for name in ("heal", "separated", "successive", "successive_balanced", "adversarial", "adversarial_mrl",
                 "bottleneck", "dial@0.25"):
        s = preset(name)
        assert Schedule.from_dict(s.to_dict()) == s
    assert parse_dial("dial@0.5") == parse_dial("dial0.5") == 0.5 and parse_dial("v5") is None
    assert preset("dial=0.3").name == "dial@0.3"
    with pytest.raises(ValueError):
        dial(1.5)
    # every dial setting trains the same model; only the encoding mix differs
    assert dial(0.0).terms == dial(1.0).terms and dial(0.0).recipe == dial(1.0).recipe
    assert dial(0.3).head_options["posterior"] == {"mix": 0.3, "train_mix": 0.5}
    assert preset("bottleneck").terms[1].grad[0] == 0.0 and dial(0.3).terms[1].grad[0] == 0.5
    # accuracy bounds compare each method with the MRL trained the same way too
    assert [mrl_reference(m) for m in ("adversarial_mrl", "v5", "heal", "dial@0.75", "successive_balanced")] \
        == ["mrl", "mrl", "mrl_supcon", "mrl_supcon", "mrl_supcon"]
    assert preset("adversarial_mrl").recipe == {} and preset("adversarial_mrl").terms[0].grad[0] == 0.0


def test_bad_terms_are_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        Term((1.0, 0.0), ((1, 0), (1, 0)), loss="focal")
    with pytest.raises(ValueError, match="start"):
        Term((0.5, 0.5), ((1, 0), (1, 0)), start=1)
    with pytest.raises(ValueError, match="grad"):
        Term((0.0, 1.0), ((1, 0), (1, 0)), grad=(0.5,))
    with pytest.raises(ValueError, match="grad"):
        Term((0.0, 1.0), ((1, 0), (1, 0)), grad=(-1.5, 1))
    with pytest.raises(ValueError, match="strength"):
        adversarial(strength=0.0)
    with pytest.raises(ValueError, match="unknown fields"):
        Schedule.from_dict({"terms": [{"probs": [1.0], "levels": [[1]], "detach": True}]})


def test_balanced_batches_hold_classes_times_four():
    y = np.repeat(np.arange(30), 7)
    idx = BalancedBatches(y, 64)(np.random.default_rng(0))
    counts = np.bincount(y[idx])
    assert len(idx) == 64 and set(counts[counts > 0]) == {4} and (counts > 0).sum() == 16


def test_linear_probe_reads_a_linearly_coded_label_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 600)
    signal = np.eye(5)[y] + 0.1 * rng.normal(size=(600, 5))
    assert linear_probe(signal[:400], y[:400], signal[400:], y[400:]) > 0.95
    noise = rng.normal(size=(600, 5))
    assert linear_probe(noise[:400], y[:400], noise[400:], y[400:]) < 0.4


def _fit(method: str, seed: int, mixes=(None,)):
    x, y, h = synthetic_hierarchy(noise=0.4)
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(x))
    tr, va, te = idx[: len(x) // 2], idx[len(x) // 2: 3 * len(x) // 4], idx[3 * len(x) // 4:]
    sch = preset(method)
    torch.manual_seed(seed)
    model = SteerableModel.build("mlp", x.shape[1], h, "synthetic",
                                 {"num_blocks": 4, "block_dim": 8, "hidden_dim": 32} | sch.head_options)
    train(model, sch, x[tr], y[tr], x[va], y[va],
          TrainConfig.for_schedule(sch, epochs=30, seed=seed, select_best=False), progress=False)
    out = []
    for mix in mixes:
        if mix is not None:
            model.head.posterior["mix"] = mix
        acc = accuracy_table(model.embed_vectors(x[te]), y[te], standard_protocol(),
                             model.embed_vectors(x[tr]), y[tr])
        probe = linear_probe(model.embed_vectors(x[tr], [8])[0], y[tr, 1],
                             model.embed_vectors(x[te], [8])[0], y[te, 1])
        out.append((steerability(acc), probe))
    return out if len(mixes) > 1 else out[0]


@pytest.fixture(scope="module")
def fitted():
    return {m: _fit(m, 1) for m in ("heal", "bottleneck")} | {"dial": _fit("dial@0", 1, (0.0, 0.5, 1.0))}


def test_bottleneck_prefix_is_coarse_only_and_heal_is_not(fitted):
    (heal, heal_probe), (bott, bott_probe) = fitted["heal"], fitted["bottleneck"]
    assert bott["steerability_score"] > heal["steerability_score"] + 0.15, (heal, bott)
    assert bott_probe < heal_probe - 0.1, (heal_probe, bott_probe)
    assert bott["short_coarse"] > 0.9 and bott["full_fine"] > 0.8, bott


def test_the_dial_moves_one_trained_model_from_fine_to_coarse(fitted):
    (d0, p0), (d5, p5), (d1, p1) = fitted["dial"]
    s = [d["steerability_score"] for d in (d0, d5, d1)]
    assert s[0] < s[1] < s[2] and s[2] - s[0] > 0.15, s
    assert p0 > p5 > p1 and p0 - p1 > 0.1, (p0, p5, p1)


def test_the_encoder_moves_the_dial_without_retraining():
    from steerable.encoder import SteerableEncoder

    model, x, _ = _model({"segments": [1, 3], "posterior": {"mix": 0.0, "train_mix": 0.5}}, kind="mlp")
    model.head.posterior["scales"] = [0.01, 0.5]
    enc = SteerableEncoder(model.eval(), backbone=object(), cache=False)
    assert enc.dial == 0.0
    free = model.embed_vectors(x[:50], [8])[0]
    coarse = enc.set_dial(1.0).model.embed_vectors(x[:50], [8])[0]
    assert enc.dial == 1.0 and not np.allclose(free, coarse)
    assert np.linalg.matrix_rank(coarse, tol=1e-4) <= model.hierarchy.num_classes(0)
    with pytest.raises(ValueError):
        enc.set_dial(2.0)
    plain, _, _ = _model()
    with pytest.raises(ValueError, match="no steerability dial"):
        SteerableEncoder(plain, backbone=object(), cache=False).set_dial(0.5)
