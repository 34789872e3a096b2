"""Which head for the methods beyond V5: the MLP trunk vs the seed's fractal head, same method, seeds.

For each head and seed: train the method on cached backbone vectors (the paper sweep's caps: 10,000
train / 2,000 test, seeded), then report the standard protocol's S, ShortCoarse, FullFine, the
linear-probe leakage of the 64-d prefix and the training time. Runs go to ``--workers`` processes of
``--threads`` torch threads each, so time only compares with time from the same machine and setting.

``--export-vectors FILE.npz`` writes the split vectors and hierarchy (for a machine without the
data or the backbone) and exits; ``--vectors FILE.npz`` trains from such a file.

    STEER_DATA_DIR=../shared/datasets python bench/heads_beyond.py --method bottleneck --heads mlp,fractal
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from steerable.backbone import Backbone, split_vectors
from steerable.data import Hierarchy, SplitVectors, load_dataset
from steerable.methods import preset
from steerable.metrics import evaluate, probe_prefix, standard_protocol
from steerable.model import SteerableModel
from steerable.training import TrainConfig, train

from _common import finish, machine, print_machine


def load_vectors(args):
    if args.vectors:
        z = np.load(args.vectors)
        vecs = SplitVectors(*(z[k] for k in ("train", "validation", "test", "y_train", "y_validation", "y_test")))
        return vecs, Hierarchy.from_dict(json.loads(str(z["hierarchy"])))
    ds = load_dataset(args.dataset)
    vecs = split_vectors(ds, Backbone(), max_train=args.max_train, max_test=args.max_test, seed=42, progress=False)
    return vecs, ds.hierarchy


def one_run(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    args = argparse.Namespace(**job["args"])
    vecs, h = load_vectors(args)
    sch = preset(job["method"], h.num_levels)
    cfg = TrainConfig.for_schedule(sch, seed=job["seed"], epochs=args.epochs)
    torch.manual_seed(job["seed"])
    model = SteerableModel.for_schedule(sch, job["head"], vecs.train.shape[1], h, "bench")
    t0 = time.perf_counter()
    train(model, sch, vecs.train, vecs.y_train, vecs.validation, vecs.y_validation, cfg, progress=False)
    seconds = time.perf_counter() - t0
    m = evaluate(model, vecs, h.level_names, [standard_protocol()])["standard"]
    train_prefix = model.embed_vectors(vecs.train, model.dims[:1])[0]  # the shortest prefix
    test_prefix = model.embed_vectors(vecs.test, model.dims[:1])[0]
    probe = probe_prefix(train_prefix, vecs.y_train, test_prefix, vecs.y_test, h.level_names, seed=job["seed"])[
        "accuracy"
    ][h.level_names[-1]]
    row = {
        "head": job["head"],
        "seed": job["seed"],
        "train_s": seconds,
        "fine_probe": probe,
        **{k: m[k] for k in ("steerability_score", "short_coarse", "full_fine")},
    }
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="clinc150")
    ap.add_argument("--method", default="bottleneck")
    ap.add_argument("--heads", default="mlp,fractal")
    ap.add_argument("--seeds", default="42,123,456,789,1024")
    ap.add_argument("--epochs", type=int, help="default: the method's recipe")
    ap.add_argument("--max-train", type=int, default=10_000)
    ap.add_argument("--max-test", type=int, default=2_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vectors", help="split vectors from --export-vectors (no data or backbone needed)")
    ap.add_argument("--export-vectors", help="write the split vectors and hierarchy here and exit")
    ap.add_argument("--out", help="result JSON (default bench/out/heads_beyond.json)")
    args = ap.parse_args()
    if args.export_vectors:
        vecs, h = load_vectors(args)
        np.savez(
            args.export_vectors,
            train=vecs.train,
            validation=vecs.validation,
            test=vecs.test,
            y_train=vecs.y_train,
            y_validation=vecs.y_validation,
            y_test=vecs.y_test,
            hierarchy=json.dumps(h.to_dict()),
        )
        print(f"wrote {args.export_vectors}")
        return
    m = machine()
    print_machine(m)
    jobs = [
        {"head": head, "seed": int(s), "method": args.method, "threads": args.threads, "args": vars(args)}
        for head in args.heads.split(",")
        for s in args.seeds.split(",")
    ]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            rows = list(pool.map(one_run, jobs))
    else:
        rows = [one_run(j) for j in jobs]
    summary = {}
    for head in args.heads.split(","):
        r = [x for x in rows if x["head"] == head]
        summary[head] = {
            k: float(np.mean([x[k] for x in r]))
            for k in ("steerability_score", "short_coarse", "full_fine", "fine_probe")
        }
        summary[head]["median_train_s"] = float(np.median([x["train_s"] for x in r]))
        print(head, {k: round(v, 4) for k, v in summary[head].items()})
    finish(m)
    out = args.out or os.path.join(os.path.dirname(__file__), "out", "heads_beyond.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(
            {
                "machine": m,
                "method": args.method,
                "dataset": args.dataset,
                "workers": args.workers,
                "threads": args.threads,
                "rows": rows,
                "summary": summary,
            },
            f,
            indent=2,
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
