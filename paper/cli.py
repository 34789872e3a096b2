"""``python -m paper`` (also ``steer reproduce``): the paper's sweeps, report and reproduction page;
``python -m paper select NAME``: a selection step on the validation split (:mod:`paper.select`).

Resumable: finished runs are records in the results store and are not run again, so a second call
with everything recorded rebuilds the report and the page from the records alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from steerable.cli.common import add_sweep_args, csv_list, executor, sweep_settings
from steerable.data import DataError, list_datasets
from steerable.methods import canonical
from steerable.report import Results
from steerable.runs import ResultsStore, RunSpec, run_sweep

from .backbones import backbone_sweep, write_backbones
from .claims import load_claims
from .doc import write_doc
from .grids import beyond_sweep, confirm_sweep, goal_sweep, open_set_sweep, paper_sweep, pareto_sweep
from .power import write_power
from .report import write_report
from .select import SELECTIONS, describe, select


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m paper",
        description="V5, MRL, Flat and the floors (Flat PCA, Coarse one-hot) on every data set found; "
        "Inverted, No-prefix and UHMT on CLINC and TREC; the coarse-only methods on the selection "
        "and confirmation data sets of paper/claims.json, the dial on the selection ones; the "
        "methods chosen after seeing that grid again on five other seeds (seed variance); the "
        "open-set grid (fine:0.2 and coarse:K held out); seeds 42 123 456 789 1024; both protocols; "
        "caps 10,000 train / 2,000 test. Writes the report and the reproduction page. Resumable: "
        "rerunning skips finished runs.",
    )
    p.add_argument("--quick", action="store_true", help="CLINC only, two seeds")
    p.add_argument(
        "--part",
        default="all",
        choices=["all", "paper", "beyond", "open", "goal", "backbones"],
        help="paper: the outline's grid; beyond: HEAL, the new methods, the dial, on the selection and "
        "confirmation data sets, and the seed-variance reruns; open: the open-set grid (classes "
        "held out of training); goal: the claim steer_and_generalise's candidates and references, "
        "closed-set and open-set, on its seeds, and every setting of the projections and the blend "
        "for the Pareto figure; all: these grids (default); backbones (not in all; needs the "
        "mpnet extra): Flat, MRL, V5, HEAL, Adversarial, Bottleneck on the selection data sets, "
        "seeds 42 123 456, on the default backbone and all-mpnet-base-v2, side by side in "
        "OUT/backbones.md with every claim judged on each (and in the main report and page "
        "of the same results store)",
    )
    p.add_argument("--datasets", help="comma-separated (default: every data set found)")
    p.add_argument("--seeds", help="comma-separated (default: the paper's five)")
    p.add_argument(
        "--methods",
        help="comma-separated: only these methods of each grid (a partial grid; the report "
        "and the claims then see only their runs)",
    )
    p.add_argument("--results", default="results/paper", help="results store (default results/paper)")
    p.add_argument("--out", default="reports/paper", help="report folder (default reports/paper)")
    p.add_argument("--doc", help="also write the reproduction page here (e.g. docs/reproduction.md)")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: report the runs already in the results store (a grid not yet finished "
        "shows what it has, with the number of seeds of each figure)",
    )
    p.add_argument(
        "--bench",
        default="bench/out/search.json",
        help="bench/search.py result whose query latencies join the efficiency tables, if "
        "the file exists (default bench/out/search.json)",
    )
    add_sweep_args(p)
    return p


def only_methods(runs, methods: list[str]) -> list[RunSpec]:
    """The runs of ``methods`` (any spelling of a setting: ``adversarial`` is ``adversarial@1``), or all
    of them when none are named."""
    wanted = {canonical(m) for m in methods}
    return [r for r in runs if canonical(r.method) in wanted] if wanted else list(runs)


def reproduce(args, command: str) -> int:
    t0 = time.perf_counter()
    datasets = csv_list(args.datasets) or list_datasets(args.data_dir)
    if not datasets:
        raise DataError("no data sets found; set STEER_DATA_DIR")
    seeds = [int(s) for s in csv_list(args.seeds)] or None
    settings = sweep_settings(args)
    methods = csv_list(args.methods)

    def keep(runs) -> list[RunSpec]:
        return only_methods(runs, methods)

    def sweep(runs: list[RunSpec], **kwargs) -> None:
        if args.report_only:
            return
        run_sweep(
            runs,
            args.results,
            executor=executor(args),
            data_dir=args.data_dir,
            progress=not args.quiet,
            group=args.group,
            **kwargs,
        )

    if args.part == "backbones":
        runs = keep(backbone_sweep(datasets, quick=args.quick, seeds=seeds, settings=settings).runs())
        sweep(runs)
        ids = {r.run_id for r in runs}
        records = [r for r in ResultsStore(args.results).records() if r.run_id in ids]
        path = write_backbones(records, args.out)
        print(
            f"reproduce: {len(records)} of {len(runs)} runs compared in {(time.perf_counter() - t0) / 60:.1f} min "
            f"-> {path}"
        )
        return 0

    main: list[RunSpec] = []
    confirm: list[RunSpec] = []
    if args.part in ("all", "paper"):
        main += keep(paper_sweep(datasets, quick=args.quick, seeds=seeds, settings=settings).runs())
        sweep(main)
    if args.part in ("all", "beyond"):
        beyond = keep(beyond_sweep(datasets, quick=args.quick, seeds=seeds, settings=settings))
        # the leakage figure needs every run's prefix probe: older records without one run again
        sweep(beyond, require=("probe",))
        main += beyond
        confirm = keep(confirm_sweep(datasets, quick=args.quick, settings=settings))
        sweep(confirm)
    if args.part in ("all", "open"):
        open_set = keep(
            open_set_sweep(datasets, quick=args.quick, seeds=seeds, settings=settings, data_dir=args.data_dir)
        )
        sweep(open_set)
        main += open_set
    if args.part in ("all", "goal"):
        goal = keep(goal_sweep(datasets, quick=args.quick, seeds=seeds, settings=settings, data_dir=args.data_dir))
        goal += keep(pareto_sweep(datasets, quick=args.quick, seeds=seeds, settings=settings, data_dir=args.data_dir))
        sweep(goal)
        main += goal
    store = ResultsStore(args.results)
    # the two-backbone grid is run apart (--part backbones); its runs, where the store has them, join
    two = {r.run_id for r in keep(backbone_sweep(datasets, quick=args.quick, seeds=seeds, settings=settings).runs())}
    main_ids, confirm_ids = {r.run_id for r in main}, {r.run_id for r in confirm}
    records = store.records()
    main_records = [r for r in records if r.run_id in main_ids]
    confirm_records = [r for r in records if r.run_id in confirm_ids]
    backbone_records = [r for r in records if r.run_id in two]
    write_report(
        main_records,
        args.out,
        ["md", "mteb"],
        bench=args.bench,
        data_dir=args.data_dir,
        confirm=confirm_records,
        backbones=backbone_records,
    )
    store.write_parquet(Path(args.out) / "results.parquet")
    bench = json.loads(Path(args.bench).read_text()) if args.bench and Path(args.bench).exists() else None
    for path in [Path(args.out) / "reproduction.md"] + ([Path(args.doc)] if args.doc else []):
        write_doc(
            main_records,
            path,
            command,
            store.invocations(),
            report_dir=args.out,
            bench=bench,
            confirm=confirm_records,
            backbones=backbone_records,
        )
    minutes = (time.perf_counter() - t0) / 60
    print(
        f"reproduce: {len(main_records) + len(confirm_records)} runs reported in {minutes:.1f} min "
        f"-> {args.out}/report.md"
    )
    return 0


def select_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m paper select",
        description="A selection step: run its candidates measured on the validation split of the selection "
        "data sets, choose by its stated objective, and record the outcome in "
        "paper/selections/NAME.json. " + "; ".join(f"{n}: {s.setting}" for n, s in SELECTIONS.items()),
    )
    p.add_argument("name", choices=sorted(SELECTIONS))
    p.add_argument("--results", default="results/select", help="results store (default results/select)")
    add_sweep_args(p)
    return p


def power_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m paper power",
        description="The power analysis of the open-set claims: from the open-set runs in a store, the spread of "
        "paired differences against PCA-64 across seeds, and the seeds a 2-pt non-inferiority and a "
        "3-pt superiority need at 80 %% power. Writes OUT and OUT's .json beside it.",
    )
    p.add_argument("--results", default="results/paper", help="results store (default results/paper)")
    p.add_argument("--out", default="docs/power.md", help="the page to write (default docs/power.md)")
    p.add_argument("--datasets", help="comma-separated (default: the claims file's selection data sets)")
    p.add_argument("--seeds-run", type=int, help="the seeds the grid runs: the page adds each test's power at them")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["power"]:
            args = power_parser().parse_args(argv[1:])
            datasets = csv_list(args.datasets) or load_claims()["selection_datasets"]
            records = [r for r in ResultsStore(args.results).records() if r.unseen and r.split == "test"]
            plan = write_power(
                Results(records), datasets, args.out, " ".join(["python -m paper", *argv]), seeds_run=args.seeds_run
            )
            print(
                f"power: {len(plan['differences'])} paired comparisons; the plan asks for {plan['seeds']} seeds "
                f"-> {args.out}"
            )
            return 0
        if argv[:1] == ["select"]:
            args = select_parser().parse_args(argv[1:])
            outcome = select(
                args.name,
                args.results,
                executor=executor(args),
                data_dir=args.data_dir,
                progress=not args.quiet,
                settings=sweep_settings(args),
                group=args.group,
                command=" ".join(["python -m paper", *argv]),
            )
            print(describe(outcome))
            return 0
        args = build_parser().parse_args(argv)
        return reproduce(args, " ".join(["steer reproduce", *argv]))
    except (DataError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"reproduce: error: {e}", file=sys.stderr)
        return 2
