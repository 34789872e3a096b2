"""Encoding and head training on a GPU against the CPU, on CLINC-150. Run by ``bench/gpu.sh``.

1. Encoding: every CLINC text (train, validation, test) through the backbone on the GPU into an empty
   vector cache (texts/s, model load apart), and a sample of them on the CPU at the same batch size.
2. Training on the cached vectors, as ``steer train`` trains (the method's recipe, seed 42, the
   training split capped as ``steer reproduce`` caps it): V5 and MRL with ``train(..., device=...)``
   on the GPU (fp32 and bf16 autocast) and on the CPU at ``--cpu-threads`` threads. Seconds per run,
   and each trained model's 5-NN accuracy on the test split (coarse at 64 dims, fine at 256) so the
   devices can be compared on what they learn, not only on speed.

    python bench/gpu.py --cpu-threads 16 --cpu-threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from steerable.backbone import Backbone, VectorCache, split_vectors
from steerable.data import load_dataset
from steerable.methods import preset
from steerable.metrics import knn_accuracy
from steerable.model import SteerableModel
from steerable.training import TrainConfig, train

from _common import machine, print_machine, write_json

MAX_TRAIN, MAX_TEST = 10_000, 2_000  # as steer reproduce caps CLINC


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def encode(name: str, texts: list[str], device: str, batch_size: int, cache_root: str | None) -> dict:
    backbone = Backbone(name, device=device, batch_size=batch_size)
    t0 = time.perf_counter()
    backbone.encode_uncached(texts[:batch_size])  # loads the model, warms the kernels
    sync(device)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    VectorCache(backbone, cache_root).get_or_encode(texts, progress=False)
    sync(device)
    seconds = time.perf_counter() - t0
    return {
        "device": device,
        "texts": len(texts),
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "load_and_warmup_s": load,
        "batch_size": batch_size,
    }


def train_once(method: str, vecs, hierarchy, device: str, precision: str, epochs: int | None) -> dict:
    schedule = preset(method, hierarchy.num_levels)
    cfg = TrainConfig.for_schedule(schedule, seed=42, precision=precision, epochs=epochs)
    torch.manual_seed(42)
    model = SteerableModel.for_schedule(schedule, "mlp", vecs.train.shape[1], hierarchy, "bench")
    sync(device)
    t0 = time.perf_counter()
    history = train(
        model,
        schedule,
        vecs.train,
        vecs.y_train,
        vecs.validation,
        vecs.y_validation,
        cfg,
        progress=False,
        device=device,
    )
    sync(device)
    seconds = time.perf_counter() - t0
    short, full = model.embed_vectors(vecs.test, [64, 256])
    ref_short, ref_full = model.embed_vectors(vecs.train, [64, 256])
    coarse64 = knn_accuracy(short, vecs.y_test, ref_short, vecs.y_train, k=5)[0]
    fine256 = knn_accuracy(full, vecs.y_test, ref_full, vecs.y_train, k=5)[-1]
    return {
        "method": method,
        "device": device,
        "precision": precision,
        "seconds": seconds,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "best_epoch": history["best_epoch"],
        "coarse_at_64": float(coarse64),
        "fine_at_256": float(fine256),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--batch-size", type=int, default=256, help="encoding batch (256)")
    ap.add_argument(
        "--cpu-threads",
        type=int,
        action="append",
        default=None,
        help="CPU thread counts to train at (repeatable; default 2)",
    )
    ap.add_argument("--cpu-sample", type=int, default=2048, help="texts encoded on the CPU for its rate")
    ap.add_argument("--methods", default="v5,mrl")
    ap.add_argument("--epochs", type=int, help="override the recipe's epochs (a quick check of the script)")
    ap.add_argument("--gpu", default="cuda", help="the accelerator's torch device (cuda)")
    args = ap.parse_args()
    if args.gpu.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: no CUDA device")
    m = machine() | {"gpu": torch.cuda.get_device_name(0) if args.gpu.startswith("cuda") else args.gpu}
    print_machine(m)
    print(f"gpu: {m['gpu']}")
    ds = load_dataset("clinc150")
    texts = list(dict.fromkeys(t for split in (ds.train, ds.validation, ds.test) for t in split.texts))
    out: dict = {"machine": m, "encode": [], "train": []}
    # the GPU's vectors go to the default cache (STEER_CACHE_DIR: bench/gpu.sh makes it empty), where
    # the training below and bench/train_grouped.py find them
    gpu = encode(args.backbone, texts, args.gpu, args.batch_size, None)
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as cpu_cache:
        cpu = encode(args.backbone, texts[: args.cpu_sample], "cpu", args.batch_size, cpu_cache)
    cpu["threads"] = torch.get_num_threads()
    for r in (gpu, cpu):
        out["encode"].append(r)
        print(
            f"RESULT encode on {r['device']}: {r['texts']} CLINC texts, {r['texts_per_s']:.0f} texts/s "
            f"(batch {r['batch_size']}; model load + warm-up {r['load_and_warmup_s']:.1f} s)",
            flush=True,
        )
    backbone = Backbone(args.backbone, device=args.gpu)
    vecs = split_vectors(
        ds, backbone, cache=VectorCache(backbone), max_train=MAX_TRAIN, max_test=MAX_TEST, seed=42, progress=False
    )
    contenders = [(args.gpu, "fp32"), (args.gpu, "bf16")] + [(f"cpu:{t}", "fp32") for t in (args.cpu_threads or [2])]
    for method in args.methods.split(","):
        for device, precision in contenders:
            if device.startswith("cpu:"):
                torch.set_num_threads(int(device[4:]))
            r = train_once(
                method,
                vecs,
                ds.hierarchy,
                device.split(":")[0] if device.startswith("cpu:") else device,
                precision,
                args.epochs,
            )
            r["where"] = device
            out["train"].append(r)
            print(
                f"RESULT train {method} on {device} {precision}: {r['seconds']:.1f} s for {r['epochs']} epochs "
                f"(batch {r['batch_size']}, best epoch {r['best_epoch']}); 5-NN coarse@64 "
                f"{100 * r['coarse_at_64']:.1f}, fine@256 {100 * r['fine_at_256']:.1f}",
                flush=True,
            )
    write_json("gpu_clinc150", out)


if __name__ == "__main__":
    main()
