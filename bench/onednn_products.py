"""Would oneDNN's products make a training step faster than torch's default (MKL) on this CPU?

Times the MLP head's forward products at the rows of one CLINC V5 step (a batch of 32 anchors and a
group of positives per level: 96 rows) and a level classifier's: ``torch.addmm`` (what ``F.linear``
runs on the CPU) against oneDNN's linear with its weight packed ahead for that row count
(``torch.ops.mkldnn._reorder_linear_weight`` and ``_linear_pointwise``, what inductor's CPU
backend uses), the most favourable case for oneDNN. Alternates the two, prints the median of
``--rounds`` rounds of ``--calls`` calls each, their ratio and the largest difference of the results.

    python bench/onednn_products.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from _common import finish, machine, print_machine, write_json

# (rows, in, out): the MLP head's three layers at a V5 step's 96 rows, and a 150-class classifier at 32
SHAPES = [(96, 384, 1024), (96, 1024, 1024), (96, 1024, 256), (32, 256, 150)]


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call over ``calls`` calls."""
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = machine()
    print_machine(m)
    g = torch.Generator().manual_seed(0)
    rows = []
    for n, k, out in SHAPES:
        x, w, b = (torch.randn(s, generator=g) for s in ((n, k), (out, k), (out,)))
        packed = torch.ops.mkldnn._reorder_linear_weight(w, n)

        def mkl() -> torch.Tensor:
            return torch.addmm(b, x, w.t())

        def onednn() -> torch.Tensor:
            return torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")

        for f in (mkl, onednn):  # warm up
            per_call(f, 20)
        times: dict[str, list[float]] = {"mkl": [], "onednn": []}
        for _ in range(args.rounds):
            times["mkl"].append(per_call(mkl, args.calls))
            times["onednn"].append(per_call(onednn, args.calls))
        med = {key: statistics.median(v) for key, v in times.items()}
        diff = float((mkl() - onednn()).abs().max())
        rows.append({"shape": [n, k, out], "median_us": {key: v * 1e6 for key, v in med.items()}, "max_abs_diff": diff})
        print(
            f"{n} x {k} -> {out}: addmm (MKL) {med['mkl'] * 1e6:,.1f} us, oneDNN {med['onednn'] * 1e6:,.1f} us "
            f"({med['onednn'] / med['mkl']:.2f}x the time), results up to {diff:.1e} apart"
        )
    finish(m)
    write_json("onednn_products", {"machine": m, "threads": args.threads, "rounds": args.rounds, "rows": rows})


if __name__ == "__main__":
    main()
