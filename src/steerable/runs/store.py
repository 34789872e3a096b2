"""The results store: one atomically written JSON record per finished run, read as a long table.

A record is written only when its run has finished, by rename, so a killed sweep leaves every earlier
record intact and a resumed sweep skips exactly the runs that have records.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import atomic_write, atomic_write_json, read_json
from .record import STEERABILITY_METRICS, RunRecord

COLUMNS = ["run", "dataset", "method", "seed", "backbone", "head", "protocol", "level", "dim", "metric", "value"]


class ResultsStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.records_dir = self.root / "records"

    def _path(self, run_id: str) -> Path:
        return self.records_dir / f"{run_id}.json"

    def has(self, run_id: str, require: tuple[str, ...] = ()) -> bool:
        """Whether the run is recorded (and, with ``require``, its record holds those fields non-empty:
        a record from before a measurement was added counts as missing)."""
        if not self._path(run_id).exists():
            return False
        return not require or all(getattr(self.get(run_id), k) for k in require)

    def get(self, run_id: str) -> RunRecord:
        path = self._path(run_id)
        return RunRecord.from_dict(read_json(path), source=str(path))

    def add(self, record: RunRecord) -> None:
        atomic_write_json(self._path(record.run_id), record.to_dict())

    def log_invocation(self, entry: dict) -> None:
        """Append one sweep invocation's timing to ``invocations.json`` (rewritten atomically)."""
        atomic_write_json(self.root / "invocations.json", self.invocations() + [entry])

    def invocations(self) -> list[dict]:
        path = self.root / "invocations.json"
        return read_json(path) if path.exists() else []

    def records(self) -> list[RunRecord]:
        if not self.records_dir.is_dir():
            return []
        return [RunRecord.from_dict(read_json(p), source=str(p)) for p in sorted(self.records_dir.glob("*.json"))]

    def table(self) -> pd.DataFrame:
        """Every metric of every run as one long DataFrame (columns :data:`COLUMNS`)."""
        return pd.DataFrame([row for r in self.records() for row in long_rows(r)], columns=COLUMNS)

    def write_parquet(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path else self.root / "results.parquet"
        table = self.table()
        atomic_write(path, lambda p: table.to_parquet(p, index=False))
        return path


def long_rows(record: RunRecord) -> list[dict]:
    """A record's metrics as rows: accuracy per (protocol, level, dim), then each scalar metric."""
    base = {
        "run": record.run_id,
        "dataset": record.dataset,
        "method": record.method,
        "seed": record.seed,
        "backbone": record.backbone,
        "head": record.head,
    }
    rows = []
    for protocol, block in record.metrics.items():
        for level, by_dim in block.accuracy.items():
            for dim, value in by_dim.items():
                rows.append(
                    base | {"protocol": protocol, "level": level, "dim": int(dim), "metric": "accuracy", "value": value}
                )
        for name in STEERABILITY_METRICS:
            rows.append(
                base | {"protocol": protocol, "level": None, "dim": None, "metric": name, "value": block.metric(name)}
            )
    for key, value in record.retrieval.items():
        rows.append(base | {"protocol": "retrieval", **_parse_key(key), "value": float(value)})
    return rows


def _parse_key(key: str) -> dict:
    """``recall@10/l1/64`` -> metric, level, dim; ``funnel/overlap@10/50`` -> dim is the shortlist
    (also for ``adaptive@<margin>/...``)."""
    parts = key.split("/")
    level = parts[-2] if len(parts) >= 3 and not parts[-2].startswith(("recall", "overlap", "extended")) else None
    metric = "/".join(p for p in parts[:-1] if p != level)
    return {"metric": metric, "level": level, "dim": int(parts[-1])}
