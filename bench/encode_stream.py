"""`steer encode` over generated text files of growing length: throughput and peak memory.

For each size N (default 1,000,000 lines) a seeded file of short synthetic requests is written,
then `steer encode FILE --model RUN --out OUT.npy --level coarse` runs as a child process; its peak
resident memory comes from the kernel (``resource.getrusage(RUSAGE_CHILDREN)``). Target: peak memory
does not grow with the file.

    python bench/encode_stream.py --model runs/clinc150-v5-mlp-s42 [--lines 20000,100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import finish, machine, print_machine, write_json

WORDS = (
    "book cancel move check find order pay send show tell remind set a the my for to at on in "
    "flight table card balance alarm song recipe weather meeting taxi hotel account transfer "
    "tomorrow tonight monday paris tokyo two three four please now later"
).split()


def write_texts(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            lengths = rng.integers(4, 12, m)
            words = rng.integers(0, len(WORDS), (m, 12))
            f.writelines(
                " ".join(WORDS[w] for w in row[:k]) + f" {start + i}\n"
                for i, (row, k) in enumerate(zip(words, lengths))
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="run folder of a trained model")
    ap.add_argument("--lines", default="1000000")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    m = machine()
    print_machine(m)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="steer-encode-"))
    for n in (int(x) for x in args.lines.split(",")):
        src, out = tmp / f"texts-{n}.txt", tmp / f"emb-{n}.npy"
        write_texts(src, n)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        env = os.environ | {"OMP_NUM_THREADS": str(args.threads)}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "steerable.cli",
                "encode",
                str(src),
                "--model",
                args.model,
                "--out",
                str(out),
                "--level",
                "coarse",
                "--quiet",
            ],
            check=True,
            env=env,
        )
        wall = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        row = {
            "lines": n,
            "wall_s": wall,
            "texts_per_s": n / wall,
            "peak_rss_mb": peak_mb,
            "peak_is_from_this_size": peak_mb * 1024 > before,
            "output_mb": out.stat().st_size / 2**20,
        }
        rows.append(row)
        print(row)
        src.unlink()
        out.unlink()
    finish(m)
    write_json("encode_stream", {"machine": m, "rows": rows})


if __name__ == "__main__":
    main()
