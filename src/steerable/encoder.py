"""Texts in, steerable embeddings out: a backbone plus a trained head (fit here, or loaded); a whole
file of texts encoded resumably (:meth:`SteerableEncoder.encode_file`)."""

from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from .atomic import atomic_write, atomic_write_json, read_json
from .backbone import Backbone, VectorCache, split_vectors
from .data import DataError, HierarchicalDataset, iter_text_chunks
from .heads import DEFAULT_HEAD
from .methods import preset
from .metrics import Protocol, default_protocols, evaluate
from .model import SteerableModel
from .schedule import Schedule
from .training import TrainConfig, train


class SteerableEncoder:
    """Encode texts at a chosen granularity: ``dim=64`` or ``level="coarse"`` for the short prefix,
    the full vector by default.

    >>> enc = SteerableEncoder.from_pretrained("runs/clinc150-v5-mlp-s42")  # doctest: +SKIP
    >>> enc.encode(["book a flight to rome"], level="coarse").shape                # doctest: +SKIP
    (1, 64)
    """

    def __init__(self, model: SteerableModel, backbone: Backbone | None = None, *, cache: bool = True):
        self.model = model.eval()
        self.backbone = backbone or Backbone(model.backbone)
        self._cache = VectorCache(self.backbone) if cache else None
        self.history: dict = {}
        self.source: str | None = None  # the folder it was loaded from

    @classmethod
    def fit(
        cls,
        dataset: HierarchicalDataset,
        method: str | Schedule = "v5",
        *,
        head: str = DEFAULT_HEAD,
        backbone: Backbone | None = None,
        progress: bool = True,
        **train_options: Any,
    ) -> "SteerableEncoder":
        """Train a head on a data set's training split (validation split for picking the epoch).

        ``method``: a method name (``steerable.METHODS``) or a schedule; ``train_options`` are
        :class:`~steerable.training.TrainConfig` fields (``seed``, ``epochs``, ...) over the method's
        recipe. The training history is kept in ``encoder.history``; :meth:`evaluate` measures it.
        """
        backbone = backbone or Backbone()
        schedule = method if isinstance(method, Schedule) else preset(method, dataset.hierarchy.num_levels)
        cfg = TrainConfig.for_schedule(schedule, **train_options)
        vectors = split_vectors(dataset, backbone, seed=cfg.seed, progress=progress)
        torch.manual_seed(cfg.seed)
        model = SteerableModel.for_schedule(schedule, head, vectors.train.shape[1], dataset.hierarchy, backbone.name)
        history = train(
            model,
            schedule,
            vectors.train,
            vectors.y_train,
            vectors.validation,
            vectors.y_validation,
            cfg,
            progress=progress,
        )
        encoder = cls(model, backbone)
        encoder.history = history
        return encoder

    def evaluate(
        self,
        dataset: HierarchicalDataset,
        protocols: Sequence[Protocol] | None = None,
        *,
        max_train: int | None = None,
        max_test: int | None = None,
        seed: int = 42,
        progress: bool = False,
    ) -> dict:
        """k-NN accuracy per level at every prefix and the steerability metrics on ``dataset`` (test
        split; the training split as the reference set), per protocol (default: both)."""
        if dataset.hierarchy.classes != self.model.hierarchy.classes:
            raise ValueError(f"{dataset.name} has another label set than this model was trained on")
        vectors = split_vectors(
            dataset,
            self.backbone,
            cache=self._cache,
            max_train=max_train,
            max_test=max_test,
            seed=seed,
            progress=progress,
        )
        protocols = list(protocols) if protocols is not None else default_protocols(seed)
        return evaluate(self.model, vectors, dataset.hierarchy.level_names, protocols)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        cache: bool = True,
        runtime: str | None = None,
        max_length: int | None = None,
        device: str | None = None,
    ) -> "SteerableEncoder":
        """Load a run folder written by ``steer train`` (or :meth:`save_pretrained`).

        The backbone is the one the model was trained on, with its runtime and maximum sequence
        length; ``runtime``, ``max_length`` and ``device`` override them (:class:`Backbone`).
        """
        model = SteerableModel.load(path)
        backbone = Backbone(model.backbone, runtime=runtime, max_length=max_length, device=device)
        encoder = cls(model, backbone, cache=cache)
        encoder.source = str(Path(path).resolve())
        return encoder

    def save_pretrained(self, path: str | Path) -> None:
        self.model.save(path)

    @property
    def dial(self) -> float | None:
        """The steerability dial of a model trained with ``--method dial`` (else None)."""
        post = self.model.head.posterior
        return post["mix"] if post and "train_mix" in post else None

    def set_dial(self, value: float) -> "SteerableEncoder":
        """Move a dial-trained model between an MRL-like prefix (0) and a pure coarse code (1).

        No retraining: the dial sets how the 64-d prefix mixes its coarse-posterior and free parts.
        """
        if self.dial is None:
            raise ValueError("this model has no steerability dial; train it with --method dial")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"the dial must be in [0, 1], got {value}")
        posterior = self.model.head.posterior
        assert posterior is not None  # a dial head is a posterior head
        posterior["mix"] = float(value)
        return self

    @property
    def dims(self) -> list[int]:
        return self.model.dims

    @property
    def levels(self) -> dict[str, int]:
        """Level name -> the prefix dim that serves it; also "coarse" and "fine"."""
        by_name = self.model.level_dims()
        names = list(by_name)
        return by_name | {"coarse": by_name[names[0]], "fine": by_name[names[-1]]}

    def resolve_dim(self, dim: int | None = None, level: str | None = None) -> int:
        if dim is not None and level is not None:
            raise ValueError("give dim or level, not both")
        if level is not None:
            if level not in self.levels:
                raise ValueError(f"unknown level {level!r}; choose from {sorted(self.levels)}")
            return self.levels[level]
        dim = self.dims[-1] if dim is None else dim
        if dim not in self.dims:
            raise ValueError(f"dim must be one of {self.dims}, got {dim}")
        return dim

    def encode_file(
        self,
        path: str | Path,
        out: str | Path,
        *,
        dim: int | None = None,
        level: str | None = None,
        text_col: str | None = None,
        chunk_size: int = 4096,
        progress: bool = True,
    ) -> dict:
        """Embed every text of a (large) file into ``out`` (.npy or .parquet) at a dim or level: one text a
        line (.txt), or a column of CSV / JSON Lines / Parquet; row i of the output is line or row i.
        The backbone's vector cache is bypassed (it would hold every vector of the file). An interrupted
        call resumes where it stopped, with the same model (its fingerprint, not its folder's name),
        dims and dial (:func:`write_embeddings`). Returns its summary."""
        d = self.resolve_dim(dim, level)
        settings = {"model": self.source, "model_fingerprint": self.model.fingerprint(), "dim": d, "dial": self.dial}
        return write_embeddings(
            path,
            out,
            lambda texts: self.encode(texts, dim=d, uncached=True),
            chunk_size=chunk_size,
            text_col=text_col,
            settings=settings,
            progress=progress,
        )

    def encode(
        self,
        texts: Sequence[str] | str,
        *,
        dim: int | None = None,
        level: str | None = None,
        progress: bool = False,
        uncached: bool = False,
    ) -> np.ndarray:
        """Unit-length float32 embeddings, shape (n, dim); ``uncached``: the backbone's vector cache is
        neither read nor written."""
        single = isinstance(texts, str)
        texts = [texts] if isinstance(texts, str) else list(texts)
        d = self.resolve_dim(dim, level)
        if self._cache is not None and not uncached:
            vectors = self._cache.get_or_encode(texts, progress=progress)
        else:
            vectors = self.backbone.encode_uncached(texts, progress=progress)
        (out,) = self.model.embed_vectors(vectors, [d])
        return out[0] if single else out


def write_embeddings(
    path: str | Path,
    out: str | Path,
    encode: Callable[[list[str]], np.ndarray],
    *,
    chunk_size: int = 4096,
    text_col: str | None = None,
    settings: dict | None = None,
    progress: bool = True,
) -> dict:
    """Encode every text of ``path`` with ``encode`` into ``out`` (.npy or .parquet), chunk by chunk, resumably.

    Texts are read in chunks; each chunk's embeddings are written atomically as a part file in
    ``<out>.parts/`` named by its chunk number. A rerun skips the parts that exist, and the final file is
    assembled from the parts by streaming, then the parts are removed: memory stays flat however long
    the file. ``settings`` (model, dim, ...) is stored with the parts; resuming with other settings is
    refused. Returns a summary: rows, chunks encoded now, chunks reused.
    """
    path, out = Path(path), Path(out)
    if out.suffix not in (".npy", ".parquet"):
        raise DataError(f"{out}: output must end in .npy or .parquet")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    parts = out.with_name(out.name + ".parts")
    if parts.is_dir() and any(parts.iterdir()) and not (parts / "manifest.json").exists():
        raise DataError(
            f"{parts}: a folder that `steer encode` did not leave (no manifest.json); "
            "move it away or choose another output name"
        )
    stat = path.stat()
    manifest = {
        "input": str(path.resolve()),
        "size": stat.st_size,
        "mtime": stat.st_mtime,
        "chunk_size": chunk_size,
        "text_col": text_col,
        **(settings or {}),
    }
    if (parts / "manifest.json").exists() and read_json(parts / "manifest.json") != manifest:
        if _part_files(parts):
            raise DataError(
                f"{parts}: left by an earlier run with other settings, input or model; remove it to start again"
            )
        shutil.rmtree(parts)  # a manifest and nothing encoded: nothing to lose
    fresh = not parts.exists()
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_json(parts / "manifest.json", manifest)
    encoded = reused = rows = 0
    total = _count_rows(path, text_col)
    bar = tqdm(desc=f"encoding {path.name}", unit="text", total=total, disable=not progress)
    try:
        for i, texts in enumerate(iter_text_chunks(path, chunk_size, text_col)):
            part = parts / f"part-{i:06d}.npy"
            rows += len(texts)
            if part.exists():
                reused += 1
            else:
                vectors = np.ascontiguousarray(encode(texts), dtype=np.float32)
                atomic_write(part, lambda p: _save_npy(p, vectors))
                encoded += 1
            bar.update(len(texts))
    except BaseException:
        if fresh and not _part_files(parts):  # failed before anything was kept: leave nothing behind
            shutil.rmtree(parts, ignore_errors=True)
        raise
    finally:
        bar.close()
    _assemble(parts, out)
    shutil.rmtree(parts)
    return {"rows": rows, "chunks_encoded": encoded, "chunks_reused": reused, "out": str(out)}


def _count_rows(path: Path, text_col: str | None) -> int | None:
    """How many texts ``path`` holds, for the progress bar's total and time left: Parquet's metadata, or a
    pass over the file counting lines (.txt), non-blank lines (JSON Lines) or records (CSV); None when
    the file cannot be read so (its error comes from the encoding pass)."""
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pq.ParquetFile(path).metadata.num_rows
        if name.endswith(".txt"):
            with open(path, "rb") as f:
                return sum(1 for _ in f)
        if name.endswith((".jsonl", ".jsonl.gz")):
            with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
                return sum(1 for line in f if line.strip())
        if name.endswith((".csv", ".tsv")):
            with open(path, encoding="utf-8", newline="") as f:
                return max(
                    sum(1 for record in csv.reader(f, delimiter="\t" if name.endswith(".tsv") else ",") if record) - 1,
                    0,
                )
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save keeps the name as given
        np.save(f, array, allow_pickle=False)


def _part_files(parts: Path) -> list[Path]:
    return sorted(parts.glob("part-*.npy"))


def _assemble(parts: Path, out: Path) -> None:
    files = _part_files(parts)
    shapes = [np.load(f, mmap_mode="r").shape for f in files]
    rows, dim = sum(s[0] for s in shapes), (shapes[0][1] if shapes else 0)
    if out.suffix == ".npy":

        def write(tmp: Path) -> None:  # header, then each part's bytes: one part in memory at a time
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False,
                "shape": (rows, dim),
            }
            with open(tmp, "wb") as f:
                np.lib.format.write_array_header_1_0(f, header)
                for part in files:
                    f.write(np.ascontiguousarray(np.load(part), dtype=np.float32).tobytes())
    else:

        def write(tmp: Path) -> None:
            schema = pa.schema([("embedding", pa.list_(pa.float32(), dim))])
            with pq.ParquetWriter(tmp, schema) as w:
                for f in files:
                    a = np.load(f)
                    col = pa.FixedSizeListArray.from_arrays(pa.array(a.ravel(), pa.float32()), dim)
                    w.write_table(pa.table({"embedding": col}, schema=schema))

    atomic_write(out, write)
