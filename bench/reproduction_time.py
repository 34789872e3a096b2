"""How long the whole reproduction takes on this machine: measured where a results store has the
runs, estimated for the rest.

Lists the runs ``python -m paper`` makes (every part: the paper grid, the beyond grid, the
seed-variance reruns, the open-set grid) over the data sets found, reads the store's records and
sums the seconds each run recorded (its encoding, its share of a grouped training, its evaluation).
A run the store lacks is estimated by the median of the recorded runs of the same data set and
method, else of the same data set and recipe (epochs, batch size), else of the same method on any
data set, else of every recorded run; the output says how many runs each rule estimated. Estimates
are on the high side for the dial's settings after the first of a seed (those re-encode the model
the first one trained). The store's invocations (wall time of
each ``python -m paper`` or ``steer sweep`` that wrote it) are printed too.

    python bench/reproduction_time.py results/paper
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # paper/, from a source checkout
from paper.grids import beyond_sweep, confirm_sweep, open_set_sweep, paper_sweep
from steerable.data import list_datasets
from steerable.runs.store import ResultsStore


def parts(datasets: list[str], data_dir: str | None) -> dict[str, list]:
    """The reproduction's run specs, part by part, in the order ``python -m paper`` runs them."""
    return {
        "paper grid": paper_sweep(datasets).runs(),
        "beyond grid": beyond_sweep(datasets),
        "seed-variance reruns": confirm_sweep(datasets),
        "open-set grid": open_set_sweep(datasets, data_dir=data_dir),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="results store folder")
    ap.add_argument("--data-dir", help="folder of canonical data sets (default: $STEER_DATA_DIR)")
    args = ap.parse_args()
    store = ResultsStore(args.results)
    seconds = {r.run_id: r.seconds.get("total", 0.0) for r in store.records()}
    grid = parts(list_datasets(args.data_dir), args.data_dir)
    specs = {r.run_id: r for runs in grid.values() for r in runs}  # a run shared by two parts counts once
    rules = {
        "data set and method": lambda r: (r.dataset, r.method),
        "data set and recipe": lambda r: (r.dataset, r.epochs, r.batch_size),
        "method": lambda r: r.method,
        "every run": lambda r: (),
    }
    pools: dict[str, dict] = {rule: defaultdict(list) for rule in rules}
    for run_id, s in seconds.items():
        if run_id in specs:
            for rule, key in rules.items():
                pools[rule][key(specs[run_id])].append(s)
    if not pools["every run"]:
        raise SystemExit(f"{args.results}: none of the reproduction's runs is recorded there")

    def estimate(spec) -> tuple[float, str]:
        rule = next(rule for rule, key in rules.items() if pools[rule].get(key(spec)))
        return statistics.median(pools[rule][rules[rule](spec)]), rule

    seen: set[str] = set()
    total_measured = total_estimated = 0.0
    for part, runs in grid.items():
        runs = [r for r in runs if r.run_id not in seen]
        seen |= {r.run_id for r in runs}
        measured = [seconds[r.run_id] for r in runs if r.run_id in seconds]
        used: dict[str, int] = defaultdict(int)
        estimated = 0.0
        for r in runs:
            if r.run_id not in seconds:
                s, rule = estimate(r)
                estimated += s
                used[rule] += 1
        total_measured += sum(measured)
        total_estimated += estimated
        how = ", ".join(f"{n} by {rule}" for rule, n in used.items())
        print(
            f"{part:<21} {len(runs):4d} runs: {len(measured):4d} recorded, {sum(measured) / 60:6.1f} min"
            f"; {len(runs) - len(measured):4d} estimated, {estimated / 60:6.1f} min" + (f" ({how})" if how else "")
        )
    print(
        f"{'all':<21} {len(seen):4d} runs: {total_measured / 60:.1f} min recorded + {total_estimated / 60:.1f} min "
        f"estimated = {(total_measured + total_estimated) / 3600:.1f} h of runs"
    )
    for inv in store.invocations():
        print(f"  invocation: {inv.get('runs', '?')} runs in {inv.get('seconds', 0) / 60:.1f} min")


if __name__ == "__main__":
    main()
