"""The vector cache with the real default backbone: texts are encoded once; corruption is rebuilt."""

import logging

import numpy as np
import pytest

from steerable.backbone import Backbone, VectorCache

TEXTS = [f"how do I reset the password of account number {i}" for i in range(12)] + [
    "what is the weather in paris", "book a table for two at eight"]


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
