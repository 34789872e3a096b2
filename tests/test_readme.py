"""The README's Python example runs as written."""

import re
from pathlib import Path


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "(1, 64) (1, 256)" in out and "'coarse': 64" in out
    assert (tmp_path / "runs" / "intents-v5" / "model.safetensors").exists()


def test_readme_lists_every_method_as_the_registry_names_it():
    from steerable.methods import METHODS

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("| method | label | what it trains |", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.strip().splitlines()[1:]]
    assert [(name.strip("`"), label) for name, label, _ in rows] == [(m.name, m.label) for m in METHODS.values()]
