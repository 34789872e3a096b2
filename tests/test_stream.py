"""steer encode: chunked, resumable, the same vectors as encoding in one go."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from steerable import SteerableEncoder, SteerableModel
from steerable.cli import main
from steerable.data import DataError, Hierarchy, iter_text_chunks
from steerable.encoder import write_embeddings
from steerable.heads import MLPHead

TEXTS = [f"please book a table for {i} people at {i % 12} pm" for i in range(50)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    h = Hierarchy(("domain", "intent"), (("a", "b"), ("a1", "a2", "b1")), (np.array([0, 0, 1]),))
    path = tmp_path_factory.mktemp("run")
    SteerableModel(MLPHead(384), h, "sentence-transformers/all-MiniLM-L6-v2").save(path)
    return path


def test_encode_writes_npy_and_parquet_equal_to_direct_encoding(run_dir, tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    expected = SteerableEncoder.from_pretrained(run_dir).encode(TEXTS, level="coarse")
    assert (
        main(
            [
                "encode",
                str(src),
                "--model",
                str(run_dir),
                "--out",
                str(tmp_path / "e.npy"),
                "--level",
                "coarse",
                "--chunk-size",
                "16",
                "--quiet",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), expected, atol=1e-6)
    assert (
        main(
            [
                "encode",
                str(src),
                "--model",
                str(run_dir),
                "--out",
                str(tmp_path / "e.parquet"),
                "--dim",
                "64",
                "--chunk-size",
                "16",
                "--quiet",
            ]
        )
        == 0
    )
    table = pq.read_table(tmp_path / "e.parquet")
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), expected, atol=1e-6)
    assert not list(tmp_path.glob("*.parts"))


def test_interrupted_encoding_resumes_with_the_rest(tmp_path):
    src = tmp_path / "texts.csv"
    src.write_text("text\n" + "\n".join(TEXTS) + "\n")
    calls = []

    def flaky(texts):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third chunk
        return np.full((len(texts), 4), float(len(calls)), np.float32)

    with pytest.raises(KeyboardInterrupt):
        write_embeddings(src, tmp_path / "out.npy", flaky, chunk_size=10, progress=False)
    assert len(list((tmp_path / "out.npy.parts").glob("part-*.npy"))) == 2
    assert not (tmp_path / "out.npy").exists()
    summary = write_embeddings(src, tmp_path / "out.npy", flaky, chunk_size=10, progress=False)
    assert summary == {"rows": 50, "chunks_encoded": 3, "chunks_reused": 2, "out": str(tmp_path / "out.npy")}
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (50, 4)
    assert out[:10, 0].tolist() == [1.0] * 10 and out[20:30, 0].tolist() == [4.0] * 10


def test_resuming_with_other_settings_is_refused(tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS))
    encode_fn = lambda t: np.zeros((len(t), 2), np.float32)  # noqa: E731
    calls = []

    def second_fails(texts):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return encode_fn(texts)

    with pytest.raises(KeyboardInterrupt):
        write_embeddings(src, tmp_path / "o.npy", second_fails, chunk_size=10, settings={"dim": 64}, progress=False)
    with pytest.raises(DataError, match="other settings, input or model; remove it"):
        write_embeddings(src, tmp_path / "o.npy", encode_fn, chunk_size=10, settings={"dim": 128}, progress=False)
    with pytest.raises(DataError, match="output must end in .npy or .parquet"):
        write_embeddings(src, tmp_path / "o.csv", encode_fn, progress=False)


def test_quiet_encoding_prints_nothing_and_threads_is_a_setting(run_dir, tmp_path, capfd):
    """--quiet silences every bar, the weights-loading one of transformers included."""
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS[:3]) + "\n")
    threads = torch.get_num_threads()
    try:
        assert (
            main(
                [
                    "encode",
                    str(src),
                    "--model",
                    str(run_dir),
                    "--out",
                    str(tmp_path / "e.npy"),
                    "--quiet",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert capfd.readouterr().err == ""


def test_a_blank_line_is_an_empty_text_for_encode_and_index(tmp_path):
    """Row i of what encode writes, and document i of an index, is line or row i of the input."""
    from steerable.cli.use import read_texts

    files = {
        "t.txt": "one\n\nthree\n   \nfive\n",
        "t.csv": 'text\none\n""\nthree\n   \nfive\n',  # a blank CSV line is no row
        "t.jsonl": '{"text": "one"}\n{"text": ""}\n{"text": "three"}\n{"text": "   "}\n{"text": null}\n',
    }
    expected = {
        "t.txt": ["one", "", "three", "   ", "five"],
        "t.csv": ["one", "", "three", "five"],
        "t.jsonl": ["one", "", "three", "   ", ""],
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
        streamed = [t for chunk in iter_text_chunks(tmp_path / name, 2) for t in chunk]
        assert streamed == read_texts(str(tmp_path / name), None) == expected[name]
    vectors = np.eye(5, 8, dtype=np.float32)
    np.save(tmp_path / "v.npy", vectors)
    assert (
        main(
            [
                "index",
                "--texts",
                str(tmp_path / "t.txt"),
                "--embeddings",
                str(tmp_path / "v.npy"),
                "--prefix-dim",
                "4",
                "--out",
                str(tmp_path / "idx"),
                "--quiet",
            ]
        )
        == 0
    )


def test_a_parts_folder_not_left_by_encode_is_refused(tmp_path):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS))
    (tmp_path / "o.npy.parts").mkdir()
    (tmp_path / "o.npy.parts" / "thesis.tex").write_text("mine")
    with pytest.raises(DataError) as e:
        write_embeddings(src, tmp_path / "o.npy", lambda t: np.zeros((len(t), 2), np.float32), progress=False)
    assert str(e.value) == (
        f"{tmp_path}/o.npy.parts: a folder that `steer encode` did not leave (no "
        "manifest.json); move it away or choose another output name"
    )
    assert (tmp_path / "o.npy.parts" / "thesis.tex").read_text() == "mine"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("t.txt", b"ok\nbad \xe9\n", "line 2: not UTF-8 text (byte 0xe9 at position 5); save the file as UTF-8"),
        ("t.csv", b"text\nok\nbad \xe9\n", "line 3: not UTF-8 text (byte 0xe9 at position 5); save the file as UTF-8"),
        (
            "t.jsonl",
            b'{"text": "ok"}\n{"text": "\xff"}\n',
            "line 2: not UTF-8 text (byte 0xff at position 11); save the file as UTF-8",
        ),
        ("t.csv", b'text\nok\n"never closed\n', "line 3: a quoted field is never closed (unterminated quote)"),
        ("t.jsonl", b'{"text": "ok"}\n{"text": \n', "line 2: not valid JSON (Expecting value)"),
        ("nope.txt", None, "no such file"),
    ],
)
def test_bad_input_files_are_named(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as e:
        list(iter_text_chunks(tmp_path / name, 2))
    assert str(e.value) == f"{tmp_path / name}: {message}"


@pytest.mark.parametrize("bad, fixed", [({"text_col": "title"}, {"text_col": "text"}), ({"path": "missing.csv"}, {})])
def test_a_failed_encode_leaves_nothing_and_the_corrected_command_runs(tmp_path, bad, fixed):
    src = tmp_path / "texts.csv"
    src.write_text("text\n" + "\n".join(TEXTS) + "\n")
    encode_fn = lambda t: np.zeros((len(t), 2), np.float32)  # noqa: E731
    with pytest.raises(DataError):
        write_embeddings(
            tmp_path / bad.get("path", "texts.csv"),
            tmp_path / "o.npy",
            encode_fn,
            text_col=bad.get("text_col"),
            progress=False,
        )
    assert not (tmp_path / "o.npy.parts").exists()
    summary = write_embeddings(src, tmp_path / "o.npy", encode_fn, text_col=fixed.get("text_col"), progress=False)
    assert summary["rows"] == 50


def test_a_model_trained_again_into_the_same_folder_is_not_resumed(run_dir, tmp_path, capsys):
    """The resume record names the model by its contents: parts encoded by the model that was in the
    folder are not mixed with the rows of the one trained into it since."""
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(run_dir, model_dir)
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    enc = SteerableEncoder.from_pretrained(model_dir, cache=False)
    settings = {
        "model": str(model_dir.resolve()),
        "model_fingerprint": enc.model.fingerprint(),
        "dim": 256,
        "dial": None,
    }
    chunks = []

    def first_chunk_only(texts):  # the run is interrupted after its first chunk
        chunks.append(texts)
        if len(chunks) > 1:
            raise KeyboardInterrupt
        return enc.encode(texts)

    with pytest.raises(KeyboardInterrupt):
        write_embeddings(src, tmp_path / "e.npy", first_chunk_only, chunk_size=16, settings=settings, progress=False)
    torch.manual_seed(1)  # another model trained into the same folder
    SteerableModel(MLPHead(384), enc.model.hierarchy, enc.model.backbone).save(model_dir)
    argv = [
        "encode",
        str(src),
        "--model",
        str(model_dir),
        "--out",
        str(tmp_path / "e.npy"),
        "--chunk-size",
        "16",
        "--quiet",
    ]
    assert main(argv) == 2
    assert "left by an earlier run with other settings, input or model" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "e.npy.parts")
    assert main(argv) == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "e.npy"), SteerableEncoder.from_pretrained(model_dir).encode(TEXTS), atol=1e-6
    )


def test_encode_does_not_replace_an_existing_output_unless_told(run_dir, tmp_path, capsys):
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(TEXTS[:5]) + "\n")
    out = tmp_path / "e.npy"
    out.write_bytes(b"mine")
    argv = ["encode", str(src), "--model", str(run_dir), "--out", str(out), "--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"steer: error: --out {out}: the file exists; give --overwrite to replace it, or another --out\n"
    )
    assert out.read_bytes() == b"mine"
    assert main([*argv, "--overwrite"]) == 0 and np.load(out).shape == (5, 256)


@pytest.mark.parametrize(
    "name, content, rows",
    [
        ("t.txt", "a\n\nb\n", 3),
        ("t.jsonl", '{"text": "a"}\n\n{"text": "b"}\n', 2),
        ("t.csv", 'text\n"two\nlines"\nb\n', 2),
        ("t.csv", "text\n\xe9\n", 1),
    ],
)
def test_encode_knows_how_many_texts_are_coming(tmp_path, name, content, rows):
    """The progress bar's total (and so its time left) is the number of texts the encoding pass reads."""
    from steerable.encoder import _count_rows

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert _count_rows(path, None) == rows == sum(len(c) for c in iter_text_chunks(path, 2))
