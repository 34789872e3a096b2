"""The vector cache with the real default backbone: texts are encoded once; corruption is rebuilt."""

import json
import logging

import numpy as np
import pytest

from steerable.backbone import Backbone, VectorCache

TEXTS = [f"how do I reset the password of account number {i}" for i in range(12)] + [
    "what is the weather in paris",
    "book a table for two at eight",
]


@pytest.fixture(scope="module")
def backbone():
    return Backbone()


def test_second_pass_encodes_nothing(backbone, tmp_path):
    first = VectorCache(backbone, root=tmp_path)
    v1 = first.get_or_encode(TEXTS, progress=False)
    assert first.encoded_count == len(TEXTS)
    assert v1.shape == (len(TEXTS), 384)
    again = VectorCache(backbone, root=tmp_path)  # a new process would start like this
    v2 = again.get_or_encode(TEXTS[::-1] + TEXTS[:3], progress=False)
    assert again.encoded_count == 0
    np.testing.assert_array_equal(v2[: len(TEXTS)], v1[::-1])
    np.testing.assert_allclose(v1, backbone.encode_uncached(TEXTS), atol=1e-5)


def test_only_new_texts_reach_the_backbone(backbone, tmp_path):
    cache = VectorCache(backbone, root=tmp_path)
    cache.get_or_encode(TEXTS[:5], progress=False)
    cache = VectorCache(backbone, root=tmp_path)
    cache.get_or_encode(TEXTS + TEXTS, progress=False)
    assert cache.encoded_count == len(TEXTS) - 5


@pytest.mark.parametrize("threads", [1, 2])
def test_torch_on_the_cpu_gives_sentence_transformers_vectors_in_order(backbone, threads):
    """With threads, batches run side by side, one torch thread each; the vectors are what
    sentence-transformers' own encode gives, in the input order, and the thread setting comes back."""
    import torch

    texts = TEXTS + ["", "ok", " ".join(["a long text about flights and hotels in lima"] * 60)]
    ref = backbone.model.encode(texts, batch_size=64)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = backbone.encode_uncached(texts)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_shard_is_detected_and_rebuilt(backbone, tmp_path, caplog, damage):
    v1 = VectorCache(backbone, root=tmp_path).get_or_encode(TEXTS, progress=False)
    (shard,) = list((tmp_path / "vectors").glob("*/shard-*.safetensors"))
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-7] ^= 0xFF  # inside the vectors: the header still parses, the checksum does not
    else:
        data = bytearray()
    shard.write_bytes(bytes(data))
    cache = VectorCache(backbone, root=tmp_path)
    with caplog.at_level(logging.WARNING, logger="steerable.backbone"):
        v2 = cache.get_or_encode(TEXTS, progress=False)
    assert "discarding corrupt shard" in caplog.text
    assert cache.encoded_count == len(TEXTS)
    np.testing.assert_allclose(v2, v1, atol=1e-5)
    rebuilt = VectorCache(backbone, root=tmp_path)
    rebuilt.get_or_encode(TEXTS, progress=False)
    assert rebuilt.encoded_count == 0


def test_the_key_follows_what_determines_the_vectors():
    assert Backbone().key == Backbone().key
    assert Backbone(max_length=32).key != Backbone().key


# -- settings in the name, runtimes ----------------------------------------------------------------
from steerable.backbone import DEFAULT_BACKBONE, backbone_spec, parse_backbone  # noqa: E402
from steerable.backbone.onnx import INT8_RECIPE, OnnxEncoder, ensure_export  # noqa: E402

VARIED = TEXTS + [
    "",
    "ok",
    "Where is my package?? #4411 (ordered 3 weeks ago)",
    " ".join(["a much longer text about flights, hotels and the weather in lima"] * 40),
]


def test_settings_travel_in_the_name_and_the_key():
    assert parse_backbone("all-MiniLM-L6-v2") == ("all-MiniLM-L6-v2", {})
    spec = "all-MiniLM-L6-v2@runtime=onnx-int8,max_seq_length=64"
    assert parse_backbone(spec) == ("all-MiniLM-L6-v2", {"runtime": "onnx-int8", "max_seq_length": 64})
    assert backbone_spec("all-MiniLM-L6-v2", "onnx-int8", 64) == spec
    assert backbone_spec("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    b = Backbone(DEFAULT_BACKBONE + "@runtime=onnx,max_seq_length=64")
    assert (b.runtime, b.max_length, b.model_name) == ("onnx", 64, DEFAULT_BACKBONE)
    assert Backbone(b.name).key == b.key  # the name alone rebuilds the backbone
    assert Backbone(b.name, runtime="torch").runtime == "torch"  # keywords override the name
    torch_fp = Backbone().fingerprint()
    assert "runtime" not in torch_fp and Backbone().name == DEFAULT_BACKBONE  # torch keys unchanged
    keys = {Backbone(runtime=r).key for r in ("torch", "onnx", "onnx-int8")}
    assert len(keys) == 3  # vectors of different runtimes never share a cache folder
    assert Backbone(max_length=64).key == Backbone(DEFAULT_BACKBONE + "@max_seq_length=64").key


@pytest.mark.parametrize(
    "spec, message",
    [
        ("all-MiniLM-L6-v2@runtime=tensorrt", "bad setting 'runtime=tensorrt'"),
        ("all-MiniLM-L6-v2@max_seq_length=0", "bad setting 'max_seq_length=0'"),
        ("all-MiniLM-L6-v2@fast", "bad setting 'fast'"),
    ],
)
def test_bad_settings_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_backbone(spec)


def test_onnx_runs_on_the_cpu_only():
    with pytest.raises(ValueError, match="runs on the CPU"):
        Backbone(runtime="onnx", device="cuda")


@pytest.fixture(scope="module")
def onnx_backbones(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    with pytest.MonkeyPatch.context() as mp:  # one cache folder: fp32 exported once, int8 from it
        mp.setenv("STEER_CACHE_DIR", str(tmp_path_factory.mktemp("onnx-cache")))
        out = {r: Backbone(runtime=r) for r in ("onnx", "onnx-int8")}
        for b in out.values():
            b.onnx  # noqa: B018  (exports now, inside the temporary cache folder)
    return out


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# Measured with bench/encode_throughput.py on 2000 CLINC texts: fp32 cosine 1.00000 (mean and min);
# int8 (fused, per-channel weights, batches of at most 256 tokens) mean 0.9920, min 0.955. The int8
# bounds below leave room for these few texts.
@pytest.mark.parametrize("runtime, mean_at_least, min_at_least", [("onnx", 0.999, 0.999), ("onnx-int8", 0.98, 0.93)])
def test_onnx_vectors_agree_with_torch(backbone, onnx_backbones, runtime, mean_at_least, min_at_least):
    ref = backbone.encode_uncached(VARIED)
    v = onnx_backbones[runtime].encode_uncached(VARIED)
    assert v.shape == ref.shape and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)  # normalised as torch's
    cos = _cosines(v, ref)
    assert cos.mean() >= mean_at_least and cos.min() >= min_at_least, (cos.mean(), cos.min())


def test_onnx_batches_cover_every_text_once_within_the_token_budget(onnx_backbones):
    enc = OnnxEncoder(onnx_backbones["onnx"].onnx.folder, max_length=64)
    enc.batch_tokens = 40
    batches = list(enc.batches(VARIED, batch_size=4))
    rows = np.concatenate([r for r, _ in batches])
    assert sorted(rows.tolist()) == list(range(len(VARIED)))  # every text once
    widths = [feed["input_ids"].shape[1] for _, feed in batches]
    assert widths == sorted(widths, reverse=True) and widths[0] == 64  # longest first; the long text cut
    for r, feed in batches:
        n, width = feed["input_ids"].shape
        assert n == len(r) <= 4 and (n * width <= 40 or n == 1)  # a text over the budget runs alone


def test_onnx_vectors_do_not_depend_on_the_threads(onnx_backbones):
    """Batches run side by side on the threads; the vectors (and their order) are the same."""
    folder = onnx_backbones["onnx-int8"].onnx.folder
    one, two = (OnnxEncoder(folder, threads=t).encode(VARIED) for t in (1, 2))
    np.testing.assert_array_equal(one, two)
    assert _cosines(two, onnx_backbones["onnx-int8"].encode_uncached(VARIED)).min() > 0.9999
    assert "int8_batch_tokens" in onnx_backbones["onnx-int8"].fingerprint()  # the batching is in the key


def test_onnx_honours_the_maximum_sequence_length(onnx_backbones):
    folder = onnx_backbones["onnx"].onnx.folder
    short = OnnxEncoder(folder, max_length=16).encode(VARIED)
    ref = Backbone(max_length=16).encode_uncached(VARIED)
    assert _cosines(short, ref).min() >= 0.999
    full = onnx_backbones["onnx"].encode_uncached(VARIED)
    assert _cosines(short, full)[-1] < 0.99  # the long text was cut


def test_the_int8_export_runs_fused_attention(onnx_backbones):
    meta = json.loads((onnx_backbones["onnx-int8"].onnx.folder / "steerable-onnx.json").read_text())
    assert meta["int8"] and meta["recipe"] == INT8_RECIPE
    assert meta["fusions"]["Attention"] == 6 and meta["fusions"]["SkipLayerNormalization"] == 12  # 6 layers


def test_the_export_is_made_once(onnx_backbones):
    folder = onnx_backbones["onnx-int8"].onnx.folder
    key, root = folder.name.removesuffix(f"-int8-{INT8_RECIPE}"), folder.parent.parent
    for int8 in (False, True):
        path = ensure_export(lambda: pytest.fail("exported again"), key, root, int8=int8)
        assert (path / "model.onnx").exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
