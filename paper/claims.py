"""The claims file, ``paper/claims.json``: the claims, their rules and the data sets each role may use.

Read by the grids (which data sets are for selection, which for confirmation), the selection steps
(which they may not read) and the verdicts (:mod:`paper.verdicts`).
"""

from __future__ import annotations

import json
from pathlib import Path

CLAIMS_FILE = Path(__file__).with_name("claims.json")


def load_claims(path: str | Path = CLAIMS_FILE) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
