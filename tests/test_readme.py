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
