"""Which of AdamW's element-wise operations a C loop repeats bit for bit, on this CPU and torch build.

Compiles a few C loops (the system C compiler, ``-O3 -mavx2 -mfma -ffp-contract=off``: every fused
multiply-add written out), runs each over a million random floats (an odd count, so that torch's
scalar tail is met too) and compares it with the torch operation ``steerable.training.adamw.FlatAdamW``
runs. Prints, per operation, whether the results are equal and how many elements differ.

    python bench/adamw_ops.py --threads 2
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import torch

C = """
#include <math.h>
void scale(float *a, long n, float s) { for (long i = 0; i < n; i++) a[i] = a[i] * s; }
void lerp(float *m, const float *g, long n, float w) { for (long i = 0; i < n; i++) m[i] = fmaf(w, g[i] - m[i], m[i]); }
void addcmul(float *v, const float *g, long n, float w) {
    for (long i = 0; i < n; i++) v[i] = fmaf(w * g[i], g[i], v[i]);
}
void root(const float *v, float *d, long n) { for (long i = 0; i < n; i++) d[i] = sqrtf(v[i]); }
void divide(float *d, long n, float s) { for (long i = 0; i < n; i++) d[i] = d[i] / s; }
void add(float *d, long n, float s) { for (long i = 0; i < n; i++) d[i] = d[i] + s; }
void addcdiv(float *p, const float *m, const float *d, long n, float s) {
    for (long i = 0; i < n; i++) p[i] = p[i] + (s * m[i]) / d[i];
}
"""

N = 1_000_003


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        src, lib = Path(tmp) / "ops.c", Path(tmp) / "ops.so"
        src.write_text(C)
        flags = ["-O3", "-mavx2", "-mfma", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC"]
        subprocess.run(["cc", *flags, str(src), "-o", str(lib)], check=True)
        c = ctypes.CDLL(str(lib))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(N, generator=g), torch.randn(N, generator=g)
    positive = torch.rand(N, generator=g) + 0.1
    n, f = ctypes.c_long(N), ctypes.c_float

    def at(t: torch.Tensor) -> ctypes.c_void_p:
        return ctypes.c_void_p(t.data_ptr())

    lr, wd, beta1, beta2, t = 1e-3, 0.01, 0.9, 0.999, 7
    bias2, step = (1 - beta2**t) ** 0.5, (lr / (1 - beta1**t)) * -1
    ops: dict[str, tuple[Callable[[torch.Tensor], object], Callable[[torch.Tensor], object]]] = {
        "p.mul_(1 - lr * wd)": (lambda x: x.mul_(1 - lr * wd), lambda y: c.scale(at(y), n, f(1 - lr * wd))),
        "m.lerp_(g, 1 - beta1)": (lambda x: x.lerp_(b, 1 - beta1), lambda y: c.lerp(at(y), at(b), n, f(1 - beta1))),
        "v.addcmul_(g, g, 1 - beta2)": (
            lambda x: x.addcmul_(b, b, value=1 - beta2),
            lambda y: c.addcmul(at(y), at(b), n, f(1 - beta2)),
        ),
        "torch.sqrt(v, out=d)": (
            lambda x: torch.sqrt(positive, out=x),
            lambda y: c.root(at(positive), at(y), n),
        ),
        "d.div_(bias2)": (lambda x: x.div_(bias2), lambda y: c.divide(at(y), n, f(bias2))),
        "d.add_(eps)": (lambda x: x.add_(1e-8), lambda y: c.add(at(y), n, f(1e-8))),
        "p.addcdiv_(m, d, step)": (
            lambda x: x.addcdiv_(b, positive, value=step),
            lambda y: c.addcdiv(at(y), at(b), at(positive), n, f(step)),
        ),
    }
    print(f"{N:,} floats, torch {torch.__version__} at {args.threads} threads")
    for name, (torch_op, c_op) in ops.items():
        x, y = a.clone(), a.clone()
        torch_op(x)
        c_op(y)
        print(f"  {name:28s} equal: {torch.equal(x, y)!s:5s}  elements that differ: {int((x != y).sum()):,}")


if __name__ == "__main__":
    main()
