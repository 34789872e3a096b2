"""Where onnx-int8's time goes, operator by operator, against the same fused graph in fp32.

``--runtime onnx-int8`` is fused by onnxruntime's transformer optimiser, then its matrix products and
attention are quantised. This bench runs that graph and the same fused graph left in fp32 (made from
the same eager export, in a temporary folder) on the same batches of N texts, with onnxruntime's
profiler on, one thread, and prints each operator type's kernel time in both. The ratio of the
matrix-product operators (``MatMul`` and ``Attention`` in fp32, ``DynamicQuantizeMatMul`` and
``QAttention`` in int8) is what int8 arithmetic buys on this CPU; the element-wise operators
(layer norms, GELU) are fp32 in both graphs and cost the same. int8's speed-up over an fp32 runtime
cannot exceed the product ratio by much, whatever the batching.

    STEER_DATA_DIR=/work/shared/datasets python bench/onnx_ops.py [--n 1000] [--dataset clinc150] [--threads 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from steerable.backbone import DEFAULT_BACKBONE, Backbone
from steerable.backbone.onnx import OnnxEncoder
from steerable.data import load_dataset

from _common import finish, machine, print_machine, write_json

PRODUCTS = {"MatMul", "Attention", "DynamicQuantizeMatMul", "QAttention", "MatMulInteger"}


def fused_fp32(int8: OnnxEncoder, out: Path) -> Path:
    """The int8 graph's fused fp32 twin: its eager fp32 export (the int8 folder's sibling) through the
    same optimiser settings."""
    from onnxruntime.transformers.optimizer import optimize_model

    meta = int8.meta
    eager = int8.folder.parent / f"{int8.folder.name.split('-int8-')[0]}-eager-fp32"
    if not meta.get("fusions"):
        raise SystemExit(f"{int8.folder}: this int8 export is not fused; nothing to compare operator by operator")
    for f in eager.iterdir():
        if f.name != "model.onnx":
            shutil.copy2(f, out / f.name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optimize_model(
            str(eager / "model.onnx"),
            model_type="bert",
            num_heads=meta["num_heads"],
            hidden_size=meta["hidden_size"],
            opt_level=1,
        )
    model.save_model_to_file(str(out / "model.onnx"))
    return out


def profile(folder: Path, feeds: list[dict], threads: int, profile_dir: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds for all feeds, and kernel seconds per operator type (onnxruntime's profiler)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = str(profile_dir / folder.name)
    session = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    session.run(["sentence_embedding"], feeds[0])  # warm-up (in the profile too, a small share)
    t0 = time.perf_counter()
    for feed in feeds:
        session.run(["sentence_embedding"], feed)
    wall = time.perf_counter() - t0
    ops: collections.Counter[str] = collections.Counter()
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            ops[event["args"]["op_name"]] += event["dur"] / 1e6
    return wall, dict(ops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="clinc150", help="data set under $STEER_DATA_DIR (default clinc150)")
    ap.add_argument("--n", type=int, default=1000, help="texts (default 1000)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE, help="backbone name or path (default MiniLM)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # so the machine record and the load check count our threads

    m = machine()
    print_machine(m)
    pool = load_dataset(args.dataset).train.texts
    texts = [pool[i] for i in np.random.default_rng(args.seed).permutation(len(pool))[: args.n]]
    int8 = Backbone(args.backbone, runtime="onnx-int8").onnx
    feeds = [feed for _, feed in int8.batches(texts)]  # the runtime's own batching
    with tempfile.TemporaryDirectory(prefix="steer-bench-ops-") as tmp:
        fp32 = fused_fp32(int8, Path(tmp))
        prof = Path(tmp) / "profiles"
        prof.mkdir()
        runs = {
            name: profile(folder, feeds, args.threads, prof) for name, folder in (("fp32", fp32), ("int8", int8.folder))
        }

    print(f"{len(texts)} texts from {args.dataset}/train in {len(feeds)} batches, {args.threads} thread(s)")
    print(f"{'operator':<26}{'fp32 s':>9}{'int8 s':>9}")
    ops = sorted(set(runs["fp32"][1]) | set(runs["int8"][1]), key=lambda o: -max(r[1].get(o, 0) for r in runs.values()))
    for op in ops:
        a, b = runs["fp32"][1].get(op, 0.0), runs["int8"][1].get(op, 0.0)
        if max(a, b) >= 0.005:
            print(f"{op:<26}{a:9.3f}{b:9.3f}")
    products = {k: sum(v for op, v in r[1].items() if op in PRODUCTS) for k, r in runs.items()}
    rest = {k: sum(r[1].values()) - products[k] for k, r in runs.items()}
    result = {
        "machine": m,
        "dataset": args.dataset,
        "texts": len(texts),
        "batches": len(feeds),
        "threads": args.threads,
        "backbone": args.backbone,
        "wall_s": {k: r[0] for k, r in runs.items()},
        "ops_s": {k: r[1] for k, r in runs.items()},
        "products_s": products,
        "rest_s": rest,
        "products_speedup": products["fp32"] / products["int8"],
        "wall_speedup": runs["fp32"][0] / runs["int8"][0],
    }
    print(
        f"matrix products: fp32 {products['fp32']:.3f} s, int8 {products['int8']:.3f} s -> "
        f"{result['products_speedup']:.2f}x; the rest {rest['fp32']:.3f} s / {rest['int8']:.3f} s; "
        f"whole graph {runs['fp32'][0]:.3f} s / {runs['int8'][0]:.3f} s -> {result['wall_speedup']:.2f}x"
    )
    finish(m)
    write_json("onnx_ops", result)


if __name__ == "__main__":
    main()
