"""Rerun stored runs in this process and compare what they measure with their records.

Reads records from a results store, reruns each chosen run from its spec (same data, method, seed,
settings) into a temporary store, and compares every measured field: metrics, retrieval, probe, cost,
the training history (per-epoch loss and validation accuracies; wall times are not compared), the open-set
section and the geometry. Prints one line per run and the largest difference per field; exits 1 if any
run differs beyond ``--atol``.

    python scripts/check_records.py results/paper --runs clinc150__v5__s42__74af32f0,trec__heal__s7__74af32f0
    python scripts/check_records.py results/paper --sample 5 --seed 0

Each run reruns at the torch thread count its record kept (``--threads`` overrides; older records kept
none), since the last digits of a run depend on it. With ``--group N``, chosen runs that differ only by
seed (and ran at the same threads) rerun together as a sweep would group them
(``steerable.runs.execute_runs``: their heads trained as one stacked model), to show that grouped
training reproduces records made one run at a time.

    python scripts/check_records.py results/paper --group 5 \
        --runs clinc150__v5__s42__74af32f0,clinc150__v5__s43__74af32f0

``--against OTHER_STORE`` reruns nothing: it compares each record with the record of the same run in
another store (every run the two share, unless ``--runs`` or ``--sample`` chooses), for instance two
stores of one grid made with different workers or threads.

    python scripts/check_records.py results/a --against results/b
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np

from steerable.runs import ResultsStore, RunRecord, RunSpec, execute_runs, seed_groups

FIELDS = ("metrics", "retrieval", "probe", "cost", "history", "open_set", "geometry")
TIMES = {"seconds"}  # measured wall times differ run to run


def leaves(x, path: str = ""):
    """(path, value) of every leaf of nested dicts and lists, wall times left out."""
    if isinstance(x, dict):
        for k, v in x.items():
            if k not in TIMES:
                yield from leaves(v, f"{path}/{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, x


def compare(old: RunRecord, new: RunRecord) -> dict[str, tuple[int, float, list[str]]]:
    """Per field: (leaves compared, largest absolute difference, paths that differ at all)."""
    out = {}
    for name in FIELDS:
        a, b = dict(leaves(getattr(old, name))), dict(leaves(getattr(new, name)))
        diffs, largest = [], 0.0
        for path in sorted(set(a) | set(b)):
            x, y = a.get(path), b.get(path)
            if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
                d = abs(float(x) - float(y)) if not (np.isnan(x) and np.isnan(y)) else 0.0
                largest = max(largest, d)
                if d:
                    diffs.append(path)
            elif x != y:
                diffs.append(path)
                largest = float("inf")
        out[name] = (len(a), largest, diffs)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="results store folder")
    ap.add_argument("--runs", help="comma-separated run ids")
    ap.add_argument("--sample", type=int, help="this many run ids drawn (seeded) from the store")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", help="folder of canonical data sets (default: $STEER_DATA_DIR)")
    ap.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: each record's own, where it kept them; a run's float sums, "
        "and so its last digits, depend on them)",
    )
    ap.add_argument("--atol", type=float, default=0.0, help="tolerated absolute difference (default: none)")
    ap.add_argument(
        "--group",
        type=int,
        default=0,
        metavar="N",
        help="rerun up to N runs that differ only by seed together (default 0: each alone)",
    )
    ap.add_argument("--against", metavar="STORE", help="compare with this store's records instead of rerunning")
    args = ap.parse_args()
    store = ResultsStore(args.results)
    other = ResultsStore(args.against) if args.against else None
    if args.runs:
        ids = args.runs.split(",")
    else:
        every = sorted(r.run_id for r in store.records() if other is None or other.has(r.run_id))
        ids = (
            every
            if other is not None and not args.sample
            else list(
                np.random.default_rng(args.seed).choice(every, size=min(args.sample or 3, len(every)), replace=False)
            )
        )
    if other is not None:
        return compare_stores(store, other, ids, args.atol)
    olds = {run_id: store.get(run_id) for run_id in ids}
    by_threads: dict = {}  # runs group only with runs of the same thread count
    for old in olds.values():
        by_threads.setdefault(args.threads or old.environment.get("torch_threads"), []).append(
            RunSpec.from_dict(old.spec)
        )
    batches = [
        (threads, [olds[spec.run_id] for spec in batch])
        for threads, specs in by_threads.items()
        for batch in (seed_groups(specs, args.group) if args.group > 1 else [[spec] for spec in specs])
    ]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for threads, batch in batches:
            t0 = time.perf_counter()
            news = execute_runs(
                [old.spec for old in batch],
                data_dir=args.data_dir,
                threads=threads,
                model_cache=tmp,
                group=args.group > 1,
            )
            for old, new in zip(batch, news):
                failed += report(old, RunRecord.from_dict(new), args.atol, (time.perf_counter() - t0) / len(batch))
    print(
        f"{len(ids) - failed} of {len(ids)} runs reproduce their records"
        + (f" within {args.atol:g}" if args.atol else " exactly")
    )
    return 1 if failed else 0


def compare_stores(store: ResultsStore, other: ResultsStore, ids: list[str], atol: float) -> int:
    """Compare the records ``ids`` of two stores; 1 if any differs beyond ``atol``."""
    failed = sum(report(store.get(run_id), other.get(run_id), atol) for run_id in ids)
    print(
        f"{len(ids) - failed} of {len(ids)} runs have the same record in both stores"
        + (f" within {atol:g}" if atol else " exactly")
    )
    return 1 if failed else 0


def report(old: RunRecord, new: RunRecord, atol: float, seconds: float | None = None) -> bool:
    """Print how the rerun compares; True if it differs beyond ``atol``."""
    result = compare(old, new)
    ok = max(largest for _, largest, _ in result.values()) <= atol
    detail = "; ".join(
        f"{name} {n} values, max |diff| {largest:.2g}" + (f" at {diffs[:3]}" if diffs else "")
        for name, (n, largest, diffs) in result.items()
    )
    together = new.environment.get("trained_together")
    how = ", ".join(
        ([f"{seconds:.0f} s"] if seconds is not None else [])
        + ([f"trained with {together - 1} other seeds"] if together else [])
    )
    print(f"{'same' if ok else 'DIFFERENT'}  {old.run_id}" + (f"  ({how})" if how else "") + f": {detail}", flush=True)
    return not ok


if __name__ == "__main__":
    sys.exit(main())
