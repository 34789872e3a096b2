"""bench/search_scale.py on a tiny collection: the generator keeps a fit's shape, the exact top 10 is
exact, each contender is measured in a process of its own from the index it saved (the binary index
folder links the collection's vectors instead of copying them), settings are chosen on selection
recall, and a later run of some contenders keeps the others' results."""

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from steerable.search import overlap_at_k

from conftest import require

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("bench_search_scale", BENCH / "search_scale.py")
assert _spec is not None and _spec.loader is not None
scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A fit to 3,000 clustered unit vectors (standing in for a head's outputs), saved as `fit` saves it."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, scale.DIM))
    real = scale.unit(centres[rng.integers(0, 20, 3000)] + 0.8 * rng.normal(size=(3000, scale.DIM)))
    fit = scale.fit_mixture(real, components=16)
    work = tmp_path_factory.mktemp("scale")
    save_file({k: np.ascontiguousarray(v) for k, v in fit.items()}, str(work / "fit.safetensors"))
    (work / "fit.json").write_text(json.dumps({"components": 16}))
    return work, fit, real


def test_the_generator_draws_unit_vectors_from_the_fit_seeded(work):
    _, fit, real = work
    a, b = scale.generate(fit, 500, seed=1), scale.generate(fit, 500, seed=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert abs(fit["weights"].sum() - 1) < 1e-9
    # the mixture's spread around its centres is the data's: mean similarity to the nearest centre
    near = lambda x: (x @ scale.unit(fit["centres"]).T).max(1).mean()  # noqa: E731
    assert abs(near(a) - near(real)) < 0.05


def test_the_exact_top_10_over_chunks_is_the_brute_force_one(work):
    _, fit, _ = work
    docs, queries = scale.generate(fit, 2500, seed=2), scale.generate(fit, 20, seed=3)
    got = scale.exact_top(docs, queries, chunk=700)
    want = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :10]
    assert overlap_at_k(got, want) == 1.0


def test_a_run_measures_each_contender_apart_and_keeps_earlier_results(work, monkeypatch, capsys):
    require("qdrant_edge", "search")
    folder, _, _ = work
    monkeypatch.setattr(scale, "BENCH", folder / "bench")  # results beside the work folder, not in bench/out
    (folder / "bench").mkdir(exist_ok=True)

    def run(*contenders, shortlists=None, measure_queries=None):
        args = types.SimpleNamespace(
            work=folder,
            n=2000,
            queries=30,
            threads=[1],
            contenders=list(contenders),
            shortlists=shortlists,
            measure_queries=measure_queries,
        )
        scale.cmd_run(args)
        return json.loads((folder / "bench" / "out" / "search_scale_2000.json").read_text())

    # each contender is measured by `search_scale.py measure` in a process of its own, at its settings
    result = run("exact-256", "funnel-binary-256", "engine-qdrant-edge-binary-256")
    by = {r["contender"]: r for r in result["results"]}
    assert all(row["evaluation_recall@10"] == 1.0 for row in by["exact-256"]["rows"])
    binary = {row["shortlist"]: row for row in by["funnel-binary-256"]["rows"]}
    assert binary[2000]["selection_recall@10"] == binary[2000]["evaluation_recall@10"] == 1.0  # every document
    assert binary[50]["evaluation_recall@10"] < 1.0
    engine = {row["shortlist"]: row for row in by["engine-qdrant-edge-binary-256"]["rows"]}
    assert engine[2000]["evaluation_recall@10"] == 1.0 and by["engine-qdrant-edge-binary-256"]["build_s"] > 0
    collection = folder / "n2000"
    assert (collection / "funnel-binary-256" / "full.npy").samefile(collection / "full.npy")  # linked
    chosen = {(c["contender"], c["mode"]): c for c in result["chosen"]}
    eligible = [row for row in by["funnel-binary-256"]["rows"] if row["selection_recall@10"] >= scale.TARGET]
    fastest = max(eligible, key=lambda row: row["selection_qps"])  # chosen on the selection queries
    assert chosen[("funnel-binary-256", "batch")]["setting"] == {"shortlist": fastest["shortlist"]}
    assert chosen[("funnel-binary-256", "batch")]["recall@10"] == fastest["evaluation_recall@10"]
    assert all(r["memory_mb"]["VmRSS"] > 0 and r["disk_mb"] > 0 for r in result["results"])
    again = run("exact-256")  # the binary and engine results of the first run are kept
    assert {r["contender"] for r in again["results"]} == set(by)
    scale.cmd_summary(types.SimpleNamespace(n=2000))
    table = capsys.readouterr().out
    mode = (
        "both"
        if chosen[("funnel-binary-256", "one at a time")]["setting"] == {"shortlist": fastest["shortlist"]}
        else "batch"
    )
    assert f"| funnel-binary-256 | 1 | {mode} | shortlist {fastest['shortlist']:,} |" in table  # timing picks the mode
    # a slow contender at scale: other shortlists, on the first queries of each set (the same sets)
    fewer = run("funnel-binary-256", shortlists=[100, 2000], measure_queries=10)
    (binary_again,) = [r for r in fewer["results"] if r["contender"] == "funnel-binary-256"]
    assert binary_again["queries"] == 10 and [row["shortlist"] for row in binary_again["rows"]] == [100, 2000]
    assert binary_again["rows"][1]["evaluation_recall@10"] == 1.0
    scale.cmd_summary(types.SimpleNamespace(n=2000))
    assert "(10 queries a set)" in capsys.readouterr().out
