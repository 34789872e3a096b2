"""Runs: one run end to end, its typed record, grids of runs, where they execute, and the store."""

from .executors import LocalExecutor, RayExecutor
from .record import SCHEMA_VERSION, OpenSet, Probe, ProtocolMetrics, Retrieval, RunRecord
from .run import RunResult, Where, load_run, run, run_dataset, run_seeds, save_run
from .spec import RunSpec, SweepSpec
from .store import ResultsStore
from .sweep import execute_run, execute_runs, prepare_vectors, run_sweep, seed_groups

__all__ = [
    "LocalExecutor",
    "RayExecutor",
    "SCHEMA_VERSION",
    "RunRecord",
    "ProtocolMetrics",
    "Retrieval",
    "Probe",
    "OpenSet",
    "RunResult",
    "Where",
    "load_run",
    "run",
    "run_dataset",
    "run_seeds",
    "save_run",
    "RunSpec",
    "SweepSpec",
    "ResultsStore",
    "execute_run",
    "execute_runs",
    "prepare_vectors",
    "run_sweep",
    "seed_groups",
]
