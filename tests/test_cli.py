"""The `steer` command end to end on a small labelled CSV, with the real default backbone."""

import csv
import json

import pytest

from steerable.cli import main

from conftest import FILLERS, TOPICS

@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "intents.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["title", "category", "subcategory"])
        for cat, subs in TOPICS.items():
            for sub, template in subs.items():
                for filler in FILLERS:
                    w.writerow([template.format(filler), cat, sub])
    return path


def _train(csv_file, out, *extra):
    return main(["train", "--train", str(csv_file), "--text-col", "title",
                 "--levels", "category,subcategory", "--epochs", "1", "--quiet",
                 "--out", str(out), *extra])


def test_train_writes_a_run_folder_that_evaluates_the_same(csv_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(csv_file, out, "--method", "v5") == 0
    printed = capsys.readouterr().out
    assert "steerability_score=" in printed and "[paper]" in printed and "[standard]" in printed
    assert "head mlp" in printed
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.safetensors",
                                                     "probe.json", "retrieval.json"]
    retrieval = json.loads((out / "retrieval.json").read_text())
    assert {"recall@10/subcategory/64", "ndcg@10/256", "mrr/category/64"} <= set(retrieval)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"paper", "standard"}
    for block in metrics.values():
        assert set(block["accuracy"]) == {"category", "subcategory"}
        assert set(block["accuracy"]["category"]) == {"64", "128", "192", "256"}
        assert -2 <= block["steerability_score"] <= 2
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["method"] == "v5" and config["run"]["train"]["seed"] == 42

    assert main(["evaluate", str(out), "--quiet", "--write"]) == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_second_run_on_the_same_data_encodes_nothing(csv_file, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("STEER_CACHE_DIR", str(cache))
    assert _train(csv_file, tmp_path / "a", "--method", "flat") == 0
    shards = sorted(cache.glob("vectors/*/shard-*"))
    assert shards
    assert _train(csv_file, tmp_path / "b", "--method", "mrl", "--head", "linear") == 0
    assert sorted(cache.glob("vectors/*/shard-*")) == shards


def test_bad_input_exits_with_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("title,category\nhello,a\n")
    code = main(["train", "--train", str(bad), "--text-col", "title", "--levels", "category,sub",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"steer: error: {bad}: no column 'sub' (columns: title, category)"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["datasets", "train", "evaluate", "sweep", "report", "index", "search",
                                     "encode", "export"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: steer" in capsys.readouterr().out


def test_reproduce_runs_the_paper_of_a_source_checkout(tmp_path, monkeypatch, capsys):
    """From the repository root `steer reproduce` passes its arguments to paper/; elsewhere it says
    where to run it."""
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--help"])
    assert e.value.code == 0 and "usage: python -m paper" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--quick"]) == 2
    assert "no paper/ folder here; steer reproduce runs the paper's reproduction from the repository root" in \
        capsys.readouterr().err


def test_unknown_arguments_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["datasets", "--nope"])
    assert e.value.code == 2 and "unrecognized arguments: --nope" in capsys.readouterr().err


def test_head_shape_is_a_setting(csv_file, tmp_path):
    out = tmp_path / "run"
    assert _train(csv_file, out, "--head", "linear", "--blocks", "3", "--block-dim", "32",
                  "--protocol", "standard") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"standard"}
    assert metrics["standard"]["dims"] == [32, 64, 96]
    config = json.loads((out / "config.json").read_text())
    assert config["head"] == {"kind": "linear", "input_dim": 384, "num_blocks": 3, "block_dim": 32}
    assert len(config["run"]["schedule"]["terms"][0]["probs"]) == 3


def test_index_and_search_with_every_backend(csv_file, tmp_path, capsys, request):
    run = tmp_path / "run"
    assert _train(csv_file, run, "--head", "linear") == 0
    answers = {}
    for backend in ("embedded", "faiss", "qdrant", "qdrant-edge", "pgvector"):
        idx = tmp_path / f"idx-{backend}"
        server = ["--url", request.getfixturevalue("postgres_url")] if backend == "pgvector" else []
        assert main(["index", "--texts", str(csv_file), "--text-col", "title", "--model", str(run),
                     "--backend", backend, *server, "--collection", "intents", "--out", str(idx), "--quiet"]) == 0
        capsys.readouterr()
        assert main(["search", str(idx), "i lost my card, block it", "--k", "3", "--shortlist", "20"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("64-d shortlist of 20, 256-d rerank search over 108 documents")
        answers[backend] = lines[1:]
        # the same folder, collection or table again: refused before any work, kept as it was
        assert main(["index", "--texts", str(csv_file), "--text-col", "title", "--model", str(run),
                     "--backend", backend, *server, "--collection", "intents", "--out", str(idx)]) == 2
        assert capsys.readouterr().err.strip() == \
            f"steer: error: {idx}: already an index folder; pass --overwrite to replace it"
        if backend == "pgvector":  # a new folder, but the server's table exists
            assert main(["index", "--texts", str(csv_file), "--text-col", "title", "--model", str(run),
                         "--backend", backend, *server, "--collection", "intents", "--out",
                         str(tmp_path / "other"), "--quiet"]) == 2
            assert "table 'intents' already exists; pass --overwrite to replace it" in capsys.readouterr().err
        assert main(["index", "--texts", str(csv_file), "--text-col", "title", "--model", str(run),
                     "--backend", backend, *server, "--collection", "intents", "--out", str(idx),
                     "--overwrite", "--quiet"]) == 0
    ranks = {backend: [line.split("]")[0] for line in lines] for backend, lines in answers.items()}
    assert all(r == ranks["embedded"] for r in ranks.values()), ranks
    assert any("card" in line for line in answers["embedded"])


def test_index_options_are_checked_before_any_work(tmp_path, capsys):
    texts = tmp_path / "docs.txt"
    texts.write_text("a\nb\n")
    assert main(["index", "--texts", str(texts), "--model", str(tmp_path / "no-run"), "--backend", "pgvector",
                 "--out", str(tmp_path / "idx")]) == 2
    assert capsys.readouterr().err.strip() == "steer: error: the pgvector backend needs --url postgresql://..."
    assert not (tmp_path / "idx").exists()


def test_flat_is_a_run_like_any_other(csv_file, tmp_path, capsys):
    out = tmp_path / "flat"
    assert _train(csv_file, out, "--method", "flat", "--protocol", "standard") == 0
    printed = capsys.readouterr().out
    assert "head identity" in printed and "best epoch" not in printed  # nothing trained
    config = json.loads((out / "config.json").read_text())
    assert config["head"]["kind"] == "identity" and config["run"]["history"] == {}
    assert json.loads((out / "metrics.json").read_text())["standard"]["dims"] == [64, 128, 192, 384]
    assert main(["evaluate", str(out), "--quiet", "--protocol", "standard"]) == 0


def test_unseen_classes_are_measured_open_set_and_evaluate_again_the_same(csv_file, tmp_path, capsys):
    out = tmp_path / "open"
    assert _train(csv_file, out, "--unseen", "fine:0.5", "--protocol", "standard") == 0
    assert "[open set] 5-NN leave-one-out, unseen fine:0.5:" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"standard", "open_set"} and metrics["open_set"]["queries"] > 0
    assert main(["evaluate", str(out), "--quiet", "--protocol", "standard", "--write"]) == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert main(["train", "--train", str(csv_file), "--text-col", "title", "--levels", "category,subcategory",
                 "--unseen", "leaf:2", "--out", str(tmp_path / "bad")]) == 2
    assert "bad unseen classes 'leaf:2'" in capsys.readouterr().err
