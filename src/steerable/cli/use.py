"""``steer index``, ``steer search`` and ``steer export``: using what was trained."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_folder, permit, read_json
from ..backbone import parse_backbone
from ..data import iter_text_chunks
from ..encoder import SteerableEncoder
from ..model import SteerableModel
from ..search import (
    BACKENDS,
    QUANTIZE,
    RESCORE,
    SearchIndex,
    bulk_load,
    check_index_target,
    open_index_folder,
    write_index_folder,
)
from ..search.qdrant import DEFAULT_COLLECTION
from ..search.ranking import truncate
from .common import (
    Parser,
    add_backbone_args,
    backbone_options,
    check_out,
    check_writable,
    non_negative_float,
    positive_int,
    unit_interval,
)


def read_texts(path: str, text_col: str | None) -> list[str]:
    """One text a line (.txt), or a column of a CSV / JSON Lines / Parquet file; read as `steer
    encode` reads it (a blank line or empty cell is the empty text), so document i is line or row i."""
    return [text for chunk in iter_text_chunks(path, 65536, text_col) for text in chunk]


def cmd_index(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    # before any encoding: an existing folder, collection or table, a missing URL, a silent server
    check_index_target(
        args.out,
        backend=args.backend,
        url=args.url,
        collection=args.collection,
        overwrite=args.overwrite,
        quantize=args.quantize,
        rescore=args.rescore,
    )
    check_writable(Path(args.out))
    where = f" (collection {args.collection!r})" if args.backend in ("qdrant", "qdrant-edge", "pgvector") else ""
    if args.shards:  # vectors encoded already (`steer encode --out DIR`): loaded shard by shard
        if args.model or args.embeddings or args.dial is not None:
            raise ValueError(
                "--shards holds the vectors already (and the dial they were encoded at): give it without "
                "--model, --embeddings or --dial"
            )
        done = bulk_load(
            args.shards,
            args.out,
            args.backend,
            prefix_dim=args.prefix_dim,
            url=args.url,
            collection=args.collection,
            overwrite=args.overwrite,
            quantize=args.quantize,
            rescore=args.rescore,
            oversample=args.oversample,
            progress=not args.quiet,
        )
        if "note" in done:
            print(f"steer: note: {done['note']}", file=sys.stderr)
        before = f", {done['already_loaded']} of them by an earlier run" if done["already_loaded"] else ""
        bits = ", prefix as sign bits" if args.quantize else ""
        print(
            f"index: {done['rows']} documents from {done['shards']} shards{before}, prefix {done['prefix_dim']}-d + "
            f"full {done['full_dim']}-d, backend {args.backend}{where}{bits} -> {args.out} ({done['seconds']:.1f} s)"
        )
        return 0
    if args.embeddings and args.dial is not None:
        raise ValueError("--dial sets how a model encodes; --embeddings are encoded already")
    prefix_dim = args.prefix_dim or 64
    texts = read_texts(args.texts, args.text_col)
    if args.embeddings:
        data = np.load(args.embeddings)
        if isinstance(data, np.lib.npyio.NpzFile):
            prefix, full = data["prefix"], data["full"]
        else:  # full vectors whose prefix is their renormalised truncation
            full = data
            prefix = truncate(full, prefix_dim)
        model = backbone = None
    else:
        if not args.model:
            raise ValueError("give --model RUN_FOLDER (or --embeddings FILE)")
        enc = SteerableEncoder.from_pretrained(args.model, **backbone_options(args))
        if args.dial is not None:
            enc.set_dial(args.dial)  # refused for a model with no dial
        prefix = enc.encode(texts, dim=prefix_dim, progress=not args.quiet)
        full = enc.encode(texts, progress=False)
        model, backbone = str(Path(args.model).resolve()), enc.backbone.name
    if len(prefix) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(prefix)} embeddings")
    write_index_folder(
        args.out,
        prefix,
        full,
        texts,
        backend=args.backend,
        model=model,
        url=args.url,
        collection=args.collection,
        overwrite=args.overwrite,
        quantize=args.quantize,
        rescore=args.rescore,
        oversample=args.oversample,
        dial=args.dial,
        backbone=backbone,
    )
    print(
        f"index: {len(texts)} documents, prefix {prefix.shape[1]}-d + full {full.shape[1]}-d, "
        f"backend {args.backend}{where}{', prefix as sign bits' if args.quantize else ''} -> {args.out}"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    index, meta, texts = open_index_folder(args.index, url=args.url)
    try:
        return _search(index, meta, texts, args)
    finally:
        index.close()


def _search(index: SearchIndex, meta: dict, texts: list[str], args: argparse.Namespace) -> int:
    if not meta.get("model"):
        raise ValueError("this index was built from an embeddings file; it has no model to encode a text query with")
    # the backbone's runtime and maximum length the documents were encoded with (older folders: the model's)
    settings = parse_backbone(meta["backbone"])[1] if meta.get("backbone") else {}
    enc = SteerableEncoder.from_pretrained(
        meta["model"], runtime=settings.get("runtime"), max_length=settings.get("max_seq_length")
    )
    if meta.get("dial") is not None:  # the documents were encoded at another dial than the model's own
        enc.set_dial(meta["dial"])
    q_prefix = enc.encode([args.query], dim=meta["prefix_dim"])
    q_full = enc.encode([args.query])
    shortlist = None if args.exact else args.shortlist
    funnel = f"{meta['prefix_dim']}-d shortlist of {shortlist}, {meta['full_dim']}-d rerank"
    if args.adaptive is not None and not args.exact:
        assert shortlist is not None  # not --exact: the --shortlist size
        ids, scores, extended = index.adaptive(q_prefix, q_full, k=args.k, shortlist=shortlist, margin=args.adaptive)
        mode = f"adaptive (margin {args.adaptive:g}): " + (
            funnel if extended[0] else f"{meta['prefix_dim']}-d prefix alone (confident)"
        )
    else:
        ids, scores = index.search(q_prefix, q_full, k=args.k, shortlist=shortlist)
        mode = "exact full-vector" if shortlist is None else funnel
    print(f"{mode} search over {meta['count']} documents ({meta['backend']}):")
    for rank, (i, s) in enumerate(zip(ids[0], scores[0]), start=1):
        if i >= 0:
            print(f"{rank:>3}. {s:.4f}  [{i}] {texts[i]}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the export module imports sentence-transformers, which takes
    # seconds, and no other command needs it.
    from ..export import export_onnx, export_sentence_transformer

    out = Path(args.out)
    check_out(out, args.overwrite)
    model = SteerableModel.load(args.run)
    run = Path(args.run)
    metrics = read_json(run / "metrics.json") if (run / "metrics.json").exists() else None
    config = read_json(run / "config.json").get("run", {})
    with atomic_folder(out) as tmp:  # written whole, then swapped in: nothing of an earlier export stays
        export_sentence_transformer(
            model, tmp, metrics=metrics, method=config.get("method"), data=config.get("dataset")
        )
        if args.onnx:
            export_onnx(model, tmp / "head.onnx", dim=args.onnx_dim)
        permit(tmp)
    if not args.quiet:
        print(f"sentence-transformers model -> {out} (SentenceTransformer({str(out)!r}))")
        if args.onnx:
            print(f"ONNX head -> {out / 'head.onnx'}")
    return 0


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser(
        "index",
        help="build a search index of texts (or of an embeddings file, or of a shard folder)",
        description="Encode texts with a trained model (short prefix + full vector) "
        "and store them in a search index folder: embedded (numpy), "
        "faiss (HNSW graph on the prefix, saved in the folder), qdrant "
        "(qdrant-client local mode in the folder, or a server with --url), "
        "qdrant-edge (Qdrant's engine in process, in the folder) or pgvector "
        "(a PostgreSQL table at --url). --embeddings and --shards take vectors encoded already; "
        "--shards (a folder written by `steer encode --out`) is loaded shard by shard, and a load that "
        "stops is resumed by running it again.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--texts", help=".txt (one text a line), or .csv/.jsonl/.parquet")
    source.add_argument(
        "--shards",
        help="a shard folder written by `steer encode --out` with --dim PREFIX,FULL, instead of texts and a model "
        "(embedded, faiss, qdrant-edge or pgvector)",
    )
    p.add_argument("--text-col", help="text column of a table file (default: text)")
    p.add_argument("--model", help="run folder of a trained model")
    p.add_argument("--embeddings", help=".npz with 'prefix' and 'full' arrays, or .npy full vectors")
    p.add_argument(
        "--prefix-dim",
        type=positive_int,
        help="shortlist prefix dims (default 64; with --shards the folder's smallest dim)",
    )
    p.add_argument("--backend", default="embedded", choices=list(BACKENDS))
    p.add_argument(
        "--url",
        help="pgvector: postgresql://... (required; its password is not stored); qdrant: a "
        "server URL (default: local mode in the folder)",
    )
    p.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"Qdrant collection or PostgreSQL table (default {DEFAULT_COLLECTION})",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing index folder, collection or table (refused otherwise)",
    )
    p.add_argument(
        "--quantize",
        choices=QUANTIZE,
        help="binary: the shortlist is ranked by the prefix's sign bits (a 64-d prefix is 8 bytes a document); "
        "embedded/faiss keep only the bits in memory and read the full vectors from disk for the rerank, "
        "pgvector indexes binary_quantize(prefix) with bit_hamming_ops, qdrant-edge uses binary quantisation "
        "with the float vectors on disk (not the qdrant backend)",
    )
    p.add_argument(
        "--rescore",
        choices=RESCORE,
        help="with --quantize binary (embedded, faiss): also keep the prefix as int8 or float16 in memory and "
        "rerank the bits' shortlist by it before the full vectors are read",
    )
    p.add_argument(
        "--oversample",
        type=positive_int,
        default=4,
        help="with --rescore: the bits shortlist this many times the search's --shortlist (default 4)",
    )
    p.add_argument(
        "--dial",
        type=unit_interval,
        help="for a model trained with --method dial: encode the documents at this dial (0 = MRL-like "
        "prefix, 1 = pure coarse code); steer search encodes queries at it too",
    )
    p.add_argument("--out", required=True, help="index folder")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: all cores)")
    p.add_argument("--quiet", action="store_true")
    add_backbone_args(p.add_argument_group("backbone (default: as the model was trained)"), name=False)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "search",
        help="search an index folder with a text query",
        description="Multi-stage by default: shortlist with the short prefix, rerank "
        "with the full vector. --exact ranks every document by the full "
        "vector.",
    )
    p.add_argument("index", help="index folder written by `steer index`")
    p.add_argument("query", help="query text")
    p.add_argument("--url", help="server URL instead of the one the index was built with (e.g. with a password)")
    p.add_argument("--k", type=positive_int, default=10)
    p.add_argument("--shortlist", type=positive_int, default=100, help="prefix shortlist size (default 100)")
    p.add_argument("--exact", action="store_true", help="exact full-vector search")
    p.add_argument(
        "--adaptive",
        type=non_negative_float,
        metavar="MARGIN",
        help="answer from the prefix alone when its top-1 similarity beats its top-2 by "
        "at least MARGIN (e.g. 0.02); rerank otherwise",
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "export",
        help="export a run as a sentence-transformers model (and ONNX head)",
        description="Write a folder that sentence_transformers.SentenceTransformer(path) "
        "loads offline (backbone + head), with steerable.json declaring the "
        "prefix dims and the level each serves; --onnx adds the head alone "
        "as ONNX (input: pooled backbone vector).",
    )
    p.add_argument("run", help="run folder written by `steer train`")
    p.add_argument("--out", required=True, help="output folder (refused if it holds files, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that holds files")
    p.add_argument("--onnx", action="store_true", help="also write head.onnx")
    p.add_argument("--onnx-dim", type=positive_int, help="ONNX output dim (default: full)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=cmd_export)
