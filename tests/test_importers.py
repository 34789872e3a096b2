"""steer datasets import yahoo-answers: the public CSVs in the canonical layout, the topics in four groups."""

import csv
import gzip
import json

import pytest

from steerable.cli import main
from steerable.data import DataError, list_datasets, load_dataset
from steerable.data.importers import YAHOO_GROUPS, YAHOO_TOPICS, import_yahoo_answers


def _yahoo(folder, per_topic=12, test_per_topic=3):
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.csv", per_topic), ("test.csv", test_per_topic)):
        with open(folder / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            for i in range(n):
                for k, topic in enumerate(YAHOO_TOPICS, start=1):
                    w.writerow([k, f"question {i} on {topic}?", f"more\\non {topic}" if i % 2 else "", f"answer {i}"])
    return folder


def test_the_import_writes_the_canonical_layout_with_the_four_groups(tmp_path, capsys):
    src = _yahoo(tmp_path / "src")
    out = tmp_path / "data" / "yahoo"
    assert main(["datasets", "import", "yahoo-answers", str(src), "--out", str(out)]) == 0
    assert "yahoo answers: 100 train, 20 validation, 30 test -> " in capsys.readouterr().out
    assert list_datasets(tmp_path / "data") == ["yahoo"]
    ds = load_dataset("yahoo", tmp_path / "data")
    assert ds.hierarchy.classes[0] == tuple(sorted(YAHOO_GROUPS)) and len(ds.hierarchy.classes[1]) == 10
    parent = {ds.hierarchy.classes[1][f]: ds.hierarchy.classes[0][c] for f, c in enumerate(ds.hierarchy.parents[0])}
    assert parent == {t: g for g, ts in YAHOO_GROUPS.items() for t in ts}
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (100, 20, 30)  # 15 % of train, stratified
    with gzip.open(out / "train.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    assert {"question 1 on Health? more on Health", "question 0 on Health?"} <= {r["text"] for r in rows}
    again = tmp_path / "again"
    import_yahoo_answers(src / "train.csv", again)  # the train file alone names its folder
    assert (again / "validation.jsonl.gz").read_bytes() == (out / "validation.jsonl.gz").read_bytes()  # seeded
    assert (
        "Knowledge = Science & Mathematics, Education & Reference, Computers & Internet"
        in (out / "SOURCE.md").read_text()
    )


def test_bad_yahoo_files_are_named(tmp_path):
    src = _yahoo(tmp_path / "src")
    (src / "test.csv").write_text('3,"fine","x","y"\n11,"bad index","x","y"\n')
    with pytest.raises(DataError, match=r"test.csv: line 2: class index '11' is not 1-10"):
        import_yahoo_answers(src, tmp_path / "out")
    (src / "test.csv").unlink()
    with pytest.raises(DataError, match=r"test.csv: no such file"):
        import_yahoo_answers(src, tmp_path / "out")
