"""Helpers shared by the bench scripts: machine description, timing, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

OUT_DIR = Path(__file__).resolve().parent / "out"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "other_cpu": None,  # filled by finish()
    }


def print_machine(m: dict) -> None:
    print(
        f"machine: {m['cpu_model']} | {m['cores']} cores ({m['cores_usable']} usable) | "
        f"torch {m['torch']} with {m['torch_threads']} threads | python {m['python']}"
    )


def _busy_seconds() -> float:
    """CPU seconds spent busy by all processes since boot (from /proc/stat)."""
    f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and of the child processes it has waited for."""
    return sum(os.times()[:4])


_T0 = (time.perf_counter(), _busy_seconds(), _own_seconds())


def finish(m: dict) -> None:
    """Record CPU used by *other* processes during the run; warn when they competed for the cores."""
    wall = time.perf_counter() - _T0[0]
    other = max(0.0, (_busy_seconds() - _T0[1]) - (_own_seconds() - _T0[2]))
    m["other_cpu"] = {"seconds": other, "wall_s": wall, "mean_cores": other / wall}
    free = (m["cores_usable"] or m["cores"] or 1) - m["torch_threads"]
    if other / wall > free + 0.25:  # others plus our threads oversubscribe the cores
        m["busy_warning"] = (
            f"WARNING: other processes used {other / wall:.2f} of {m['cores']} cores on "
            f"average while this ran {m['torch_threads']} torch threads; timings are "
            "inflated (try --threads 1, or a quiet machine)"
        )
        print(m["busy_warning"])
    else:
        m["busy_warning"] = None
        print(
            f"other processes used {other / wall:.2f} cores on average during the run "
            f"(fits beside {m['torch_threads']} torch threads)"
        )


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summary(seconds: list[float]) -> dict:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds), "all_s": seconds}


def write_json(name: str, result: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {path}")
    return path
