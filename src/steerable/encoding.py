"""Encoding past one machine: a corpus into a shard folder, and a data set into the vector cache, on
this machine or as a Ray Data job on a cluster.

Both jobs cut their work into independent pieces and hand them to workers that each load the backbone
(and the head) once: :class:`ShardEncoder` reads a planned shard's texts from the input, encodes them
and writes the shard file (:mod:`steerable.shards`); :class:`CacheEncoder` encodes a chunk of texts
and returns the vectors to the driver, which stores them in its vector cache. On a cluster the pieces
are the rows of a Ray Data set mapped with ``map_batches`` over an actor pool (one piece a batch), and
Ray restarts a worker that dies and retries its piece. The driver alone writes the manifest or the
cache, as each piece comes back, and shows the one progress bar.

The vectors do not depend on where they were computed: a shard holds the rows one chunk of ``steer
encode`` would, and the backbone batches a chunk by token count whatever its threads (bit for bit on
the CPU; on a GPU, to the device's float rounding).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from .atomic import atomic_write_json, read_json
from .backbone import Backbone, VectorCache
from .data import DataError
from .model import CONFIG, WEIGHTS, SteerableModel
from .runs.executors import connect_ray
from .shards import (
    DTYPES,
    MANIFEST,
    SHARD_ROWS,
    fingerprint_inputs,
    input_files,
    new_manifest,
    plan_file,
    read_shard_texts,
    shard_name,
    write_shard,
)

EXECUTORS = ("local", "ray")


# -- workers -----------------------------------------------------------------------------------------


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


class ShardEncoder:
    """Loads the model once; then each call encodes planned shards into the output folder.

    The model comes as its files' bytes (``model_files``), so a worker needs the backbone installed
    but not the run folder. A callable class, so Ray Data runs it on an actor pool: a batch is a
    column ``shard`` of JSON descriptors; the answer has each shard's name, rows and checksum.
    """

    def __init__(
        self,
        model_files: dict[str, bytes],
        *,
        dims: list[int],
        dtype: str,
        out: str,
        backbone: dict | None = None,
        dial: float | None = None,
        threads: int | None = None,
    ):
        from .encoder import SteerableEncoder

        _set_threads(threads)
        with tempfile.TemporaryDirectory(prefix="steer-model-") as tmp:
            for name, blob in model_files.items():
                (Path(tmp) / name).write_bytes(blob)
            self.encoder = SteerableEncoder.from_pretrained(tmp, cache=False, **(backbone or {}))
        if dial is not None:
            self.encoder.set_dial(dial)
        self.dims, self.dtype, self.out = dims, dtype, Path(out)

    def encode(self, shard: dict) -> dict:
        texts, ids = read_shard_texts(shard)
        vectors = self.encoder.model.embed_vectors(self.encoder.backbone.encode_uncached(texts), self.dims)
        rows = np.arange(shard["first_row"], shard["first_row"] + len(texts))
        sha = write_shard(self.out / shard["name"], rows, ids, dict(zip(self.dims, vectors)), self.dtype)
        return {
            "name": shard["name"],
            "first_row": shard["first_row"],
            "rows": len(texts),
            "sha256": sha,
            "backbone_key": self.encoder.backbone.key,
        }

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        done = [self.encode(json.loads(s)) for s in batch["shard"]]
        return {"result": [json.dumps(d) for d in done]}


class CacheEncoder:
    """Loads the backbone once; then each call encodes chunks of texts and returns their vectors, with
    the backbone's cache key (the driver refuses vectors of another backbone)."""

    def __init__(self, backbone: dict, threads: int | None = None):
        _set_threads(threads)
        self.backbone = Backbone(**backbone)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.backbone.encode_uncached(texts)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"chunk": [], "vectors": [], "dim": [], "key": []}
        for item in batch["chunk"]:
            chunk = json.loads(item)
            v = self.encode(chunk["texts"])
            out["chunk"].append(chunk["number"])
            out["vectors"].append(np.ascontiguousarray(v, np.float32).tobytes())
            out["dim"].append(v.shape[1])
            out["key"].append(self.backbone.key)
        return out


# -- running the pieces ------------------------------------------------------------------------------


class WorkerSpec:
    """A worker class and its constructor's keyword arguments: :meth:`build` makes one here; a Ray
    actor pool makes one per actor."""

    def __init__(self, cls: type, **kwargs: Any):
        self.cls, self.kwargs = cls, kwargs

    def build(self) -> Any:
        return self.cls(**self.kwargs)


def run_pieces(
    worker: WorkerSpec,
    column: str,
    pieces: Sequence[str],
    *,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    threads: int | None = None,
) -> Iterator[dict]:
    """Each piece's answer (one row of the worker's output) as it comes back, in any order.

    ``executor="local"``: one worker, built here with ``threads`` torch threads, takes the pieces in
    order. ``executor="ray"``: the pieces become a Ray Data set of one piece a block, mapped over an
    actor pool of ``workers`` actors (default: as many as the cluster's CPUs, or GPUs, allow), each
    asking for ``cpus_per_worker`` CPUs (its torch threads) and ``gpus_per_worker`` GPUs.
    """
    if not pieces:
        return
    if executor == "local":
        fn = WorkerSpec(worker.cls, **worker.kwargs, threads=threads).build()
        for piece in pieces:
            answer = fn({column: np.array([piece], dtype=object)})
            yield {k: v[0] for k, v in answer.items()}
        return
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    ray = connect_ray(address)
    from ray import data as ray_data

    ctx = ray_data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar of its own
    ctx.print_on_execution_start = False
    if workers is None:
        have = ray.cluster_resources()
        workers = (
            int(have.get("GPU", 0) // gpus_per_worker)
            if gpus_per_worker
            else int(have.get("CPU", 1) // cpus_per_worker)
        )
    workers = max(1, min(workers, len(pieces)))
    items = ray_data.from_items([{column: p} for p in pieces], override_num_blocks=len(pieces))
    answers = items.map_batches(
        worker.cls,
        batch_size=1,
        compute=ray_data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker or None,
        fn_constructor_kwargs=worker.kwargs | {"threads": max(1, int(cpus_per_worker))},
    )
    yield from answers.iter_rows()


# -- the shard job -----------------------------------------------------------------------------------


def plan(files: list[Path], shard_rows: int, text_col: str | None, id_col: str | None) -> tuple[list[dict], int]:
    """Every shard of the inputs in order, named and numbered across them, and the rows in all."""
    shards: list[dict] = []
    rows = 0
    for f in files:
        for d in plan_file(f, shard_rows, text_col, id_col):
            shards.append(d | {"name": shard_name(len(shards)), "first_row": rows})
            rows += d["rows"]
    return shards, rows


def _model_files(run: Path) -> dict[str, bytes]:
    """The files a worker loads the model from (the run folder itself need not reach it)."""
    return {name: (run / name).read_bytes() for name in (CONFIG, WEIGHTS)}


def _prepare_out(out: Path, settings: dict, overwrite: bool) -> dict | None:
    """The manifest to resume from (None: start afresh). A folder of other files, or one left by a job
    with other settings, is refused (with ``overwrite``, the files a job wrote are removed)."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise FileExistsError(f"--out {out}: a file; give a folder")
    manifest_path = out / MANIFEST
    if not manifest_path.exists():
        if any(out.iterdir()):
            raise FileExistsError(f"--out {out}: a folder that `steer encode` did not write (no {MANIFEST})")
        return None
    old = read_json(manifest_path)
    if old.get("settings") == settings and not overwrite:
        return old
    if not overwrite:
        raise FileExistsError(
            f"--out {out}: written by a job with another model, input or settings; give --overwrite "
            "to replace it, or another --out"
        )
    for p in out.glob("shard-*.parquet"):
        p.unlink()
    for p in out.glob(".shard-*.parquet.*.tmp"):
        p.unlink()
    manifest_path.unlink()
    return None


def encode_to_shards(
    inputs: str | Path,
    out: str | Path,
    model: str | Path,
    *,
    dims: list[int] | None = None,
    dtype: str = "float32",
    text_col: str | None = None,
    id_col: str | None = None,
    shard_rows: int = SHARD_ROWS,
    dial: float | None = None,
    backbone: dict | None = None,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Encode every text of ``inputs`` (a file or a folder of .txt, .jsonl(.gz), .csv/.tsv, .parquet
    files) with the model of run folder ``model`` into the shard folder ``out``, at ``dims`` (default:
    the full vector), resumably: a rerun with the same model, inputs and settings encodes only the
    shards its manifest lacks. Returns a summary (rows, shards encoded now, shards resumed, seconds)."""
    t0 = time.perf_counter()
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    run, out = Path(model).resolve(), Path(out).resolve()
    files = input_files(inputs)
    loaded = SteerableModel.load(run)  # a clear error for a folder that is not a run
    model_files = _model_files(run)
    dims = sorted(set(dims or [loaded.dims[-1]]))
    for d in dims:
        if d not in loaded.dims:
            raise ValueError(f"dim must be one of {loaded.dims}, got {d}")
    if gpus_per_worker and executor == "ray":
        backbone = (backbone or {}) | {"device": "cuda"}
    local = Backbone(loaded.backbone, **(backbone or {}))
    key = local.key
    settings = {
        "model": str(run),
        "model_fingerprint": loaded.fingerprint(),
        "backbone": local.name,
        "dims": dims,
        "dtype": dtype,
        "dial": dial,
        "text_col": text_col or "text",
        "id_col": id_col,
        "shard_rows": shard_rows,
        "inputs": fingerprint_inputs(files),
    }
    manifest = _prepare_out(out, settings, overwrite)
    shards, rows = plan(files, shard_rows, text_col, id_col)
    if manifest is None:
        manifest = new_manifest(settings, planned=len(shards), rows=rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / MANIFEST, manifest)
    todo = [d for d in shards if d["name"] not in manifest["shards"]]
    resumed = len(shards) - len(todo)
    bar = tqdm(
        total=rows, initial=rows - sum(d["rows"] for d in todo), unit="text", desc="encoding", disable=not progress
    )
    worker = WorkerSpec(
        ShardEncoder,
        model_files=model_files,
        dims=dims,
        dtype=dtype,
        out=str(out),
        backbone=backbone,
        dial=dial,
    )
    written = time.monotonic()
    try:
        answers = run_pieces(
            worker,
            "shard",
            [json.dumps(d) for d in todo],
            executor=executor,
            address=address,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            threads=threads,
        )
        for answer in answers:
            done = json.loads(answer["result"])
            _same_backbone(done.pop("backbone_key"), key)
            manifest["shards"][done.pop("name")] = done
            bar.update(done["rows"])
            if time.monotonic() - written > 1.0:  # the manifest at most once a second, and at the end
                atomic_write_json(out / MANIFEST, manifest)
                written = time.monotonic()
    finally:
        manifest["complete"] = len(manifest["shards"]) == len(shards)
        atomic_write_json(out / MANIFEST, manifest)
        bar.close()
    return {
        "rows": rows,
        "shards": len(shards),
        "shards_encoded": len(shards) - resumed,
        "shards_resumed": resumed,
        "out": str(out),
        "seconds": time.perf_counter() - t0,
    }


def _same_backbone(worker_key: str, key: str) -> None:
    if worker_key != key:
        raise DataError(
            f"a worker's backbone differs from this machine's (cache key {worker_key} != {key}): "
            "install the same model and versions on every node"
        )


# -- the vector cache --------------------------------------------------------------------------------


def build_cache(
    splits: Sequence[Sequence[str]],
    backbone: Backbone,
    *,
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Put the vectors of the texts of ``splits`` (a data set's training, validation and test texts, in
    the order training reads them) into ``backbone``'s vector cache, encoding only the texts it
    lacks, in the chunks a training run on the whole splits would encode them in: the same vectors,
    bit for bit. (A vector's last bits depend on which texts share its batch, so a run on a capped
    subset that encoded for itself could differ from them by float rounding, about 1e-7.) Each chunk
    is stored as it comes back: an interrupted build keeps what it did. Returns a summary (distinct
    texts, those cached before, encoded now, seconds)."""
    t0 = time.perf_counter()
    cache = VectorCache(backbone)
    chunks: list[list[str]] = []
    planned: set[str] = set()
    for split in splits:  # as split_vectors asks for them: a split at a time
        chunks += cache.missing_chunks([t for t in split if t not in planned])
        planned.update(split)
    todo = sum(len(c) for c in chunks)
    bar = tqdm(total=todo, unit="text", desc=f"caching ({backbone.name})", disable=not progress)
    spec = {"name": backbone.model_name, "runtime": backbone.runtime, "max_length": backbone.max_length}
    if backbone.device != "cpu" or (gpus_per_worker and executor == "ray"):
        spec["device"] = backbone.device if backbone.device != "cpu" else "cuda"
    worker = WorkerSpec(CacheEncoder, backbone=spec)
    pieces = [json.dumps({"number": i, "texts": c}) for i, c in enumerate(chunks)]
    try:
        for answer in run_pieces(
            worker,
            "chunk",
            pieces,
            executor=executor,
            address=address,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            threads=threads,
        ):
            _same_backbone(answer["key"], backbone.key)
            chunk = chunks[int(answer["chunk"])]
            vectors = np.frombuffer(answer["vectors"], np.float32).reshape(len(chunk), int(answer["dim"]))
            cache.add(chunk, vectors)
            bar.update(len(chunk))
    finally:
        bar.close()
    return {
        "texts": len(planned),
        "cached_before": len(planned) - todo,
        "encoded": todo,
        "seconds": time.perf_counter() - t0,
    }
