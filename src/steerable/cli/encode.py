"""``steer encode`` (texts to vectors: one file, or a folder of shards on one machine or a Ray cluster)
and ``steer cache build`` (a data set's backbone vectors into the cache training reads)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..backbone import Backbone
from ..encoder import SteerableEncoder
from ..encoding import EXECUTORS, build_cache, encode_to_shards
from ..shards import DTYPES, SHARD_ROWS
from .common import (
    Parser,
    add_backbone_args,
    add_data_args,
    backbone_options,
    check_writable,
    csv_list,
    load_data,
    non_negative_float,
    positive_int,
    unit_interval,
)

FILE_OUTPUTS = (".npy", ".parquet")


def dim_list(value: str) -> list[int]:
    """The dims of a comma-separated --dim: each a whole number of at least 1."""
    dims = [positive_int(item) for item in csv_list(value)]
    if not dims:
        raise argparse.ArgumentTypeError(f"must be one or more comma-separated dims, got {value!r}")
    return dims


def _dims(args: argparse.Namespace, enc: SteerableEncoder) -> list[int]:
    levels, dims = csv_list(args.level), args.dim or []
    if levels and dims:
        raise ValueError("give --dim or --level, not both")
    if levels:
        return [enc.resolve_dim(level=name) for name in levels]
    return [enc.resolve_dim(dim=d) for d in dims] or [enc.dims[-1]]


def cmd_encode(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.suffix in FILE_OUTPUTS:
        return _encode_file(args, out)
    check_writable(out)
    enc = SteerableEncoder.from_pretrained(args.model, cache=False, **backbone_options(args))
    if args.dial is not None:
        enc.set_dial(args.dial)  # refused here, before any work, for a model with no dial
    summary = encode_to_shards(
        args.input,
        out,
        args.model,
        dims=_dims(args, enc),
        dtype=args.dtype,
        text_col=args.text_col,
        id_col=args.id_col,
        shard_rows=args.chunk_size,
        dial=args.dial,
        backbone=backbone_options(args),
        overwrite=args.overwrite,
        **execution(args),
    )
    print(
        f"encoded {summary['rows']} texts -> {summary['out']} ({summary['shards_encoded']} shards encoded, "
        f"{summary['shards_resumed']} resumed; {summary['seconds']:.1f} s)"
    )
    return 0


def _encode_file(args: argparse.Namespace, out: Path) -> int:
    """One output file (.npy or .parquet), encoded here, chunk by chunk."""
    if args.executor != "local":
        raise ValueError(f"--out {out}: --executor {args.executor} writes a folder of shards; give a folder")
    for option in ("id_col", "ray_address", "workers"):
        if getattr(args, option) is not None:
            raise ValueError(f"--{option.replace('_', '-')} needs a folder --out (shards), not a {out.suffix} file")
    if args.dtype != "float32":
        raise ValueError(f"--dtype {args.dtype} needs a folder --out (shards); {out.suffix} files hold float32")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"--out {out}: the file exists; give --overwrite to replace it, or another --out")
    check_writable(out)
    enc = SteerableEncoder.from_pretrained(args.model, cache=False, **backbone_options(args))
    if args.dial is not None:
        enc.set_dial(args.dial)
    dims = _dims(args, enc)
    if len(dims) > 1:
        raise ValueError(f"--out {out}: one dim a file; several dims need a folder --out (shards)")
    summary = enc.encode_file(
        args.input, out, dim=dims[0], text_col=args.text_col, chunk_size=args.chunk_size, progress=not args.quiet
    )
    print(
        f"encoded {summary['rows']} texts at {dims[0]} dims -> {summary['out']} "
        f"({summary['chunks_encoded']} chunks encoded, {summary['chunks_reused']} resumed)"
    )
    return 0


def cmd_cache_build(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    ds, _ = load_data(args)
    backbone = Backbone(args.backbone, **backbone_options(args))
    summary = build_cache(
        [ds.train.texts, ds.validation.texts, ds.test.texts],
        backbone,
        **execution(args),
    )
    print(
        f"{ds.name}: {summary['texts']} distinct texts, {summary['cached_before']} already cached, "
        f"{summary['encoded']} encoded ({backbone.name}; {summary['seconds']:.1f} s)"
    )
    return 0


def execution(args: argparse.Namespace) -> dict:
    """Where and how the job runs: the keyword arguments of the encoding jobs from the command line."""
    return {
        "executor": args.executor,
        "address": args.ray_address,
        "workers": args.workers,
        "cpus_per_worker": args.cpus_per_worker,
        "gpus_per_worker": args.gpus_per_worker,
        "threads": args.threads,
        "progress": not args.quiet,
    }


def add_execution_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: this process; ray: a Ray Data job over an actor pool (each actor loads the model once)",
    )
    g.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    g.add_argument(
        "--workers",
        type=positive_int,
        help="Ray actors (default: as many as the cluster's CPUs, or GPUs with --gpus-per-worker, allow)",
    )
    g.add_argument(
        "--cpus-per-worker", type=positive_int, default=1, help="CPUs (torch threads) per Ray actor (default 1)"
    )
    g.add_argument(
        "--gpus-per-worker",
        type=non_negative_float,
        default=0,
        help="GPUs per Ray actor; above 0 the backbone encodes on the actor's GPU (default 0)",
    )
    g.add_argument("--threads", type=positive_int, help="torch CPU threads here (default: all cores)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser(
        "encode",
        help="embed a (large) text file, or a folder of them, at a chosen granularity",
        description="Stream texts (one a line, or a column of CSV / JSON Lines / Parquet) through a "
        "trained model. --out FILE.npy|.parquet: one file, chunk by chunk on this machine. --out DIR: "
        "a folder of Parquet shards (row, id, one embedding column per dim) and a manifest, on this "
        "machine or as a Ray Data job (--executor ray); the inputs and DIR must then be reachable by "
        "every node. Either way memory stays flat however long the input, and an interrupted run "
        "resumes: a rerun encodes only what is missing.",
    )
    p.add_argument("input", help=".txt, .csv, .tsv, .jsonl(.gz) or .parquet, or (with a folder --out) a folder of them")
    p.add_argument("--model", required=True, help="run folder written by `steer train`")
    p.add_argument("--out", required=True, help="output .npy or .parquet file, or a folder of shards")
    p.add_argument(
        "--dim", type=dim_list, help="prefix dims (default: full); a folder --out takes several, comma-separated"
    )
    p.add_argument("--level", help="a level name, or coarse / fine, instead of --dim (comma-separated: several)")
    p.add_argument(
        "--dial",
        type=unit_interval,
        help="for a model trained with --method dial: 0 = MRL-like prefix, 1 = pure coarse code",
    )
    p.add_argument("--text-col", help="text column of a table file (default: text)")
    p.add_argument("--id-col", help="an id column of table files, kept beside each vector (folder --out)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="vectors of a folder --out (default float32)")
    p.add_argument(
        "--chunk-size",
        type=positive_int,
        default=SHARD_ROWS,
        help=f"texts per chunk, and per shard of a folder --out (default {SHARD_ROWS})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (file, or shards and manifest)")
    add_execution_args(p)
    add_backbone_args(p.add_argument_group("backbone (default: as the model was trained)"), name=False)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("cache", help="the backbone's vector cache")
    cache = p.add_subparsers(dest="cache_command", required=True)
    p = cache.add_parser(
        "build",
        help="encode a data set's texts into the vector cache (here, or on a Ray cluster)",
        description="Put the backbone vectors of every text of a data set (all splits) into the vector "
        "cache that `steer train` reads (STEER_CACHE_DIR), encoding only the texts it lacks, in the "
        "chunks training would: the same vectors. With --executor ray the texts are encoded on the "
        "cluster's workers and stored here as they come back; an interrupted build keeps what it did.",
    )
    add_data_args(p)
    add_execution_args(p)
    add_backbone_args(p.add_argument_group("backbone"))
    p.set_defaults(func=cmd_cache_build)
