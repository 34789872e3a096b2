"""``steer sweep`` and ``steer report`` (many runs, their tables), and ``steer reproduce``, which
runs the paper's reproduction from a source checkout's ``paper/`` folder."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

from ..backbone import DEFAULT_BACKBONE
from ..report import REPORT_FORMATS, load_records, write_report
from ..runs import ResultsStore, SweepSpec, run_sweep
from .common import Parser, add_sweep_args, backbone_names, csv_list, executor, seed_list, sweep_settings


def cmd_sweep(args: argparse.Namespace) -> int:
    settings = sweep_settings(args)
    settings.pop("backbone", None)  # --runtime / --max-seq-length apply to each of the sweep's backbones
    if args.config:
        spec = SweepSpec.from_file(args.config)
        spec.settings = spec.settings | settings
    else:
        if not args.datasets:
            raise ValueError("give --datasets (or --config FILE)")
        spec = SweepSpec(
            csv_list(args.datasets),
            csv_list(args.methods) or ["v5", "mrl"],
            seed_list(args.seeds) or [42],
            csv_list(args.backbones) or [DEFAULT_BACKBONE],
            settings=settings,
        )
    spec.backbones = backbone_names(spec.backbones, args)
    run_sweep(
        spec.runs(),
        args.results,
        executor=executor(args),
        data_dir=args.data_dir,
        progress=not args.quiet,
        group=args.group,
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    records = load_records(args.results)
    if args.backbone:
        records = [r for r in records if args.backbone in (r.backbone, r.backbone.split("/")[-1])]
        if not records:
            raise ValueError(f"{args.results}: no runs with backbone {args.backbone!r}")
    formats = csv_list(args.format) or ["md"]
    unknown = [f for f in formats if f not in REPORT_FORMATS]
    if unknown:
        raise ValueError(
            f"--format: unknown format {', '.join(map(repr, unknown))}; choose from {', '.join(REPORT_FORMATS)}"
        )
    write_report(records, args.out, formats, reference=args.reference)
    ResultsStore(args.results).write_parquet(Path(args.out) / "results.parquet")
    print(f"report: {len(records)} runs -> {args.out}/report.md")
    return 0


def load_paper(folder: str | Path = "paper") -> ModuleType:
    """The ``paper`` package of a source checkout (not installed with the library), by path."""
    folder = Path(folder).resolve()
    if not (folder / "__init__.py").exists():
        raise FileNotFoundError(
            f"{folder}: no paper/ folder here; steer reproduce runs the paper's "
            "reproduction from the repository root of a source checkout"
        )
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module(f"{folder.name}.cli")


def cmd_reproduce(args: argparse.Namespace, rest: list[str]) -> int:
    return load_paper(args.paper).main(rest)


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser(
        "sweep",
        help="run data sets x methods x seeds into a results store",
        description="Run a grid of runs into a results store (one JSON record per "
        "finished run, written atomically). Finished runs are skipped, so "
        "an interrupted sweep resumes where it stopped.",
    )
    p.add_argument("--results", required=True, help="results store folder")
    p.add_argument(
        "--config", help="sweep JSON: datasets, methods, seeds, backbones, ablations, ablation_datasets, settings"
    )
    p.add_argument("--datasets", help="comma-separated data set names")
    p.add_argument("--methods", help="comma-separated methods (default: v5,mrl)")
    p.add_argument("--seeds", help="comma-separated seeds (default: 42)")
    p.add_argument("--backbones", help="comma-separated backbones (default: all-MiniLM-L6-v2)")
    add_sweep_args(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "report",
        help="tables and figures from a results store",
        description="Write Markdown, CSV and LaTeX tables and PNG figures (per "
        "protocol) from a results store; --format mteb adds mteb's own "
        "result files (TaskResult JSON; needs the mteb extra).",
    )
    p.add_argument("results", help="results store folder")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument(
        "--format", default="md", help=f"comma-separated: {', '.join(REPORT_FORMATS)} (md is always written)"
    )
    p.add_argument("--reference", help="the method every other one is tested against (default: mrl)")
    p.add_argument("--backbone", help="only the runs of this backbone (a store may hold several; a report covers one)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "reproduce",
        add_help=False,
        help="the paper's sweeps and report (from a source checkout)",
        description="Runs paper/ (python -m paper): `steer reproduce --help` lists its options.",
    )
    p.add_argument("--paper", default="paper", help="the paper folder (default: ./paper)")
    p.set_defaults(func=cmd_reproduce, passes_rest=True)
