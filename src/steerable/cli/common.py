"""Arguments and helpers shared by the ``steer`` commands."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, NoReturn, TypeVar

from ..atomic import read_json
from ..backbone import DEFAULT_BACKBONE, RUNTIMES, Backbone, backbone_spec
from ..data import DataError, HierarchicalDataset, load_dataset, load_files
from ..heads import HEADS
from ..metrics import Protocol, paper_protocol, standard_protocol
from ..runs import LocalExecutor, RayExecutor
from ..runs.sweep import DEFAULT_GROUP

_T = TypeVar("_T")


def _number(kind: Callable[[str], _T], test: Callable[[_T], bool], what: str) -> Callable[[str], _T]:
    """An argparse ``type`` that reads a ``kind`` and accepts it only where ``test`` holds."""

    def parse(text: str) -> _T:
        value: _T | None
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or not test(value):  # value != value: NaN
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type by it in its own messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "a whole number of at least 1")
non_negative_int = _number(int, lambda v: v >= 0, "a whole number of at least 0")
positive_float = _number(float, lambda v: 0 < v < float("inf"), "a number above 0")
non_negative_float = _number(float, lambda v: 0 <= v < float("inf"), "a number of at least 0")
unit_interval = _number(float, lambda v: 0 <= v <= 1, "a number from 0 to 1")


def at_least(n: int) -> Callable[[str], int]:
    return _number(int, lambda v: v >= n, f"a whole number of at least {n}")


def seed_list(value: str | None) -> list[int]:
    """The seeds of a comma-separated option: whole numbers of at least 0."""
    seeds = []
    for item in csv_list(value):
        try:
            seeds.append(non_negative_int(item))
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"--seeds: {e}") from None
    return seeds


def written_by_steer(folder: Path) -> str | None:
    """What ``steer`` wrote ``folder`` as: "run" (a run or model folder), "index" or "export"; None for
    anything else."""
    try:
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            if {"run", "head"} & set(read_json(folder / "config.json")):
                return "run"
        if (folder / "meta.json").is_file() and "backend" in read_json(folder / "meta.json"):
            return "index"
        if (folder / "steerable.json").is_file() and (folder / "modules.json").is_file():
            return "export"
    except (ValueError, OSError, TypeError):  # unreadable or not JSON objects: not ours
        return None
    return None


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output folder that is a file or holds files (unless ``overwrite``); with
    ``overwrite``, a folder that holds files is replaced only if steer wrote it (a run, an index or an
    export): anything else, the input data or the working folder among them, is refused by name."""
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise FileExistsError(f"--out {out}: {parent} is a file, not a folder")
    check_writable(out)
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"--out {out}: the folder exists and is not empty; give --overwrite to replace it, or another --out"
        )
    if written_by_steer(out) is None:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
        held = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise FileExistsError(
            f"--out {out}: not a run, index or export folder steer wrote (it holds {held}); "
            "--overwrite replaces only those, so choose another --out"
        )


def check_writable(out: Path) -> None:
    """Refuse, before any work, an output path where nothing can be written: a file is created and removed
    in the nearest existing folder above it (outputs are written beside themselves and renamed into
    place), and in ``out`` itself where it is an existing folder."""
    out = Path(os.path.abspath(out))
    places = [next(p for p in out.parents if p.exists())] + ([out] if out.is_dir() else [])
    for place in places:
        try:
            fd, probe = tempfile.mkstemp(prefix=".steer-write-check-", dir=place)
        except OSError as e:
            raise PermissionError(f"--out {out}: cannot write in {place} ({e.strerror or e})") from None
        os.close(fd)
        os.unlink(probe)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage stays behind --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def csv_list(value: str | None) -> list[str]:
    """The items of a comma-separated option (empty when not given)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (a named data set, or your own files)")
    g.add_argument("--dataset", help="data set name under STEER_DATA_DIR (see `steer datasets`)")
    g.add_argument("--data-dir", help="folder of canonical data sets (default: $STEER_DATA_DIR or ./data)")
    g.add_argument("--train", dest="train_file", help="your training file (.csv, .jsonl[.gz], .parquet)")
    g.add_argument("--test", dest="test_file", help="your test file (default: 15%% of --train, stratified)")
    g.add_argument("--validation", dest="validation_file", help="your validation file (default: 15%% of train)")
    g.add_argument("--text-col", default="text", help="text column of your files (default: text)")
    g.add_argument("--levels", help="level columns, coarsest first, comma-separated (default: l0,l1[,l2])")
    g.add_argument("--max-train", type=positive_int, help="cap on training examples (seeded subsample)")
    g.add_argument("--max-test", type=positive_int, help="cap on test examples (seeded subsample)")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation")
    g.add_argument(
        "--protocol",
        default="paper,standard",
        help="comma-separated: paper (leave-one-out k-NN within --paper-n seeded test "
        "examples) and/or standard (training split as reference, whole test split)",
    )
    g.add_argument("--paper-n", type=at_least(2), default=500, help="test examples in the paper protocol (500)")
    g.add_argument("--k", type=positive_int, default=5, help="neighbours in k-NN (5)")


def add_backbone_args(g: argparse._ActionsContainer, *, name: bool = True, device: bool = True) -> None:
    """How the backbone encodes: --backbone (with ``name``), --runtime, --max-seq-length, --device."""
    if name:
        g.add_argument("--backbone", default=DEFAULT_BACKBONE, help=DEFAULT_BACKBONE_HELP)
    g.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="backbone runtime: torch (default); onnx (the model exported to ONNX once, cached, "
        "run by onnxruntime); onnx-int8 (that export with int8 weights: faster, vectors "
        "about 0.99 cosine from torch's). Part of the vector cache key",
    )
    g.add_argument(
        "--max-seq-length",
        "--max-length",
        dest="max_seq_length",
        type=positive_int,
        metavar="TOKENS",
        help="backbone maximum sequence length; longer texts are truncated (default: the "
        "model's, 256 for all-MiniLM-L6-v2). Part of the vector cache key",
    )
    if device:
        g.add_argument(
            "--device",
            help="device the backbone encodes on (torch runtime) and, in steer train, "
            "the head trains on: cpu (default), cuda, ...",
        )


def backbone_options(args: argparse.Namespace) -> dict:
    """The backbone keyword arguments given on the command line (runtime, max_length, device)."""
    given = {
        "runtime": getattr(args, "runtime", None),
        "max_length": getattr(args, "max_seq_length", None),
        "device": getattr(args, "device", None),
    }
    return {k: v for k, v in given.items() if v is not None}


def backbone_from_args(args: argparse.Namespace, name: str | None = None) -> Backbone:
    return Backbone(name or args.backbone, **backbone_options(args))


def backbone_names(names: Iterable[str], args: argparse.Namespace) -> list[str]:
    """Backbone names with the command line's --runtime / --max-seq-length applied (as run specs
    name them: ``NAME@runtime=onnx``)."""
    return [backbone_spec(n, getattr(args, "runtime", None), getattr(args, "max_seq_length", None)) for n in names]


def load_data(args: argparse.Namespace) -> tuple[HierarchicalDataset, dict]:
    """(data set, where it came from) for --dataset or --train/--test/--validation."""
    levels = csv_list(args.levels) or None
    if args.train_file:
        if args.dataset:
            raise DataError("give either --dataset or --train, not both")
        ds = load_files(
            args.train_file,
            args.test_file,
            args.validation_file,
            text_col=args.text_col,
            level_cols=levels or ("l0", "l1"),
        )
        absolute = lambda f: str(Path(f).resolve()) if f else None  # noqa: E731  (evaluated from anywhere later)
        source = {
            "files": {
                "train": absolute(args.train_file),
                "test": absolute(args.test_file),
                "validation": absolute(args.validation_file),
            },
            "text_col": args.text_col,
            "levels": list(ds.hierarchy.level_names),
        }
        return ds, source
    if not args.dataset:
        raise DataError("no data: give --dataset NAME (see `steer datasets`) or --train FILE")
    ds = load_dataset(args.dataset, args.data_dir, levels)
    return ds, {"levels": list(ds.hierarchy.level_names)}


def protocols(args: argparse.Namespace, seed: int) -> list[Protocol]:
    out = []
    for name in csv_list(args.protocol):
        if name == "paper":
            out.append(paper_protocol(args.paper_n, seed=seed, k=args.k))
        elif name == "standard":
            out.append(standard_protocol(k=args.k))
        else:
            raise ValueError(f"unknown protocol {name!r}; use paper and/or standard")
    return out


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    """Run settings shared by every run of a sweep, and where the runs execute."""
    g = p.add_argument_group("runs")
    g.add_argument("--head", choices=sorted(HEADS), help="head (default: mlp)")
    g.add_argument("--max-train", type=positive_int, help="training cap per run (seeded)")
    g.add_argument("--max-test", type=positive_int, help="test cap per run (seeded)")
    g.add_argument("--epochs", type=positive_int)
    g.add_argument("--batch-size", type=positive_int)
    g.add_argument("--lr", type=positive_float)
    g.add_argument("--precision", choices=["fp32", "bf16"])
    g.add_argument("--paper-n", type=at_least(2), help="test examples in the paper protocol (500)")
    g.add_argument("--data-dir", help="folder of canonical data sets (default: $STEER_DATA_DIR)")
    add_backbone_args(g, name=False, device=False)
    g = p.add_argument_group("execution")
    g.add_argument(
        "--executor", choices=["local", "ray"], default="local", help="local worker processes (default) or Ray tasks"
    )
    g.add_argument("--workers", type=positive_int, default=1, help="local worker processes (default 1)")
    g.add_argument("--threads", type=positive_int, help="torch threads per local worker (default: cores / workers)")
    g.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    g.add_argument(
        "--group",
        type=positive_int,
        default=DEFAULT_GROUP,
        metavar="N",
        help="train up to N runs that differ only by seed together, as one stacked model: the "
        f"same numbers as one by one, in less time (default {DEFAULT_GROUP})",
    )
    g.add_argument("--no-group", dest="group", action="store_const", const=0, help="train every run by itself")
    g.add_argument("--quiet", action="store_true", help="no encoding progress bars")


def sweep_settings(args: argparse.Namespace) -> dict:
    """RunSpec settings given on the command line (unset ones keep their defaults); --runtime and
    --max-seq-length make the ``backbone`` setting (the default backbone with them)."""
    keys = ("head", "max_train", "max_test", "epochs", "batch_size", "lr", "precision", "paper_n")
    out = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if getattr(args, "runtime", None) or getattr(args, "max_seq_length", None):
        out["backbone"] = backbone_names([DEFAULT_BACKBONE], args)[0]
    return out


def executor(args: argparse.Namespace) -> LocalExecutor | RayExecutor:
    if args.executor == "ray":
        return RayExecutor(args.ray_address)
    return LocalExecutor(args.workers, args.threads)


DEFAULT_BACKBONE_HELP = f"sentence-transformers name or path (default: {DEFAULT_BACKBONE.split('/')[-1]}, offline)"
