"""PostgreSQL with pgvector: one table, an HNSW index on the prefix, the funnel as one SQL statement.

The table ``<table>(id bigint primary key, prefix vector(P), embedding vector(F))`` holds the unit-
length prefix and full vector of each document; an HNSW index (inner product) is built on ``prefix``
after the first rows are loaded. The funnel is a single statement::

    SELECT id, -(embedding <#> :full) FROM
      (SELECT id, embedding FROM <table> ORDER BY prefix <#> :prefix LIMIT :shortlist) AS shortlist
    ORDER BY embedding <#> :full, id LIMIT :k

(the inner query walks the HNSW index; the outer one reranks the shortlist by the full vector, ties
to the lower id). With ``quantize="binary"`` the index is built on the prefix's sign bits instead,
``binary_quantize(prefix)::bit(P)`` with ``bit_hamming_ops``, and the shortlist is ranked by Hamming
distance (``ORDER BY binary_quantize(prefix)::bit(P) <~> binary_quantize(:prefix)``, scored
``1 - 2 h / P`` as :mod:`steerable.search.binary` does); the rows keep the float prefix, which the index
does not read. ``hnsw.ef_search`` is ``max(ef_search, shortlist)`` (pgvector caps it at 1000;
longer shortlists continue with pgvector's strict-order iterative scan, allowed to visit twice the
shortlist's tuples), and sequential scans are
off so that the index serves the shortlist even where the planner would scan a small table.
``exact=True`` turns index scans off instead, so every ranking is an exact scan of the table.
"""

from __future__ import annotations

import re
import struct
from types import ModuleType
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..extras import require
from .funnel import adaptive
from .funnel import checked as _check

if TYPE_CHECKING:
    import psycopg
    import psycopg.sql

MIN_PGVECTOR = (0, 8)  # subvector, l2_normalize and the iterative index scans
_MAX_EF = 1000  # pgvector's ceiling for hnsw.ef_search
_MAX_SCAN = 20_000  # pgvector's default hnsw.max_scan_tuples


def _psycopg() -> tuple[ModuleType, ModuleType]:
    psycopg = require("psycopg", "pgvector", "the pgvector backend")
    return psycopg, require("psycopg.sql", "pgvector", "the pgvector backend")


def safe_url(url: str) -> str:
    """``url`` without its password (libpq then reads it from PGPASSWORD or ~/.pgpass)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}@{host}"))


def vector_text(v: np.ndarray) -> str:
    """pgvector's text form of a float32 vector; every float32 reads back exactly."""
    return "[" + ",".join(map(repr, v.tolist())) + "]"


def _check_table(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"pgvector table name {name!r}: use lower-case letters, digits and _ (at most 63)")
    return name


def table_exists(url: str, table: str) -> bool:
    """Whether ``table`` exists in the database at ``url`` (asked before any encoding)."""
    psycopg, _ = _psycopg()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", [_check_table(table)]).fetchone()[0])
    except psycopg.Error as e:
        raise ValueError(f"cannot connect to PostgreSQL at {safe_url(url)}: {_first_line(e)}") from None


class _Stage:
    """The prefix or the full vector of the table as a :class:`~steerable.search.funnel.Stage`."""

    def __init__(self, index: "PgvectorIndex", column: str):
        self.index, self.column = index, column

    def __len__(self) -> int:
        return len(self.index)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.ranked(self.column, queries, k)

    def rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.ranked(self.column, queries, k, candidates=candidates)


class PgvectorIndex:
    """A table in PostgreSQL (pgvector >= 0.8) at ``url``.

    ``create=True`` makes the table (refused if it exists, unless ``overwrite=True``, which drops it);
    ``create=False`` opens an existing one. The table is made by the first :meth:`add` (or by
    :meth:`close`), in the transaction that copies the rows in and builds the index, so a build that
    fails leaves the database as it was. Queries run outside transactions (autocommit).
    """

    backend = "pgvector"

    def __init__(
        self,
        prefix_dim: int,
        full_dim: int,
        *,
        url: str,
        table: str = "steerable",
        create: bool = True,
        overwrite: bool = False,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        exact: bool = False,
        quantize: str | None = None,
    ):
        if quantize not in (None, "binary"):
            raise ValueError(f"unknown quantization {quantize!r} for pgvector; choose binary")
        if quantize and prefix_dim % 8:
            raise ValueError(f"a binary index needs a prefix of a multiple of 8 dims, got {prefix_dim}")
        psycopg, self.sql = _psycopg()
        self.prefix_dim, self.full_dim, self.quantize = prefix_dim, full_dim, quantize
        self.table, self.url = _check_table(table), safe_url(url)
        self.hnsw_m, self.ef_construction, self.ef_search, self.exact = hnsw_m, ef_construction, ef_search, exact
        self._applied: tuple | None = None  # the session settings last sent
        self.to_create: str | None = None  # "create" / "replace": what the first add (or close) does first
        try:
            self.conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise ValueError(f"cannot connect to PostgreSQL at {self.url}: {_first_line(e)}") from None
        try:
            self._prepare(create, overwrite)
        except BaseException:
            self.conn.close()
            raise
        self.prefix, self.full = _Stage(self, "prefix"), _Stage(self, "embedding")

    def _prepare(self, create: bool, overwrite: bool) -> None:
        sql, t = self.sql, self.sql.Identifier(self.table)
        with self.conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            version = cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            if tuple(int(x) for x in version.split(".")[:2]) < MIN_PGVECTOR:
                raise ValueError(
                    f"PostgreSQL at {self.url}: pgvector {version}; the pgvector backend needs 0.8 or newer"
                )
            exists = cur.execute("SELECT to_regclass(%s) IS NOT NULL", [self.table]).fetchone()[0]
            if create:
                if exists and not overwrite:
                    raise ValueError(
                        f"PostgreSQL at {self.url}: table {self.table!r} already exists; pass --overwrite to replace it"
                    )
                self.to_create = "replace" if exists else "create"
                return
            if not exists:
                raise ValueError(f"PostgreSQL at {self.url}: no table {self.table!r}")
            dims = cur.execute(
                sql.SQL("SELECT vector_dims(prefix), vector_dims(embedding) FROM {} LIMIT 1").format(t)
            ).fetchone()
            if dims is not None and tuple(dims) != (self.prefix_dim, self.full_dim):
                raise ValueError(
                    f"PostgreSQL at {self.url}: table {self.table!r} holds {dims[0]}-d prefixes "
                    f"and {dims[1]}-d vectors, not {self.prefix_dim} and {self.full_dim}"
                )
            if (
                dims is not None
                and not cur.execute("SELECT to_regclass(%s) IS NOT NULL", [self.index_name]).fetchone()[0]
            ):
                kind = "binary (sign-bit)" if self.quantize else "float"
                raise ValueError(f"PostgreSQL at {self.url}: table {self.table!r} has no {kind} index on its prefix")

    def create_table(self, cur: psycopg.Cursor[Any]) -> None:
        """Make the table, empty and with no index (dropping the one it replaces), in the caller's
        transaction; whoever commits that sets ``to_create`` to None."""
        sql, t = self.sql, self.sql.Identifier(self.table)
        if self.to_create == "replace":
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(t))
        cur.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigint PRIMARY KEY, prefix vector({}) NOT NULL, embedding vector({}) NOT NULL)"
            ).format(t, sql.Literal(self.prefix_dim), sql.Literal(self.full_dim))
        )

    def __len__(self) -> int:
        if self.to_create:
            return 0
        with self.conn.cursor() as cur:
            n = cur.execute(self.sql.SQL("SELECT count(*) FROM {}").format(self.sql.Identifier(self.table))).fetchone()[
                0
            ]
        return int(n)

    def add(self, prefix: np.ndarray, full: np.ndarray, ids: Sequence[int] | None = None) -> None:
        """In one transaction: make the table if it is new, copy the rows in, build the HNSW index on
        the prefix if there is none yet."""
        sql, t = self.sql, self.sql.Identifier(self.table)
        prefix, full = _check("prefix", prefix, self.prefix_dim), _check("full", full, self.full_dim)
        if len(prefix) != len(full):
            raise ValueError(f"prefix and full have {len(prefix)} and {len(full)} rows")
        start = len(self)
        ids = range(start, start + len(prefix)) if ids is None else [int(i) for i in ids]
        with self.conn.transaction(), self.conn.cursor() as cur:
            if self.to_create:
                self.create_table(cur)
            rows = np.asarray(ids, dtype=np.int64)
            with cur.copy(sql.SQL("COPY {} (id, prefix, embedding) FROM STDIN (FORMAT BINARY)").format(t)) as copy:
                for s in range(0, len(rows), COPY_ROWS):  # the stream encoded a block at a time
                    e = s + COPY_ROWS
                    copy.write(copy_binary(rows[s:e], prefix[s:e], full[s:e], header=s == 0, trailer=e >= len(rows)))
                if not len(rows):
                    copy.write(copy_binary(rows, prefix, full))
            key = (
                self._bits("prefix") + sql.SQL(" bit_hamming_ops") if self.quantize else sql.SQL("prefix vector_ip_ops")
            )
            cur.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw ({}) WITH (m = {}, ef_construction = {})"
                ).format(
                    sql.Identifier(self.index_name),
                    t,
                    key,
                    sql.Literal(self.hnsw_m),
                    sql.Literal(self.ef_construction),
                )
            )
            cur.execute(sql.SQL("ANALYZE {}").format(t))
        self.to_create = None

    @property
    def index_name(self) -> str:
        """The name of the index on the prefix (float HNSW, or on the sign bits)."""
        return f"{self.table}_prefix_{'bits' if self.quantize else 'hnsw'}"

    def _bits(self, vector: str) -> psycopg.sql.Composed:
        """The sign bits of a vector expression, as the binary index stores them."""
        return self.sql.SQL("(binary_quantize({})::bit({}))").format(
            self.sql.SQL(vector), self.sql.Literal(self.prefix_dim)
        )

    def _order(self, column: str, param: str) -> tuple[psycopg.sql.Composable, psycopg.sql.Composable]:
        """(distance, score) of ``column`` against the query parameter ``param``: the negated inner
        product and the inner product, or for a binary prefix the Hamming distance of the sign bits
        and ``1 - 2 h / P``."""
        sql = self.sql
        if column == "prefix" and self.quantize:
            distance = sql.SQL("{} <~> {}").format(self._bits("prefix"), self._bits(f"%({param})s::vector"))
            return distance, sql.SQL("1 - 2 * ({}) / {}").format(distance, sql.Literal(float(self.prefix_dim)))
        distance = sql.SQL("{} <#> %({})s::vector").format(sql.Identifier(column), sql.SQL(param))
        return distance, sql.SQL("-({})").format(distance)

    # -- queries ---------------------------------------------------------------------------------
    def _settings(self, cur: psycopg.Cursor[Any], width: int) -> None:
        """Send the session settings for a ranking of ``width`` rows, where they changed."""
        ef = min(_MAX_EF, max(self.ef_search, width))
        # an iterative scan stops after hnsw.max_scan_tuples index tuples (20,000 by default): a longer
        # shortlist would come back short
        scan = max(_MAX_SCAN, 2 * int(width))
        settings = (ef, width > ef, self.exact, scan)
        if settings == self._applied:
            return
        cur.execute(f"SET hnsw.ef_search = {int(ef)}")
        cur.execute(f"SET hnsw.iterative_scan = {'strict_order' if width > ef else 'off'}")
        cur.execute(f"SET hnsw.max_scan_tuples = {scan}")
        # the HNSW index serves every shortlist (on a small table the planner would rather scan it);
        # exact: no index scans, every ranking scans the table
        cur.execute(f"SET enable_indexscan = {'off' if self.exact else 'on'}")
        cur.execute(f"SET enable_seqscan = {'on' if self.exact else 'off'}")
        self._applied = settings

    def _many(self, statement: psycopg.sql.Composed, params: list, width: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of one statement run for each parameter set (one query each), padded with
        -1 / -inf; several statements go to the server in one pipeline."""
        ids = np.full((len(params), k), -1, np.int64)
        scores = np.full((len(params), k), -np.inf, np.float32)
        if not params:
            return ids, scores
        with self.conn.cursor() as cur:
            self._settings(cur, width)
            if len(params) == 1:
                cur.execute(statement, params[0])
            else:
                cur.executemany(statement, params, returning=True)
            for i in range(len(params)):
                rows = cur.fetchall()
                if rows:
                    ids[i, : len(rows)] = [r[0] for r in rows]
                    scores[i, : len(rows)] = [r[1] for r in rows]
                cur.nextset()
        return ids, scores

    def ranked(
        self, column: str, queries: np.ndarray, k: int, candidates: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores): each query's ``k`` nearest rows by ``column`` (best first, ties to the
        lower id), among its ``candidates`` ids when given."""
        sql, t = self.sql, self.sql.Identifier(self.table)
        where = sql.SQL("WHERE id = ANY(%(ids)s) ") if candidates is not None else sql.SQL("")
        # ties to the lower id, except where the HNSW index serves the ORDER BY (distance alone)
        tie = sql.SQL("") if column == "prefix" and candidates is None else sql.SQL(", id")
        distance, score = self._order(column, "q")
        statement = sql.SQL("SELECT id, {score} FROM {t} {where}ORDER BY {distance}{tie} LIMIT %(k)s").format(
            score=score, t=t, where=where, distance=distance, tie=tie
        )
        params = [{"q": vector_text(q), "k": k} for q in queries]
        if candidates is not None:
            for p, cand in zip(params, candidates):
                p["ids"] = [int(i) for i in cand if i >= 0]
        return self._many(statement, params, k, k)

    def search(
        self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores): exact by the full vector, or the funnel with ``shortlist``, one statement
        a query."""
        q_prefix = _check("query prefix", q_prefix, self.prefix_dim)
        q_full = _check("query full", q_full, self.full_dim)
        if shortlist is None:
            return self.ranked("embedding", q_full, k)
        shortlist = max(shortlist, k)
        statement = self._funnel_statement()
        params = [
            {"p": vector_text(qp), "f": vector_text(qf), "shortlist": shortlist, "k": k}
            for qp, qf in zip(q_prefix, q_full)
        ]
        return self._many(statement, params, shortlist, k)

    def _funnel_statement(self, select: str = "id, -(embedding <#> %(f)s::vector)") -> psycopg.sql.Composed:
        sql = self.sql
        return sql.SQL(
            "SELECT {select} FROM (SELECT id, embedding FROM {t} ORDER BY {prefix} LIMIT %(shortlist)s) AS shortlist "
            "ORDER BY embedding <#> %(f)s::vector, id LIMIT %(k)s"
        ).format(select=sql.SQL(select), t=sql.Identifier(self.table), prefix=self._order("prefix", "p")[0])

    def search_prefix(self, q_prefix: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        return self.ranked("prefix", _check("query prefix", q_prefix, self.prefix_dim), k)

    def adaptive(
        self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100, margin: float = 0.02
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, extended): :func:`steerable.search.funnel.adaptive` over this table."""
        return adaptive(
            self.prefix,
            self.full,
            _check("query prefix", q_prefix, self.prefix_dim),
            _check("query full", q_full, self.full_dim),
            k,
            shortlist,
            margin,
        )

    def explain(self, q_prefix: np.ndarray, q_full: np.ndarray, k: int = 10, shortlist: int = 100) -> str:
        """PostgreSQL's plan of the funnel statement for one query (to check the HNSW index is used)."""
        with self.conn.cursor() as cur:
            self._settings(cur, shortlist)
            rows = cur.execute(
                self.sql.SQL("EXPLAIN {}").format(self._funnel_statement("id")),
                {"p": vector_text(q_prefix[0]), "f": vector_text(q_full[0]), "shortlist": shortlist, "k": k},
            ).fetchall()
        return "\n".join(r[0] for r in rows)

    def close(self) -> None:
        """Make the table if it is still to be made (empty), and close the connection (again:
        nothing)."""
        if self.conn.closed:
            return
        if self.to_create:
            with self.conn.transaction(), self.conn.cursor() as cur:
                self.create_table(cur)
            self.to_create = None
        self.conn.close()


COPY_ROWS = 65536  # rows of the binary COPY stream encoded at a time by add
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
_COPY_TRAILER = struct.pack(">h", -1)


def copy_binary(
    ids: np.ndarray, prefix: np.ndarray, full: np.ndarray, *, header: bool = True, trailer: bool = True
) -> bytes:
    """Rows ``(id bigint, prefix vector, embedding vector)`` as a PostgreSQL binary COPY stream (its
    ``header`` and ``trailer`` where asked: a stream written in blocks has them once): a tuple is
    its field count and, per field, its length and bytes; pgvector's binary ``vector`` is int16
    dims, int16 0, then the values as big-endian float4."""
    n, p, d = len(ids), prefix.shape[1], full.shape[1]
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_bytes", ">i4"),
            ("id", ">i8"),
            ("prefix_bytes", ">i4"),
            ("prefix_dim", ">i2"),
            ("prefix_unused", ">i2"),
            ("prefix", ">f4", (p,)),
            ("full_bytes", ">i4"),
            ("full_dim", ">i2"),
            ("full_unused", ">i2"),
            ("full", ">f4", (d,)),
        ]
    )
    out = np.zeros(n, row)
    out["fields"] = 3
    out["id_bytes"], out["id"] = 8, ids
    out["prefix_bytes"], out["prefix_dim"], out["prefix"] = 4 + 4 * p, p, prefix
    out["full_bytes"], out["full_dim"], out["full"] = 4 + 4 * d, d, full
    return (_COPY_HEADER if header else b"") + out.tobytes() + (_COPY_TRAILER if trailer else b"")


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
