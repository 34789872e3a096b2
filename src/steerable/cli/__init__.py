"""The ``steer`` command line.

datasets, train, evaluate (one run); sweep, report (many runs and their tables); reproduce (the
paper's, from a source checkout); index, search, export (using what was trained); encode, cache build
(texts to vectors, here or on a Ray cluster).
"""

from __future__ import annotations

import argparse
import sys

from ..data import DataError
from . import encode, runs, train, use
from .common import Parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="steer",
        description="Steerable embeddings: train a small head on a frozen sentence encoder so that "
        "the short prefix of each vector encodes the coarse label and the full vector "
        "the fine one; measure it; use it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (train, runs, use, encode):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "passes_rest", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args, rest) if getattr(args, "passes_rest", False) else args.func(args)
    except (
        DataError,
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        ValueError,
        ImportError,
    ) as e:  # bad input: one line, no traceback
        print(f"steer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
