"""Backbone encoding throughput, the head's added cost, and the vector cache's hit path.

Measures, on N texts (default 2000) drawn by a seeded shuffle from a data set's training split
(clinc150: short intent queries; ``--dataset 20newsgroups``: long posts):

- backbone: ``Backbone.encode_uncached`` (no cache) after one warm-up batch; median of repeats, texts/s,
  with ``--backbone`` and ``--runtime`` (torch, onnx, onnx-int8; the ONNX export is made, or found in
  the cache, before timing); for an ONNX runtime also torch's texts/s on the same texts and the cosine
  of each vector with torch's (mean, min); and sentence-transformers' own ``encode`` on the same texts
  (one batch of 64 at a time on every thread: how the torch runtime batched before
  :mod:`steerable.batching`);
- heads: ``SteerableModel.embed_vectors`` (eval mode, every prefix dim) of a freshly initialised
  fractal / linear / mlp head on the same N pooled vectors; median of repeats, as % of backbone time;
- cache: ``VectorCache.get_or_encode`` in a temporary cache folder -- once cold (encode + write), then
  warm both with a fresh instance (reads the shards from disk) and with the same instance (in memory).

Targets: the head adds under 5 % to backbone encoding time (checked for the fractal head); onnx-int8
encodes at least 2x torch's texts/s (checked when --runtime onnx-int8).

    STEER_DATA_DIR=/work/shared/datasets python bench/encode_throughput.py [--n 2000] [--dataset clinc150] \
        [--backbone all-mpnet-base-v2] [--runtime onnx-int8] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from steerable.backbone import DEFAULT_BACKBONE, RUNTIMES, Backbone, VectorCache
from steerable.data import load_dataset
from steerable.heads import HEADS
from steerable.model import SteerableModel

from _common import finish, machine, print_machine, summary, timed, write_json

TARGET_HEAD_PCT = 5.0
TARGET_INT8_SPEEDUP = 2.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="clinc150", help="data set under $STEER_DATA_DIR (default clinc150)")
    ap.add_argument("--n", type=int, default=2000, help="texts to encode (default 2000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed backbone repeats (default 3)")
    ap.add_argument("--head-repeats", type=int, default=10, help="timed head repeats (default 10)")
    ap.add_argument("--heads", default="fractal,linear,mlp", help="comma-separated heads to time")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE, help="backbone name or path (default MiniLM)")
    ap.add_argument("--runtime", default="torch", choices=RUNTIMES, help="backbone runtime (default torch)")
    ap.add_argument("--max-seq-length", type=int, help="backbone maximum tokens (default: the model's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    m = machine()
    print_machine(m)
    ds = load_dataset(args.dataset)
    pool = ds.train.texts
    idx = np.random.default_rng(args.seed).permutation(len(pool))[: args.n]
    texts = [pool[i] for i in idx]
    mean_chars = float(np.mean([len(t) for t in texts]))
    backbone = Backbone(args.backbone, runtime=args.runtime, max_length=args.max_seq_length)
    print(
        f"data: {len(texts)} texts from {args.dataset}/train (mean {mean_chars:.0f} chars); "
        f"backbone {backbone.name}, batch {backbone.batch_size}, torch threads {torch.get_num_threads()}"
    )

    # -- backbone, no cache ---------------------------------------------------------------------
    backbone.encode_uncached(texts[: backbone.batch_size])  # warm-up: model load, first-call overheads
    vectors = np.empty((0, 0), dtype=np.float32)

    def encode():
        nonlocal vectors
        vectors = backbone.encode_uncached(texts)

    enc = summary(timed(encode, args.repeats))
    enc["texts_per_s"] = len(texts) / enc["median_s"]
    print(
        f"backbone encode_uncached ({backbone.runtime}): {enc['median_s']:.3f} s median of {args.repeats} "
        f"-> {enc['texts_per_s']:.1f} texts/s"
    )

    # -- an ONNX runtime against torch on the same texts ----------------------------------------
    versus = None
    if backbone.runtime != "torch":
        ref_backbone = Backbone(args.backbone, max_length=args.max_seq_length)
        ref_backbone.encode_uncached(texts[: ref_backbone.batch_size])
        ref = np.empty((0, 0), dtype=np.float32)

        def encode_ref():
            nonlocal ref
            ref = ref_backbone.encode_uncached(texts)

        ref_t = summary(timed(encode_ref, args.repeats))
        cos = (vectors * ref).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(ref, axis=1)
        speedup = ref_t["median_s"] / enc["median_s"]
        versus = {
            "torch": ref_t | {"texts_per_s": len(texts) / ref_t["median_s"]},
            "speedup": speedup,
            "cosine_mean": float(cos.mean()),
            "cosine_min": float(cos.min()),
        }
        print(
            f"torch on the same texts: {len(texts) / ref_t['median_s']:.1f} texts/s; {backbone.runtime} is "
            f"{speedup:.2f}x torch; cosine with torch's vectors mean {cos.mean():.5f}, min {cos.min():.5f}"
        )

    # -- sentence-transformers' own encode (one batch of 64 at a time on every thread) ----------
    st_model = (ref_backbone if versus is not None else backbone).load(progress=False)
    st_vectors = None

    def encode_st():
        nonlocal st_vectors
        st_vectors = st_model.encode(texts, batch_size=backbone.batch_size, show_progress_bar=False)

    st_model.encode(texts[: backbone.batch_size], show_progress_bar=False)
    st_t = summary(timed(encode_st, args.repeats))
    assert st_vectors is not None
    st = st_t | {"texts_per_s": len(texts) / st_t["median_s"], "speedup": st_t["median_s"] / enc["median_s"]}
    if versus is None:
        st["max_abs_diff"] = float(np.abs(st_vectors - vectors).max())
    print(
        f"sentence-transformers' encode on the same texts: {st['texts_per_s']:.1f} texts/s; {backbone.runtime} "
        f"is {st['speedup']:.2f}x that" + (f" (vectors equal to {st['max_abs_diff']:.1e})" if versus is None else "")
    )

    # -- heads on the same number of pooled vectors ---------------------------------------------
    heads = {}
    for kind in [h.strip() for h in args.heads.split(",") if h.strip()]:
        torch.manual_seed(0)
        model = SteerableModel(HEADS[kind](vectors.shape[1]), ds.hierarchy, backbone.name).eval()
        model.embed_vectors(vectors[:256])  # warm-up
        r = summary(timed(lambda: model.embed_vectors(vectors), args.head_repeats))
        r["vectors_per_s"] = len(vectors) / r["median_s"]
        r["pct_of_backbone"] = 100.0 * r["median_s"] / enc["median_s"]
        r["params"] = sum(p.numel() for p in model.head.parameters())
        heads[kind] = r
        print(
            f"head {kind:<8} embed_vectors: {1e3 * r['median_s']:8.2f} ms median of {args.head_repeats} "
            f"({r['params']:,} params) = {r['pct_of_backbone']:.2f} % of backbone time"
        )

    # -- cache ----------------------------------------------------------------------------------
    with tempfile.TemporaryDirectory(prefix="steer-bench-cache-") as tmp:
        cache = VectorCache(backbone, root=tmp)
        cold = summary(timed(lambda: cache.get_or_encode(texts, progress=False), 1))
        warm_mem = summary(timed(lambda: cache.get_or_encode(texts, progress=False), args.repeats))
        warm_disk = summary(
            timed(lambda: VectorCache(backbone, root=tmp).get_or_encode(texts, progress=False), args.repeats)
        )
        same = np.array_equal(
            cache.get_or_encode(texts, progress=False),
            VectorCache(backbone, root=tmp).get_or_encode(texts, progress=False),
        )
    cache_res = {
        "cold_encode_and_write": cold,
        "warm_same_instance": warm_mem,
        "warm_new_instance": warm_disk,
        "disk_and_memory_agree": same,
    }
    for name, r in (
        ("cold (encode + write)", cold),
        ("warm, same instance", warm_mem),
        ("warm, new instance (loads shards)", warm_disk),
    ):
        print(
            f"cache get_or_encode {name:<34}: {1e3 * r['median_s']:9.2f} ms "
            f"-> {len(texts) / r['median_s']:,.0f} texts/s"
        )

    int8_met = None
    if versus is not None and backbone.runtime == "onnx-int8":
        int8_met = versus["speedup"] >= TARGET_INT8_SPEEDUP
        print(
            f"target: onnx-int8 at least {TARGET_INT8_SPEEDUP:g}x torch's texts/s: "
            f"{versus['speedup']:.2f}x, {'MET' if int8_met else 'NOT MET'}"
        )
    fractal_pct = heads.get("fractal", {}).get("pct_of_backbone")
    meets = None if fractal_pct is None else fractal_pct < TARGET_HEAD_PCT
    if fractal_pct is not None:
        print(f"target: fractal head adds {fractal_pct:.2f} % (< {TARGET_HEAD_PCT} %): {'MET' if meets else 'NOT MET'}")
    finish(m)
    # Default settings keep the file name they always had; others get theirs.
    tags = (
        ([] if backbone.runtime == "torch" else [backbone.runtime])
        + ([] if args.backbone == DEFAULT_BACKBONE else [args.backbone.rsplit("/", 1)[-1]])
        + ([] if args.dataset == "clinc150" else [args.dataset])
    )
    write_json(
        "-".join(["encode_throughput", *tags]),
        {
            "machine": m,
            "config": {
                "dataset": args.dataset,
                "n": len(texts),
                "mean_chars": mean_chars,
                "repeats": args.repeats,
                "head_repeats": args.head_repeats,
                "seed": args.seed,
                "backbone": backbone.name,
                "runtime": backbone.runtime,
                "threads": torch.get_num_threads(),
                "backbone_batch_size": backbone.batch_size,
            },
            "backbone": enc,
            "versus_torch": versus,
            "versus_sentence_transformers": st,
            "heads": heads,
            "cache": cache_res,
            "target": {
                "head_pct_max": TARGET_HEAD_PCT,
                "fractal_pct": fractal_pct,
                "met": meets,
                "int8_speedup_min": TARGET_INT8_SPEEDUP,
                "int8_met": int8_met,
            },
        },
    )


if __name__ == "__main__":
    main()
