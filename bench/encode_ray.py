"""`steer encode --out DIR` on a Ray cluster against the same job on one machine, at equal cores.

The corpus is 100,000 real texts (default): every text of the short-text data sets (CLINC, GoEmotions,
TREC), DBPedia's and 20 Newsgroups posts cut into their first two pieces of 300 characters, shuffled
with a fixed seed (so every shard mixes lengths) and cut to the count. The model is an MLP head on the default
backbone (its weights untrained: the head costs the same either way, and the backbone is nearly
all of the time).

Both commands run as child processes, in turn (one machine, Ray, one machine, Ray, ...), from a
fresh output folder each time, so each time includes its start: the one-machine path with
``--threads CORES``; the Ray path starting a local Ray instance of CORES CPUs with CORES actors of
one CPU each. Target: the Ray path's wall time at most 1.15x the one-machine path's (medians; the
ratio taken pair by pair). The per-worker rate (texts a second for one actor of one CPU) gives the
expected times for 10M and 100M texts on a cluster (docs/usage.md).

    python bench/encode_ray.py [--texts 100000] [--rounds 2] [--cores 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from steerable import SteerableModel
from steerable.atomic import atomic_write_json
from steerable.data import Hierarchy, data_dir
from steerable.heads import MLPHead
from steerable.shards import iter_shards, read_manifest

from _common import OUT_DIR, finish, machine, print_machine

WORK = OUT_DIR / "encode_ray"
STEER = str(Path(sys.executable).with_name("steer"))


def corpus(n: int, seed: int = 0) -> list[str]:
    root = data_dir()
    texts: list[str] = []
    for name in ("clinc150", "goemotions", "trec", "dbpedia_classes_partial", "20newsgroups"):
        for split in sorted((root / name).glob("*.jsonl.gz")):
            with gzip.open(split, "rt", encoding="utf-8") as f:
                rows = [json.loads(line)["text"] for line in f if line.strip()]
            if name == "20newsgroups":  # long posts: their first two pieces of 300 characters
                rows = [piece for t in rows for piece in (t[:300], t[300:600]) if piece.strip()]
            texts += rows
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} texts in {root}; ask for fewer")
    order = np.random.default_rng(seed).permutation(len(texts))
    return [" ".join(texts[i].split()) for i in order[:n]]  # one line each


def prepare(n: int) -> tuple[Path, Path]:
    WORK.mkdir(parents=True, exist_ok=True)
    src, run = WORK / f"corpus-{n}.txt", WORK / "run"
    if not src.exists():
        src.write_text("\n".join(corpus(n)) + "\n", encoding="utf-8")
    if not (run / "config.json").exists():
        torch.manual_seed(0)
        h = Hierarchy(("coarse", "fine"), (("a", "b"), ("a1", "a2", "b1")), (np.array([0, 0, 1]),))
        SteerableModel(MLPHead(384), h, "sentence-transformers/all-MiniLM-L6-v2").save(run)
    return src, run


def run(cmd: list[str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    if not read_manifest(out)["complete"]:
        raise SystemExit(f"{out}: not complete")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    m = machine()
    print_machine(m)
    src, model = prepare(args.texts)
    common = [STEER, "encode", str(src), "--model", str(model), "--dim", "64,256", "--quiet"]
    local_cmd = [*common, "--out", str(WORK / "local"), "--threads", str(args.cores)]
    ray_cmd = [*common, "--out", str(WORK / "ray"), "--executor", "ray", "--workers", str(args.cores)]
    local_s: list[float] = []
    ray_s: list[float] = []
    for r in range(args.rounds):
        local_s.append(run(local_cmd, WORK / "local"))
        ray_s.append(run(ray_cmd, WORK / "ray"))
        print(f"round {r + 1}: one machine {local_s[-1]:.1f} s, Ray {ray_s[-1]:.1f} s ({ray_s[-1] / local_s[-1]:.3f}x)")
        report(args, m, local_s, ray_s)  # after every round: a stopped bench keeps its rounds
    finish(m)  # Ray's own daemons (not children this process waits for) count as other processes here
    report(args, m, local_s, ray_s)


def report(args: argparse.Namespace, m: dict, local_s: list[float], ray_s: list[float]) -> None:
    ratios = [b / a for a, b in zip(local_s, ray_s)]
    identical = all(
        np.array_equal(a.vectors[d], b.vectors[d])
        for a, b in zip(iter_shards(WORK / "local"), iter_shards(WORK / "ray"))
        for d in (64, 256)
    )
    per_worker = args.texts / statistics.median(ray_s) / args.cores
    result = {
        "machine": m,
        "texts": args.texts,
        "cores": args.cores,
        "one_machine_s": local_s,
        "ray_s": ray_s,
        "ratio_ray_over_one_machine": ratios,
        "median_ratio": statistics.median(ratios),
        "one_machine_texts_per_s": args.texts / statistics.median(local_s),
        "ray_texts_per_s": args.texts / statistics.median(ray_s),
        "per_worker_texts_per_s": per_worker,
        "identical_vectors": identical,
        "target": "ray wall time <= 1.15x one machine's",
        "met": statistics.median(ratios) <= 1.15,
        "expected_hours": {
            f"{n_texts} texts, {workers} one-CPU workers": n_texts / (per_worker * workers) / 3600
            for n_texts in (10_000_000, 100_000_000)
            for workers in (32, 128)
        },
    }
    print(
        f"{len(ratios)} rounds: one machine {statistics.median(local_s):.1f} s "
        f"({result['one_machine_texts_per_s']:.0f} texts/s), Ray {statistics.median(ray_s):.1f} s "
        f"({result['ray_texts_per_s']:.0f} texts/s): median ratio {result['median_ratio']:.3f} "
        f"(target <= 1.15: {'met' if result['met'] else 'NOT met'}); per one-CPU worker {per_worker:.0f} "
        f"texts/s; identical vectors: {identical}"
    )
    atomic_write_json(OUT_DIR / "encode_ray.json", result)
    print(f"wrote {OUT_DIR / 'encode_ray.json'}")


if __name__ == "__main__":
    main()
