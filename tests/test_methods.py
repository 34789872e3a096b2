"""steerable.methods: what each preset trains, the one registry of names and labels, and what the
methods do when trained on a synthetic hierarchy in embedding space (no backbone): V5 steers and MRL
does not, the coarse-only prefixes lose the fine label, the dial moves one model, a distilled prefix
shortlists for its own full vector."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from steerable.heads import LinearHead
from steerable.methods import (
    METHODS,
    adversarial,
    dial,
    display_order,
    label,
    method,
    mrl_reference,
    parse_dial,
    preset,
)
from steerable.methods.parts import prefix_probs
from steerable.metrics import accuracy_table, linear_probe, standard_protocol, steerability
from steerable.model import SteerableModel
from steerable.schedule import Schedule
from steerable.training import TrainConfig, train

from conftest import synthetic_hierarchy, synthetic_model, train_synthetic_preset


def test_v5_trains_the_sampled_prefix_on_coarse_and_the_full_vector_on_fine():
    s = preset("v5")
    full, prefix = s.terms
    assert full.probs == (0, 0, 0, 1) and full.block_dropout and full.levels[3] == (0, 1)
    assert prefix.sample and prefix.probs == pytest.approx((0.4, 0.3, 0.2, 0.1))
    assert prefix.weight == 0.6 and all(row == (1, 0) for row in prefix.levels)
    assert s.block_keep == (0.95, 0.9, 0.8, 0.7)


def test_mrl_trains_every_prefix_on_fine_without_sampling():
    _, prefix = preset("mrl").terms
    assert not prefix.sample and all(row == (0, 1) for row in prefix.levels)


def test_inverted_swaps_the_levels_and_no_prefix_has_one_term():
    full, prefix = preset("inverted").terms
    assert full.levels[3] == (1, 0) and all(row == (0, 1) for row in prefix.levels)
    assert len(preset("no_prefix").terms) == 1
    full, prefix = preset("uhmt").terms
    assert full.levels[3] == (0.5, 0.5) and prefix.levels[0] == (0.5, 0.5)


def test_three_levels_map_prefixes_onto_levels():
    full, prefix = preset("v5", num_levels=3).terms
    assert full.levels[3] == (0, 0, 1)
    assert [row.index(1.0) for row in prefix.levels] == [0, 1, 1, 1]


NAMES = [m for m in METHODS if m != "dial"] + ["dial@0", "dial@0.5", "dial@1"]


@pytest.mark.parametrize("name", NAMES)
def test_json_round_trip(name):
    s = preset(name)
    again = Schedule.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s


def test_prefix_probs_generalise():
    assert prefix_probs(4) == pytest.approx((0.4, 0.3, 0.2, 0.1))
    assert sum(prefix_probs(6)) == pytest.approx(1.0)


def test_a_method_with_a_setting_is_named_by_it():
    assert preset("adversarial@0.1").name == "adversarial@0.1" and preset("adversarial@1").name == "adversarial"
    weak, strong = preset("adversarial@0.1"), preset("adversarial@1")
    assert weak.terms[-1].grad[0] == -0.1 and strong.terms[-1].grad[0] == -1.0
    assert preset("adversarial_mrl@1").terms[-1].grad[0] == -1.0
    assert label("adversarial@0.1") == "Adversarial 0.1" and label("dial=0.25") == "Dial 0.25"
    assert display_order(["dial@1", "adversarial@1", "adversarial", "adversarial@0.1", "heal"]) == [
        "heal",
        "adversarial",
        "adversarial@0.1",
        "adversarial@1",
        "dial@1",
    ]
    with pytest.raises(
        ValueError, match="unknown method 'heal@2'.*with a setting: adversarial@X, adversarial_mrl@X, dial@X"
    ):
        preset("heal@2")
    with pytest.raises(ValueError, match="bad setting in method 'adversarial@strong'; write it as adversarial@0.5"):
        preset("adversarial@strong")


def test_bad_method_settings_are_refused():
    with pytest.raises(ValueError, match="strength"):
        adversarial(strength=0.0)
    with pytest.raises(ValueError, match="the dial must be in"):
        dial(1.5)


def test_the_raw_backbone_methods_are_values_that_train_nothing():
    flat, pca = preset("flat"), preset("flat_pca")
    assert not flat.trains and flat.head == "identity" and flat.terms == ()
    assert not pca.trains and pca.head == "pca"
    fitted = ("flat", "flat_pca", "flat_random", "gep", "nuisance", "lda")
    assert all(not preset(m).trains and preset(m).head for m in fitted)
    assert all(preset(m).trains for m in NAMES if m not in fitted)
    assert Schedule.from_dict(flat.to_dict()) == flat


def test_the_classifier_floor_trains_a_hard_coarse_prefix_and_an_mrl_suffix():
    s = preset("coarse_onehot")
    assert s.head_options == {"segments": [1, 3], "posterior": {"mix": 1.0, "hard": True}}
    classifier, full, suffix = s.terms
    assert classifier.loss == "posterior" and classifier.levels[0] == (1.0, 1.0)
    assert full.probs == (0, 0, 0, 1) and full.levels[3] == (0, 1)
    assert suffix.start == 1 and suffix.probs[0] == 0 and all(row == (0, 1) for row in suffix.levels)
    assert mrl_reference("coarse_onehot") == "mrl"


def test_the_registry_names_labels_and_orders_every_method():
    assert [method(m).label for m in ("flat", "v5", "heal", "dial@0.5")] == ["Flat", "V5", "HEAL", "Dial 0.5"]
    assert method("dial=0.25").name == "dial@0.25" and preset("dial0.25").name == "dial@0.25"
    assert display_order(["zzz", "dial@1", "heal", "v5", "dial@0.1", "flat"]) == [
        "flat",
        "v5",
        "heal",
        "dial@0.1",
        "dial@1",
        "zzz",
    ]
    assert label("zzz") == "zzz"


def test_presets_round_trip_as_json_and_the_dial_parses():
    for name in (
        "heal",
        "separated",
        "successive",
        "successive_balanced",
        "adversarial",
        "adversarial_mrl",
        "bottleneck",
        "dial@0.25",
    ):
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
    assert [mrl_reference(m) for m in ("adversarial_mrl", "v5", "heal", "dial@0.75", "successive_balanced")] == [
        "mrl",
        "mrl",
        "mrl_supcon",
        "mrl_supcon",
        "mrl_supcon",
    ]
    assert preset("adversarial_mrl").recipe == {} and preset("adversarial_mrl").terms[0].grad[0] == 0.0


# ------------------------------------------------- trained on a synthetic hierarchy


def _steerability(method: str, seed: int) -> float:
    x, y, h = synthetic_hierarchy()
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(x))
    tr, va, te = idx[: len(x) // 2], idx[len(x) // 2 : 3 * len(x) // 4], idx[3 * len(x) // 4 :]
    torch.manual_seed(seed)
    model = SteerableModel(LinearHead(x.shape[1], num_blocks=4, block_dim=8), h, "synthetic")
    train(
        model,
        preset(method),
        x[tr],
        y[tr],
        x[va],
        y[va],
        TrainConfig(epochs=10, batch_size=32, lr=3e-3, seed=seed, select_best=False),
        progress=False,
    )
    acc = accuracy_table(model.embed_vectors(x[te]), y[te], standard_protocol(), model.embed_vectors(x[tr]), y[tr])
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


def test_the_classifier_floor_knows_the_coarse_class_and_nothing_finer():
    """Trained on the synthetic hierarchy (4 coarse classes of 4 children): the one-hot prefix gets
    the coarse class right, and inside it no better than a guess among the 4 children (every prefix
    of a predicted class is the same vector), while the full vector learns the fine label."""
    acc = _synthetic_accuracy("coarse_onehot", epochs=10, lr=1e-3)
    assert acc[0, 0] > 0.9
    assert acc[1, 0] < 0.25 + 0.1
    assert acc[1, 1] > 0.6


def test_adversarial_in_the_mrl_recipe_steers_the_prefix_and_keeps_mrls_full_vector():
    """Adversarial (MRL recipe) against the paper's MRL, same data, seed and recipe: its prefix keeps
    the coarse label and loses the fine one, while the full vector classifies the fine label as well."""
    adv, mrl = (_synthetic_accuracy(name, epochs=8, lr=1e-3) for name in ("adversarial_mrl", "mrl"))
    assert adv[0, 0] > 0.9 and adv[1, 0] < mrl[1, 0] - 0.1  # coarse kept, fine lost on the prefix
    assert adv[1, 1] > mrl[1, 1] - 0.05  # the full vector still knows the fine label


def test_segments_keep_the_prefix_a_truncation_and_weigh_segments_equally():
    model, x, _ = synthetic_model({"segments": [1, 3]}, kind="mlp")
    full, short = model.embed_vectors(x[:20], [32, 8])
    assert np.allclose(np.linalg.norm(full[:, :8], axis=1), math.sqrt(0.5), atol=1e-5)
    trunc = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert np.allclose(trunc, short, atol=1e-5)


def test_posterior_prefix_is_a_function_of_the_coarse_posterior(tmp_path):
    model, x, _ = synthetic_model({"posterior": {"mix": 1.0}}, kind="mlp")
    short, full = model.embed_vectors(x, [8, 32])
    k0 = model.hierarchy.num_classes(0)
    assert np.linalg.matrix_rank(short, tol=1e-4) <= k0 < 8  # lives in the span of k0 prototypes
    model.save(tmp_path)
    again = SteerableModel.load(tmp_path)
    assert again.head.posterior["parents"] == model.hierarchy.fine_to_level(0).tolist()
    assert np.allclose(again.embed_vectors(x, [32])[0], full, atol=1e-6)


def test_posterior_mix_zero_is_the_free_block():
    model, x, _ = synthetic_model({"posterior": {"mix": 0.0}}, kind="mlp")
    model.eval()
    blocks, logits = model.head.outputs(torch.from_numpy(x[:5]))
    _, raw = model.head.features_and_blocks(torch.from_numpy(x[:5]))
    assert torch.allclose(blocks[:, 0], torch.nn.functional.normalize(raw[:, 0], dim=-1), atol=1e-6)
    assert logits.shape == (5, model.hierarchy.num_classes(1))


def _fit(method: str, seed: int, mixes=(None,)):
    x, y, h = synthetic_hierarchy(noise=0.4)
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(x))
    tr, va, te = idx[: len(x) // 2], idx[len(x) // 2 : 3 * len(x) // 4], idx[3 * len(x) // 4 :]
    sch = preset(method)
    torch.manual_seed(seed)
    model = SteerableModel.build(
        "mlp", x.shape[1], h, "synthetic", {"num_blocks": 4, "block_dim": 8, "hidden_dim": 32} | sch.head_options
    )
    train(
        model,
        sch,
        x[tr],
        y[tr],
        x[va],
        y[va],
        TrainConfig.for_schedule(sch, epochs=30, seed=seed, select_best=False),
        progress=False,
    )
    out = []
    for mix in mixes:
        if mix is not None:
            assert model.head.posterior is not None
            model.head.posterior["mix"] = mix
        acc = accuracy_table(model.embed_vectors(x[te]), y[te], standard_protocol(), model.embed_vectors(x[tr]), y[tr])
        probe = linear_probe(model.embed_vectors(x[tr], [8])[0], y[tr, 1], model.embed_vectors(x[te], [8])[0], y[te, 1])
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


def _shortlist_recall(name: str, K: int = 10) -> float:
    """Share of the full vector's top 10 (held-out third vs the rest) inside the prefix's top K."""
    (p_doc, f_doc), (p_q, f_q), _, _ = train_synthetic_preset(name, epochs=8, lr=1e-3)
    truth = np.argsort(-(f_q @ f_doc.T), axis=1)[:, :10]
    short = np.argsort(-(p_q @ p_doc.T), axis=1)[:, :K]
    return float(np.mean([len(set(t) & set(s)) / 10 for t, s in zip(truth, short)]))


def _backbone_agreement(name: str) -> float:
    """Share of the backbone's top 10 (held-out third vs the rest) inside the prefix's top 10."""
    (p_doc, _), (p_q, _), _, _ = train_synthetic_preset(name, epochs=8, lr=1e-3)
    x, _, _ = synthetic_hierarchy(per_fine=60, seed=3)  # train_synthetic_preset's data
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    doc, q = x[np.arange(len(x)) % 3 != 0], x[np.arange(len(x)) % 3 == 0]
    truth = np.argsort(-(q @ doc.T), axis=1)[:, :10]
    short = np.argsort(-(p_q @ p_doc.T), axis=1)[:, :10]
    return float(np.mean([len(set(t) & set(s)) / 10 for t, s in zip(truth, short)]))


def test_an_anchored_prefix_keeps_the_backbones_neighbours_where_the_adversarial_one_loses_them():
    plain, anchored = _backbone_agreement("adversarial_mrl"), _backbone_agreement("anchored")
    assert anchored > plain + 0.05, (plain, anchored)


def test_a_distilled_prefix_shortlists_its_full_vectors_neighbours_better_than_mrls():
    mrl, distilled = _shortlist_recall("mrl"), _shortlist_recall("mrl_distill")
    assert distilled > mrl + 0.04  # top 10 of the prefix vs top 10 of the full vector (0.82 vs 0.76)


def test_a_method_says_whether_it_trains_and_whether_it_needs_a_setting():
    from steerable.methods import METHODS, trains

    assert [m.name for m in METHODS.values() if m.needs_setting] == ["dial"]  # no default: named with it
    assert not trains("flat_pca") and not trains("gep@0.3") and trains("v5") and trains("my_own_schedule")
