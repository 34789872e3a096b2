"""The ``steer`` command line.

datasets, train, evaluate (one run); sweep, report, reproduce (many runs and the paper's tables);
index, search, encode, export (using what was trained).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG_TRAIN = """examples:
  steer train --dataset clinc150 --method v5 --seed 42
  steer train --dataset clinc150 --method mrl --seed 42 --out runs/clinc-mrl-42
  steer train --train my.csv --text-col title --levels category,subcategory --method v5

methods: v5 (hierarchy-aligned prefix supervision), mrl (Matryoshka), inverted, no_prefix, uhmt
(ablations), flat (the raw backbone, no training); beyond V5: heal (baseline), separated,
successive, successive_balanced, adversarial, adversarial_mrl, bottleneck, and the steerability dial
(--method dial --dial 0.5: 0 keeps fine information in the prefix, 1 makes it a pure coarse code).
mrl_distill: MRL whose prefix learns to shortlist for its own full vector (multi-stage search).
--schedule FILE.json trains a custom schedule. Each method brings its own training recipe (epochs,
batch size, lr); --epochs/--batch-size/--lr override it.
Backbone vectors are cached (STEER_CACHE_DIR, default ~/.cache/steerable): a text is encoded once.
"""


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (a named data set, or your own files)")
    g.add_argument("--dataset", help="data set name under STEER_DATA_DIR (see `steer datasets`)")
    g.add_argument("--data-dir", help="folder of canonical data sets (default: $STEER_DATA_DIR or ./data)")
    g.add_argument("--train", dest="train_file", help="your training file (.csv, .jsonl[.gz], .parquet)")
    g.add_argument("--test", dest="test_file", help="your test file (default: 15%% of --train, stratified)")
    g.add_argument("--validation", dest="validation_file", help="your validation file (default: 15%% of train)")
    g.add_argument("--text-col", default="text", help="text column of your files (default: text)")
    g.add_argument("--levels", help="level columns, coarsest first, comma-separated (default: l0,l1[,l2])")
    g.add_argument("--max-train", type=int, help="cap on training examples (seeded subsample)")
    g.add_argument("--max-test", type=int, help="cap on test examples (seeded subsample)")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument("--protocol", default="paper,standard",
                   help="comma-separated: paper (leave-one-out k-NN within --paper-n seeded test "
                        "examples) and/or standard (training split as reference, whole test split)")
    g.add_argument("--paper-n", type=int, default=500, help="test examples in the paper protocol (500)")
    g.add_argument("--k", type=int, default=5, help="neighbours in k-NN (5)")


def _load_data(args):
    from .data import DataError, load_dataset, load_files

    levels = args.levels.split(",") if args.levels else None
    if args.train_file:
        if args.dataset:
            raise DataError("give either --dataset or --train, not both")
        ds = load_files(args.train_file, args.test_file, args.validation_file, text_col=args.text_col,
                        level_cols=levels or ("l0", "l1"))
        source = {"files": {"train": args.train_file, "test": args.test_file,
                            "validation": args.validation_file},
                  "text_col": args.text_col, "levels": list(ds.hierarchy.level_names)}
        return ds, source
    if not args.dataset:
        raise DataError("no data: give --dataset NAME (see `steer datasets`) or --train FILE")
    ds = load_dataset(args.dataset, args.data_dir, levels)
    return ds, {"levels": list(ds.hierarchy.level_names)}


def _protocols(args, seed: int):
    from .evaluate import paper_protocol, standard_protocol

    out = []
    for name in args.protocol.split(","):
        name = name.strip()
        if name == "paper":
            out.append(paper_protocol(args.paper_n, seed=seed, k=args.k))
        elif name == "standard":
            out.append(standard_protocol(k=args.k))
        else:
            raise SystemExit(f"steer: unknown protocol {name!r}; use paper and/or standard")
    return out


def cmd_datasets(args) -> int:
    from .data import data_dir, list_datasets, load_dataset

    root = Path(args.data_dir) if args.data_dir else data_dir()
    names = list_datasets(root)
    if not names:
        print(f"no data sets in {root} (set STEER_DATA_DIR to a folder of <name>/train.jsonl.gz)")
        return 1
    rows = []
    for n in names:
        st = load_dataset(n, root).stats()
        rows.append({"name": n, **st})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"data sets in {root}:")
    print(f"{'name':<26}{'train':>8}{'val':>7}{'test':>7}  {'classes per level':<16}{'branch':>7}"
          f"{'H(L0)':>7}{'H(L1|L0)':>9}")
    for r in rows:
        ks = "/".join(str(r[f"K{k}"]) for k in range(r["levels"]))
        print(f"{r['name']:<26}{r['train']:>8}{r['validation']:>7}{r['test']:>7}  {ks:<16}"
              f"{r['branching1']:>7.2f}{r['H0']:>7.2f}{r['H1|0']:>9.2f}")
    return 0


def cmd_train(args) -> int:
    from .backbone import Backbone
    from .evaluate import format_metrics
    from .experiment import run
    from .io import read_json
    from .schedule import Schedule
    from .train import TrainConfig

    dataset, source = _load_data(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .methods import dial_name, preset

    if args.schedule:
        method = Schedule.from_dict(read_json(args.schedule))
    else:
        try:
            name = dial_name(args.dial) if args.method == "dial" and args.dial is not None else args.method
            method = preset(name, dataset.hierarchy.num_levels, args.blocks)
        except ValueError as e:
            raise SystemExit(f"steer train: {e}")
    out = Path(args.out) if args.out else Path("runs") / f"{dataset.name}-{method.name}-{args.head}-s{args.seed}"
    cfg = TrainConfig.for_schedule(method, epochs=args.epochs,
                                   batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                   precision=args.precision)
    backbone = Backbone(args.backbone, max_length=args.max_length)
    head_options = {"num_blocks": args.blocks, "block_dim": args.block_dim}
    result = run(dataset, method, head=args.head, head_options=head_options, backbone=backbone,
                 train_config=cfg,
                 max_train=args.max_train, max_test=args.max_test, protocols=_protocols(args, args.seed),
                 out=out, dataset_source=source, progress=not args.quiet)
    print(f"{dataset.name} · {result.config['method']} · head {args.head} · seed {args.seed} · "
          f"backbone {backbone.name}")
    if result.history:
        print(f"best epoch {result.history['best_epoch']} of {cfg.epochs}; "
              f"training {result.config['seconds']['train']:.1f} s")
    print(format_metrics(result.metrics))
    print(f"run folder: {out}")
    return 0


def cmd_evaluate(args) -> int:
    from .backbone import Backbone
    from .data import load_dataset, load_files
    from .evaluate import format_metrics
    from .experiment import evaluate_model, load_run, split_vectors
    from .io import atomic_write_json

    config, model, _ = load_run(args.run)
    run_cfg = config["run"]
    seed = args.seed if args.seed is not None else run_cfg["train"]["seed"]
    if args.dataset or args.train_file:
        dataset, _ = _load_data(args)
    else:  # the run's own data
        ds_cfg = run_cfg["dataset"]
        if "files" in ds_cfg:
            f = ds_cfg["files"]
            dataset = load_files(f["train"], f["test"], f["validation"], text_col=ds_cfg["text_col"],
                                 level_cols=ds_cfg["levels"], name=ds_cfg["name"])
        else:
            dataset = load_dataset(ds_cfg["name"], args.data_dir, ds_cfg["levels"])
        args.max_train = args.max_train or ds_cfg.get("max_train")
        args.max_test = args.max_test or ds_cfg.get("max_test")
    if model is not None and dataset.hierarchy.classes != model.hierarchy.classes:
        raise SystemExit(f"steer: the run at {args.run} was trained on another label set than "
                         f"{dataset.name}; evaluate it on data with the same hierarchy")
    backbone = Backbone(run_cfg["backbone"]["name"])
    vecs = split_vectors(dataset, backbone, max_train=args.max_train, max_test=args.max_test, seed=seed,
                         progress=not args.quiet)
    metrics = evaluate_model(model, vecs, dataset.hierarchy.level_names, _protocols(args, seed))
    print(format_metrics(metrics))
    if args.write:
        atomic_write_json(Path(args.run) / "metrics.json", metrics)
        print(f"wrote {Path(args.run) / 'metrics.json'}")
    return 0


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _settings(args) -> dict:
    """RunSpec settings given on the command line (unset ones keep their defaults)."""
    keys = ("head", "max_train", "max_test", "epochs", "batch_size", "lr", "precision", "paper_n")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _executor(args):
    from .sweep import LocalExecutor, RayExecutor

    if args.executor == "ray":
        return RayExecutor(args.ray_address)
    return LocalExecutor(args.workers, args.threads)


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runs")
    g.add_argument("--head", choices=["fractal", "linear", "mlp"], help="head (default: mlp)")
    g.add_argument("--max-train", type=int, help="training cap per run (seeded)")
    g.add_argument("--max-test", type=int, help="test cap per run (seeded)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--precision", choices=["fp32", "bf16"])
    g.add_argument("--paper-n", type=int, help="test examples in the paper protocol (500)")
    g.add_argument("--data-dir", help="folder of canonical data sets (default: $STEER_DATA_DIR)")
    g = p.add_argument_group("execution")
    g.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local worker processes (default) or Ray tasks")
    g.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    g.add_argument("--threads", type=int, help="torch threads per local worker (default: cores / workers)")
    g.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    g.add_argument("--quiet", action="store_true", help="no encoding progress bars")


def cmd_sweep(args) -> int:
    from .sweep import SweepSpec, run_sweep

    if args.config:
        spec = SweepSpec.from_file(args.config)
        spec.settings = spec.settings | _settings(args)
    else:
        if not args.datasets:
            raise SystemExit("steer: give --datasets (or --config FILE)")
        spec = SweepSpec(_csv(args.datasets), _csv(args.methods) or ["v5", "mrl"],
                         [int(s) for s in _csv(args.seeds)] or [42],
                         _csv(args.backbones) or ["sentence-transformers/all-MiniLM-L6-v2"],
                         settings=_settings(args))
    run_sweep(spec.runs(), args.results, executor=_executor(args), data_dir=args.data_dir,
              progress=not args.quiet)
    return 0


def cmd_report(args) -> int:
    from .report import load_records, write_report

    from .store import ResultsStore

    records = load_records(args.results)
    formats = _csv(args.format) or ["md"]
    write_report(records, args.out, formats, bench=args.bench, data_dir=args.data_dir)
    if Path(args.results).is_dir():
        ResultsStore(args.results).write_parquet(Path(args.out) / "results.parquet")
    print(f"report: {len(records)} runs -> {args.out}/report.md")
    return 0


def cmd_reproduce(args) -> int:
    import time

    from .data import list_datasets
    from .report import write_report
    from .reproduction import write_doc
    from .store import ResultsStore
    from .sweep import beyond_sweep, confirm_sweep, paper_sweep, run_sweep

    t0 = time.perf_counter()
    datasets = _csv(args.datasets) or list_datasets(args.data_dir)
    if not datasets:
        raise SystemExit("steer: no data sets found; set STEER_DATA_DIR")
    seeds = [int(s) for s in _csv(args.seeds)] or None
    runs = []
    if args.part in ("all", "paper"):
        paper = paper_sweep(datasets, quick=args.quick, seeds=seeds, settings=_settings(args)).runs()
        run_sweep(paper, args.results, executor=_executor(args), data_dir=args.data_dir,
                  progress=not args.quiet)
        runs += paper
    if args.part in ("all", "beyond"):
        beyond = beyond_sweep(datasets, quick=args.quick, seeds=seeds, settings=_settings(args))
        # the leakage figure needs every run's prefix probe: older records without one run again
        run_sweep(beyond, args.results, executor=_executor(args), data_dir=args.data_dir,
                  progress=not args.quiet, require=("probe",))
        runs += beyond
        # the full-rank-prefix claim, tested on fresh seeds (see sweep.CONFIRM_SEEDS)
        confirm = confirm_sweep(datasets, quick=args.quick, settings=_settings(args))
        run_sweep(confirm, args.results, executor=_executor(args), data_dir=args.data_dir,
                  progress=not args.quiet)
    else:
        confirm = []
    wanted = {r.run_id for r in runs + confirm}
    records = [r for r in ResultsStore(args.results).records() if r["run_id"] in wanted]
    write_report(records, args.out, ["md", "mteb"], bench=args.bench, data_dir=args.data_dir)
    ResultsStore(args.results).write_parquet(Path(args.out) / "results.parquet")
    minutes = (time.perf_counter() - t0) / 60
    command = "steer " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["reproduce"] else "steer reproduce"
    invocations = ResultsStore(args.results).invocations()
    bench = json.loads(Path(args.bench).read_text()) if args.bench and Path(args.bench).exists() else None
    for path in [Path(args.out) / "reproduction.md"] + ([Path(args.doc)] if args.doc else []):
        write_doc(records, path, command, invocations, report_dir=args.out, bench=bench)
    print(f"reproduce: {len(records)} runs reported in {minutes:.1f} min -> {args.out}/report.md")
    return 0


def _read_texts(path: str, text_col: str | None) -> list[str]:
    """One text a line (.txt), or a column of a CSV / JSON Lines / Parquet file."""
    from .data import DataError, read_table

    if path.endswith(".txt"):
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    rows, columns, numbers = read_table(path)
    col = text_col or "text"
    if col not in columns:
        raise DataError(f"{path}: no column {col!r} (columns: {', '.join(columns)})")
    out = []
    for i, row in zip(numbers, rows):
        if row.get(col) is None or not str(row[col]).strip():
            raise DataError(f"{path}: row {i}: missing text in column {col!r}")
        out.append(str(row[col]))
    return out


def cmd_index(args) -> int:
    import numpy as np

    from .encoder import SteerableEncoder
    from .index import write_index_folder

    texts = _read_texts(args.texts, args.text_col)
    if args.embeddings:
        data = np.load(args.embeddings)
        if isinstance(data, np.lib.npyio.NpzFile):
            prefix, full = data["prefix"], data["full"]
        else:  # full vectors whose prefix is their renormalised truncation
            full = data
            prefix = full[:, : args.prefix_dim] / np.linalg.norm(full[:, : args.prefix_dim], axis=1,
                                                                  keepdims=True)
        model = None
    else:
        if not args.model:
            raise SystemExit("steer: give --model RUN_FOLDER (or --embeddings FILE)")
        enc = SteerableEncoder.from_pretrained(args.model)
        prefix = enc.encode(texts, dim=args.prefix_dim or enc.dims[0], progress=not args.quiet)
        full = enc.encode(texts, progress=False)
        model = str(Path(args.model).resolve())
    if len(prefix) != len(texts):
        raise SystemExit(f"steer: {len(texts)} texts but {len(prefix)} embeddings")
    write_index_folder(args.out, prefix, full, texts, backend=args.backend, model=model, url=args.url)
    print(f"index: {len(texts)} documents, prefix {prefix.shape[1]}-d + full {full.shape[1]}-d, "
          f"backend {args.backend} -> {args.out}")
    return 0


def cmd_search(args) -> int:
    from .encoder import SteerableEncoder
    from .index import open_index_folder

    index, meta, texts = open_index_folder(args.index)
    if not meta.get("model"):
        raise SystemExit("steer: this index was built from an embeddings file; it has no model to "
                         "encode a text query with")
    enc = SteerableEncoder.from_pretrained(meta["model"])
    q_prefix = enc.encode(args.query, dim=meta["prefix_dim"])
    q_full = enc.encode(args.query)
    shortlist = None if args.exact else args.shortlist
    if args.adaptive is not None and not args.exact:
        from .index import adaptive_search

        ids, scores, extended = adaptive_search(index, q_prefix[None], q_full[None], k=args.k,
                                                shortlist=shortlist, margin=args.adaptive)
        mode = (f"adaptive (margin {args.adaptive:g}): " +
                (f"{meta['prefix_dim']}-d shortlist of {shortlist}, {meta['full_dim']}-d rerank"
                 if extended[0] else f"{meta['prefix_dim']}-d prefix alone (confident)"))
    else:
        ids, scores = index.search(q_prefix[None], q_full[None], k=args.k, shortlist=shortlist)
        mode = "exact full-vector" if shortlist is None else \
            f"{meta['prefix_dim']}-d shortlist of {shortlist}, {meta['full_dim']}-d rerank"
    print(f"{mode} search over {meta['count']} documents ({meta['backend']}):")
    for rank, (i, s) in enumerate(zip(ids[0], scores[0]), start=1):
        if i >= 0:
            print(f"{rank:>3}. {s:.4f}  [{i}] {texts[i]}")
    return 0


def cmd_encode(args) -> int:
    from .encoder import SteerableEncoder
    from .stream import encode_file

    enc = SteerableEncoder.from_pretrained(args.model, cache=False)
    if args.dial is not None:
        try:
            enc.set_dial(args.dial)
        except ValueError as e:
            raise SystemExit(f"steer encode: {e}")
    dim = enc.resolve_dim(args.dim, args.level)
    summary = encode_file(args.input, args.out, lambda texts: enc.encode(texts, dim=dim),
                          chunk_size=args.chunk_size, text_col=args.text_col,
                          settings={"model": str(Path(args.model).resolve()), "dim": dim,
                                    "dial": enc.dial},
                          progress=not args.quiet)
    print(f"encoded {summary['rows']} texts at {dim} dims -> {summary['out']} "
          f"({summary['chunks_encoded']} chunks encoded, {summary['chunks_reused']} resumed)")
    return 0


def cmd_export(args) -> int:
    from .export import export_onnx, export_sentence_transformer
    from .model import SteerableModel

    model = SteerableModel.load(args.run)
    out = export_sentence_transformer(model, args.out)
    print(f"sentence-transformers model -> {out} (SentenceTransformer({str(out)!r}))")
    if args.onnx:
        path = export_onnx(model, Path(args.out) / "head.onnx", dim=args.onnx_dim)
        print(f"ONNX head -> {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steer",
        description="Steerable embeddings: train a small head on a frozen sentence encoder so that "
                    "the short prefix of each vector encodes the coarse label and the full vector "
                    "the fine one; measure it.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list the data sets found, with hierarchy statistics",
                       description="List data sets under STEER_DATA_DIR (or --data-dir) with split "
                                   "sizes, classes per level, branching, H(L0) and H(L1|L0) in bits.")
    p.add_argument("--data-dir")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train a head and evaluate it; writes a run folder",
                       description="Train a head on cached backbone vectors with a supervision method, "
                                   "evaluate it (k-NN accuracy per level at every prefix, steerability "
                                   "metrics) and write --out/{config.json,model.safetensors,metrics.json}.",
                       epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_data_args(p)
    g = p.add_argument_group("model and training")
    g.add_argument("--method", default="v5", metavar="METHOD",
                   help="v5, mrl, mrl_distill, inverted, no_prefix, uhmt, flat, heal, separated, successive, "
                        "successive_balanced, adversarial, adversarial_mrl, bottleneck, dial (with --dial) "
                        "or dial@VALUE")
    g.add_argument("--dial", type=float,
                   help="with --method dial: 0 = MRL-like prefix (keeps fine information), "
                        "1 = pure coarse prefix (the bottleneck)")
    g.add_argument("--schedule", help="a schedule JSON file (overrides --method)")
    g.add_argument("--head", default="mlp", choices=["fractal", "linear", "mlp"],
                   help="mlp: an MLP trunk (default, fastest and most accurate here); fractal: the "
                        "original code's head; linear: the paper text's single projection")
    g.add_argument("--blocks", type=int, default=4, help="number of prefix blocks (default 4)")
    g.add_argument("--block-dim", type=int, default=64, help="dims per block (default 64)")
    g.add_argument("--backbone", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="sentence-transformers name or path (default: all-MiniLM-L6-v2, offline)")
    g.add_argument("--max-length", type=int, help="backbone maximum tokens (default: the model's)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--epochs", type=int, help="default: the method's recipe (5 for v5/mrl, 20 beyond)")
    g.add_argument("--batch-size", type=int, help="default: the method's recipe (32 / 64)")
    g.add_argument("--lr", type=float, help="default: the method's recipe (1e-4 / 1e-3)")
    g.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: the head's forward pass in bfloat16 autocast (faster on CPUs with "
                        "native bf16; losses stay fp32)")
    g.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    g.add_argument("--out", help="run folder (default: runs/<data>-<method>-<head>-s<seed>)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_eval_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="re-evaluate a run folder (on its own data or other data)",
                       description="Load a run folder and evaluate it again: by default on the data "
                                   "it was trained on, or on --dataset / --train files with the same "
                                   "hierarchy. --write replaces the run's metrics.json.")
    p.add_argument("run", help="run folder written by `steer train`")
    _add_data_args(p)
    _add_eval_args(p)
    p.add_argument("--seed", type=int, help="seed for the paper protocol's sample (default: the run's)")
    p.add_argument("--write", action="store_true", help="write metrics.json into the run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sweep", help="run data sets x methods x seeds into a results store",
                       description="Run a grid of runs into a results store (one JSON record per "
                                   "finished run, written atomically). Finished runs are skipped, so "
                                   "an interrupted sweep resumes where it stopped.")
    p.add_argument("--results", required=True, help="results store folder")
    p.add_argument("--config", help="sweep JSON: datasets, methods, seeds, backbones, ablations, "
                                    "ablation_datasets, settings")
    p.add_argument("--datasets", help="comma-separated data set names")
    p.add_argument("--methods", help="comma-separated methods (default: v5,mrl)")
    p.add_argument("--seeds", help="comma-separated seeds (default: 42)")
    p.add_argument("--backbones", help="comma-separated backbones (default: all-MiniLM-L6-v2)")
    _add_sweep_args(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="tables and figures from a results store",
                       description="Write Markdown, CSV and LaTeX tables and PNG figures (per "
                                   "protocol) from a results store; --format mteb adds MTEB-style "
                                   "result JSON.")
    p.add_argument("results", help="results store folder")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--data-dir", help="data sets, for the leakage figure's reference when the records "
                                      "lack it (default: $STEER_DATA_DIR)")
    p.add_argument("--format", default="md", help="comma-separated: md (always), mteb")
    p.add_argument("--bench", default="bench/out/search.json",
                   help="bench/search.py result whose query latencies join the efficiency tables, if "
                        "the file exists (default bench/out/search.json)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("reproduce", help="the paper's sweep and report, in one command",
                       description="V5, MRL and Flat on every data set found; Inverted, No-prefix and "
                                   "UHMT on CLINC and TREC; seeds 42 123 456 789 1024; both "
                                   "protocols; caps 10,000 train / 2,000 test. --quick: CLINC, two "
                                   "seeds. Resumable: rerunning skips finished runs.")
    p.add_argument("--quick", action="store_true", help="CLINC only, seeds 42 and 123")
    p.add_argument("--part", default="all", choices=["all", "paper", "beyond"],
                   help="paper: the outline's grid; beyond: HEAL, the new methods and the dial "
                        "(issue 6); all: both (default)")
    p.add_argument("--datasets", help="comma-separated (default: every data set found)")
    p.add_argument("--seeds", help="comma-separated (default: the paper's five)")
    p.add_argument("--results", default="results/paper", help="results store (default results/paper)")
    p.add_argument("--out", default="reports/paper", help="report folder (default reports/paper)")
    p.add_argument("--doc", help="also write the reproduction page here (e.g. docs/reproduction.md)")
    p.add_argument("--bench", default="bench/out/search.json",
                   help="bench/search.py result whose query latencies join the efficiency tables, if "
                        "the file exists (default bench/out/search.json)")
    _add_sweep_args(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("index", help="build a search index of texts (or of an embeddings file)",
                       description="Encode texts with a trained model (short prefix + full vector) "
                                   "and store them in a search index folder: embedded (numpy), "
                                   "faiss (HNSW graph on the prefix) or qdrant (local files, or a "
                                   "server with --url).")
    p.add_argument("--texts", required=True, help=".txt (one text a line), or .csv/.jsonl/.parquet")
    p.add_argument("--text-col", help="text column of a table file (default: text)")
    p.add_argument("--model", help="run folder of a trained model")
    p.add_argument("--embeddings", help=".npz with 'prefix' and 'full' arrays, or .npy full vectors")
    p.add_argument("--prefix-dim", type=int, default=64, help="shortlist prefix dims (default 64)")
    p.add_argument("--backend", default="embedded", choices=["embedded", "faiss", "qdrant"])
    p.add_argument("--url", help="Qdrant server URL (default: Qdrant local mode in the folder)")
    p.add_argument("--out", required=True, help="index folder")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search an index folder with a text query",
                       description="Multi-stage by default: shortlist with the short prefix, rerank "
                                   "with the full vector. --exact ranks every document by the full "
                                   "vector.")
    p.add_argument("index", help="index folder written by `steer index`")
    p.add_argument("query", help="query text")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--shortlist", type=int, default=100, help="prefix shortlist size (default 100)")
    p.add_argument("--exact", action="store_true", help="exact full-vector search")
    p.add_argument("--adaptive", type=float, metavar="MARGIN",
                   help="answer from the prefix alone when its top-1 similarity beats its top-2 by "
                        "at least MARGIN (e.g. 0.02); rerank otherwise")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("encode", help="embed a (large) text file at a chosen granularity",
                       description="Stream a text file (one text a line, or a column of CSV / JSON "
                                   "Lines / Parquet) through a trained model and write the embeddings "
                                   "to .npy or .parquet, chunk by chunk: memory stays flat however long "
                                   "the file, and an interrupted run resumes where it stopped.")
    p.add_argument("input", help=".txt, .csv, .tsv, .jsonl(.gz) or .parquet")
    p.add_argument("--model", required=True, help="run folder written by `steer train`")
    p.add_argument("--out", required=True, help="output .npy or .parquet")
    p.add_argument("--dim", type=int, help="prefix dims (default: full)")
    p.add_argument("--level", help="a level name, or coarse / fine, instead of --dim")
    p.add_argument("--dial", type=float,
                   help="for a model trained with --method dial: 0 = MRL-like prefix, 1 = pure coarse code")
    p.add_argument("--text-col", help="text column of a table file (default: text)")
    p.add_argument("--chunk-size", type=int, default=4096, help="texts per chunk (default 4096)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("export", help="export a run as a sentence-transformers model (and ONNX head)",
                       description="Write a folder that sentence_transformers.SentenceTransformer(path) "
                                   "loads offline (backbone + head), with steerable.json declaring the "
                                   "prefix dims and the level each serves; --onnx adds the head alone "
                                   "as ONNX (input: pooled backbone vector).")
    p.add_argument("run", help="run folder written by `steer train`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--onnx", action="store_true", help="also write head.onnx")
    p.add_argument("--onnx-dim", type=int, help="ONNX output dim (default: full)")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, ValueError) as e:  # bad input: one line, no traceback
        print(f"steer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
