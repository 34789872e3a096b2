"""``steer datasets``, ``steer train`` and ``steer evaluate``: one run at a time."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..atomic import atomic_write_json, read_json
from ..backbone import Backbone, split_vectors
from ..data import data_dir, list_datasets, load_dataset
from ..data.importers import IMPORTERS, import_yahoo_answers
from ..heads import DEFAULT_HEAD, HEADS
from ..methods import METHODS
from ..metrics import evaluate, format_metrics
from ..openset import HeldOut, Unseen, hold_out, open_set_metrics, split_held_out
from ..runs import RunSpec, Where, load_run, run, run_dataset
from ..schedule import Schedule
from .common import (
    Parser,
    add_backbone_args,
    add_data_args,
    add_eval_args,
    at_least,
    backbone_from_args,
    check_out,
    check_writable,
    csv_list,
    load_data,
    non_negative_int,
    positive_float,
    positive_int,
    protocols,
    unit_interval,
)

METHOD_HELP = "\n".join(f"  {name:<20} {m.about}" for name, m in METHODS.items())
EPILOG_TRAIN = f"""examples:
  steer train --dataset clinc150 --method v5 --seed 42
  steer train --dataset clinc150 --method mrl --seed 42 --out runs/clinc-mrl-42
  steer train --dataset clinc150 --method dial --dial 0.5
  steer train --train my.csv --text-col title --levels category,subcategory --method v5

methods:
{METHOD_HELP}

--schedule FILE.json trains a custom schedule. Each method brings its own training recipe (epochs,
batch size, lr); --epochs/--batch-size/--lr override it.
Backbone vectors are cached (STEER_CACHE_DIR, default ~/.cache/steerable): a text is encoded once.
"""


def cmd_datasets(args: argparse.Namespace) -> int:
    if args.action == "import":
        if args.importer not in IMPORTERS or not args.source or not args.out:
            raise ValueError(f"write: steer datasets import {{{','.join(IMPORTERS)}}} FILE_OR_DIR --out DIR")
        out = Path(args.out)
        if out.is_dir() and any(out.iterdir()) and not (out / "SOURCE.md").exists():
            raise FileExistsError(f"--out {out}: the folder holds other files; choose a new folder")
        check_writable(out)
        counts = import_yahoo_answers(args.source, out)
        print(
            "yahoo answers: " + ", ".join(f"{n:,} {split}" for split, n in counts.items()) + f" -> {out} "
            f"(use it with --dataset {out.name} and STEER_DATA_DIR={out.parent})"
        )
        return 0
    if args.action is not None:
        raise ValueError(f"unknown action {args.action!r}; `steer datasets` lists, `steer datasets import ...` imports")
    root = Path(args.data_dir) if args.data_dir else data_dir()
    names = list_datasets(root)
    if not names:
        print(f"no data sets in {root} (set STEER_DATA_DIR to a folder of <name>/train.jsonl.gz)")
        return 1
    rows = [{"name": n, **load_dataset(n, root).stats()} for n in names]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"data sets in {root}:")
    print(
        f"{'name':<26}{'train':>8}{'val':>7}{'test':>7}  {'classes per level':<16}{'branch':>7}"
        f"{'H(L0)':>7}{'H(L1|L0)':>9}"
    )
    for r in rows:
        ks = "/".join(str(r[f"K{k}"]) for k in range(r["levels"]))
        print(
            f"{r['name']:<26}{r['train']:>8}{r['validation']:>7}{r['test']:>7}  {ks:<16}"
            f"{r['branching1']:>7.2f}{r['H0']:>7.2f}{r['H1|0']:>9.2f}"
        )
    return 0


def read_schedule(path: str) -> Schedule:
    try:
        return Schedule.from_dict(read_json(path))
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{path}: not a schedule ({type(e).__name__}: {e}); print one with "
            "`python -c \"import json, steerable; print(json.dumps(steerable.preset('v5').to_dict()))\"`"
        ) from None


def cmd_train(args: argparse.Namespace) -> int:
    if args.out:
        check_out(Path(args.out), args.overwrite)
    entry = None if args.schedule else METHODS.get(args.method)  # a bare name: the setting is --dial's
    if entry is not None and entry.needs_setting and args.dial is None:
        raise ValueError(f"--method {args.method} needs --dial VALUE (0 to 1)")
    if args.dial is not None and (entry is None or not entry.needs_setting):
        raise ValueError(
            f"--dial is the setting of --method dial; {args.schedule or args.method!r} has no dial "
            "(a method with a setting takes it in its name, e.g. blend@0.5)"
        )
    dataset, source = load_data(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    schedule = read_schedule(args.schedule) if args.schedule else None
    method = f"{args.method}@{args.dial:g}" if args.dial is not None else args.method
    backbone = backbone_from_args(args)
    spec = RunSpec(
        dataset.name,
        schedule.name if schedule else method,
        args.seed,
        backbone.name,
        args.head,
        args.max_train,
        args.max_test,
        args.epochs,
        args.batch_size,
        args.lr,
        args.precision,
        args.paper_n,
        unseen=args.unseen,
        min_queries=args.min_queries,
        blocks=args.blocks,
        block_dim=args.block_dim,
        schedule=json.dumps(schedule.to_dict(), sort_keys=True) if schedule else None,
        protocols=tuple(csv_list(args.protocol)),
        k=args.k,
    )
    out = Path(args.out) if args.out else Path("runs") / f"{dataset.name}-{spec.method}-{args.head}-s{args.seed}"
    check_out(out, args.overwrite)
    checkpoint = out.parent / f"{out.name}.checkpoint.safetensors"
    try:
        result = run(
            spec,
            dataset=dataset,
            where=Where(backbone, device=args.device, progress=not args.quiet),
            out=out,
            dataset_source=source,
            checkpoint=checkpoint,
        )
    except KeyboardInterrupt:
        if checkpoint.exists():
            print(
                f"\ninterrupted: the last finished epoch is kept in {checkpoint}; the same command resumes "
                "from it, or delete it to discard the run",
                file=sys.stderr,
            )
        raise
    if result.held_out is not None:
        print(result.held_out.describe())
    print(
        f"{dataset.name} · {result.config['method']} · head {result.model.head.kind} · seed {args.seed} · "
        f"backbone {backbone.name}"
    )
    if result.history:
        print(
            f"best epoch {result.history['best_epoch']} of {spec.epochs}; "
            f"training {result.config['seconds']['train']:.1f} s"
        )
    measured = result.config["dataset"]["sizes"]["test"] - (result.open_set or {}).get("queries", 0)
    print(format_metrics(result.metrics | ({"open_set": result.open_set} if result.open_set else {}), measured))
    print(f"run folder: {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    config, model, _ = load_run(args.run)
    ds_cfg = config["run"]["dataset"]
    seed = args.seed if args.seed is not None else config["run"]["train"]["seed"]
    if args.dataset or args.train_file:
        dataset, _ = load_data(args)
    else:  # the run's own data, with its caps
        dataset = run_dataset(config, args.data_dir)
        args.max_train = args.max_train or ds_cfg.get("max_train")
        args.max_test = args.max_test or ds_cfg.get("max_test")
    if dataset.hierarchy.classes != model.hierarchy.classes:
        raise ValueError(
            f"the run at {args.run} was trained on another label set than {dataset.name}; "
            "evaluate it on data with the same hierarchy"
        )
    # the run's own seed draws its caps and, where the run held classes out, names them; --seed only
    # moves the paper protocol's sample
    run_seed = config["run"]["train"]["seed"]
    held = None
    if ds_cfg.get("unseen"):  # the classes the run held out: seen ones closed-set, these open-set
        recorded = ds_cfg.get("held_out")  # by name; runs written before it was kept draw again
        what = (
            HeldOut.from_names(dataset.hierarchy, recorded, dataset.test.cap(args.max_test, run_seed).labels)
            if recorded
            else Unseen.parse(ds_cfg["unseen"])
        )
        dataset, held = hold_out(dataset, what, run_seed, max_test=args.max_test)
        if not args.quiet:
            print(held.describe())
    vectors = split_vectors(
        dataset,
        Backbone(config["run"]["backbone"]["name"]),
        max_train=args.max_train,
        max_test=args.max_test,
        seed=run_seed,
        progress=not args.quiet,
    )
    seen, mask = split_held_out(vectors, held)
    metrics = evaluate(model, seen, dataset.hierarchy.level_names, protocols(args, seed))
    if held is not None:
        metrics["open_set"] = open_set_metrics(
            model.embed_vectors(vectors.test),
            model.dims,
            vectors.y_test,
            mask,
            dataset.hierarchy.level_names,
            held,
            run_seed,
        )
    print(format_metrics(metrics, len(seen.y_test)))
    if args.write:
        atomic_write_json(Path(args.run) / "metrics.json", metrics)
        print(f"wrote {Path(args.run) / 'metrics.json'}")
    return 0


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    p = sub.add_parser(
        "datasets",
        help="list the data sets found (or import one), with hierarchy statistics",
        description="List data sets under STEER_DATA_DIR (or --data-dir) with split "
        "sizes, classes per level, branching, H(L0) and H(L1|L0) in bits. "
        "`steer datasets import yahoo-answers FILE_OR_DIR --out DIR` writes the Yahoo "
        "Answers topics CSVs (train.csv, test.csv) in the canonical layout, the ten "
        "topics in the original code's four groups.",
    )
    p.add_argument(
        "action", nargs="?", choices=["import"], help="import: turn a public data set's files into the canonical layout"
    )
    p.add_argument("importer", nargs="?", metavar="NAME", help=f"with import: {', '.join(IMPORTERS)}")
    p.add_argument("source", nargs="?", metavar="FILE_OR_DIR", help="with import: the data set's files")
    p.add_argument("--out", help="with import: the data set's folder to write (e.g. data/yahoo)")
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser(
        "train",
        help="train a head and evaluate it; writes a run folder",
        description="Train a head on cached backbone vectors with a supervision method, "
        "evaluate it (k-NN accuracy per level at every prefix, steerability "
        "metrics) and write --out/{config.json,model.safetensors,metrics.json}.",
        epilog=EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_args(p)
    g = p.add_argument_group("model and training")
    g.add_argument("--method", default="v5", metavar="METHOD", help="a method (listed below); default v5")
    g.add_argument(
        "--dial",
        type=unit_interval,
        help="with --method dial: 0 = MRL-like prefix (keeps fine information), "
        "1 = pure coarse prefix (the bottleneck)",
    )
    g.add_argument("--schedule", help="a schedule JSON file (overrides --method)")
    g.add_argument(
        "--head",
        default=DEFAULT_HEAD,
        choices=sorted(k for k in HEADS if k != "identity"),
        help="mlp: an MLP trunk (default, fastest and most accurate here); fractal: the "
        "original code's head; linear: the paper text's single projection",
    )
    g.add_argument("--blocks", type=at_least(2), default=4, help="number of prefix blocks (default 4)")
    g.add_argument("--block-dim", type=positive_int, default=64, help="dims per block (default 64)")
    add_backbone_args(g)
    g.add_argument(
        "--unseen",
        metavar="fine:F|coarse:K",
        help="hold classes out of training to measure them open-set: a fraction F of the fine "
        "classes under each coarse class, or K whole coarse classes (seeded by --seed); the "
        "amount grows where no draw holds --min-queries test texts, and the output says so",
    )
    g.add_argument(
        "--min-queries",
        type=positive_int,
        default=200,
        help="with --unseen: the held-out classes must hold at least this many test texts (after "
        "--max-test) to query (default 200)",
    )
    g.add_argument("--seed", type=non_negative_int, default=42)
    g.add_argument("--epochs", type=positive_int, help="default: the method's recipe (5 for v5/mrl, 20 for heal...)")
    g.add_argument("--batch-size", type=positive_int, help="default: the method's recipe (32 / 64)")
    g.add_argument("--lr", type=positive_float, help="default: the method's recipe (1e-4 / 1e-3)")
    g.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16"],
        help="bf16: the head's forward pass in bfloat16 autocast (faster on CPUs with native bf16; losses stay fp32)",
    )
    g.add_argument("--threads", type=positive_int, help="torch CPU threads (default: all cores)")
    g.add_argument(
        "--out",
        help="run folder (default: runs/<data>-<method>-<head>-s<seed>); written whole when the run has finished",
    )
    g.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_eval_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="re-evaluate a run folder (on its own data or other data)",
        description="Load a run folder and evaluate it again: by default on the data "
        "it was trained on, or on --dataset / --train files with the same "
        "hierarchy. --write replaces the run's metrics.json.",
    )
    p.add_argument("run", help="run folder written by `steer train`")
    add_data_args(p)
    add_eval_args(p)
    p.add_argument("--seed", type=non_negative_int, help="seed for the paper protocol's sample (default: the run's)")
    p.add_argument("--write", action="store_true", help="write metrics.json into the run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)
