"""pg_stat_statements → :class:`~auditor.facts.pgss.PgStatStatements`, per fingerprint.

Two sources:

- the live view, through the auditor's read-only, time-limited session
  (:meth:`PostgresCollector.session <auditor.collectors.postgres.PostgresCollector.session>`):
  ONE query, bounded to the top ``limit`` entries by total time (default 500), of the
  DSN's database only unless ``all_databases``; a window count gives the number of
  entries and the total time the view held, so a cut is visible. Plus, on PostgreSQL 14+,
  one read of ``pg_stat_statements_info`` for the reset time.
- a CSV export, as ``psql`` writes it::

      \\copy (SELECT * FROM pg_stat_statements) TO 'pgss.csv' CSV HEADER

  (any column order; PostgreSQL 9.4 to 17 column names).

Entries are grouped by :func:`auditor.fingerprint.fingerprint` of their text, so they
line up with the query log's fingerprints (``$1`` and literal values fingerprint the same).
Entries from PostgreSQL 14+ with ``toplevel = false`` (statements run inside functions,
tracked with ``pg_stat_statements.track = all``) are skipped: their time is already in
the calling statement's. Entries whose text is hidden (``<insufficient privilege>``: a
role without ``pg_read_all_stats`` sees only its own) are counted in ``skipped``.

Errors: :class:`~auditor.errors.TargetUnreachable` (server unreachable, extension not
installed or not preloaded, no permission, unreadable CSV), with the fix in the message;
:class:`~auditor.errors.ConfigError` (both or neither of a DSN and a CSV; bad limit).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable, Mapping

from auditor.errors import ConfigError, TargetUnreachable
from auditor.facts.pgss import PgStatStatements, StatementTotals
from auditor.fingerprint import fingerprint
from auditor.redact import redact

__all__ = ["PgssCollector", "read_pgss_live", "read_pgss_csv", "DEFAULT_LIMIT"]

DEFAULT_LIMIT = 500
HIDDEN = "<insufficient privilege>"
HIDDEN_REASON = ("text hidden from this role (<insufficient privilege>): grant it "
                 "pg_read_all_stats to read every role's statements")
NESTED_REASON = "nested statement (toplevel = false): its time is in its caller's"
EMPTY_REASON = "entry without a query text"

_INSTALL = ("CREATE EXTENSION pg_stat_statements; in that database, with "
            "shared_preload_libraries = 'pg_stat_statements' in postgresql.conf "
            "(a restart)")


def _total_ms(row: Mapping[str, object]) -> float:
    if row.get("total_exec_time") not in (None, ""):
        return float(row["total_exec_time"]) + float(row.get("total_plan_time") or 0.0)
    return float(row.get("total_time") or 0.0)


def _aggregate(rows: Iterable[Mapping[str, object]], facts: PgStatStatements) -> None:
    """Add entries (dicts with query, calls, rows and the time columns) to ``facts``."""
    best: dict[str, float] = {}
    for row in rows:
        query = row.get("query")
        top = row.get("toplevel")
        if top in (False, "f", "false", "False"):
            facts.skipped[NESTED_REASON] = facts.skipped.get(NESTED_REASON, 0) + 1
            continue
        if not isinstance(query, str) or not query.strip():
            facts.skipped[EMPTY_REASON] = facts.skipped.get(EMPTY_REASON, 0) + 1
            continue
        if query == HIDDEN:
            facts.skipped[HIDDEN_REASON] = facts.skipped.get(HIDDEN_REASON, 0) + 1
            continue
        fp = fingerprint(query)
        total = _total_ms(row)
        st = facts.statements.get(fp)
        if st is None:
            st = facts.statements[fp] = StatementTotals(fp, query)
        st.calls += int(row.get("calls") or 0)
        st.total_ms += total
        st.rows += int(row.get("rows") or 0)
        st.entries += 1
        if total > best.get(fp, -1.0):
            best[fp] = total
            st.query = query
        facts.entries += 1
    for st in facts.statements.values():
        st.total_ms = round(st.total_ms, 3)


# -- CSV ------------------------------------------------------------------------------
def read_pgss_csv(path: str | Path) -> PgStatStatements:
    """Read a CSV export of pg_stat_statements (with a header row). Raises
    TargetUnreachable when the file cannot be read or lacks the needed columns."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TargetUnreachable(f"cannot read pg_stat_statements export {path}: "
                                f"{exc.strerror or exc}") from None
    text = data.decode("utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    cols = set(reader.fieldnames or ())
    need = {"query", "calls", "rows"}
    if not need <= cols or not cols & {"total_exec_time", "total_time"}:
        missing = sorted(need - cols) or ["total_exec_time"]
        raise TargetUnreachable(
            f"cannot read pg_stat_statements export {path}: it lacks the column(s) "
            f"{', '.join(missing)}; export it with a header: \\copy (SELECT * FROM "
            f"pg_stat_statements) TO '{path.name}' CSV HEADER")
    facts = PgStatStatements(source=str(path))
    try:
        _aggregate(reader, facts)
    except (ValueError, csv.Error) as exc:
        raise TargetUnreachable(f"cannot read pg_stat_statements export {path}: line "
                                f"{reader.line_num}: {exc}") from None
    facts.entries_total = facts.entries + sum(facts.skipped.values())
    facts.total_ms_all = round(facts.total_ms, 3)
    return facts


# -- the live view ----------------------------------------------------------------------
_SQL_WHERE = """
SELECT n.nspname,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       current_database()
  FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'pg_stat_statements'
 WHERE e.extname = 'pg_stat_statements'
"""


def _view_sql(schema: str, cols: set[str], all_databases: bool):
    from psycopg import sql
    total = ("s.total_exec_time + s.total_plan_time" if "total_plan_time" in cols
             else "s.total_exec_time" if "total_exec_time" in cols else "s.total_time")
    where = ["TRUE"]
    if "toplevel" in cols:
        where.append("s.toplevel")
    if not all_databases:
        where.append("s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
    return sql.SQL(
        "SELECT s.query, s.calls, s.rows, ({total})::float8 AS total_ms, "
        "count(*) OVER () AS n_all, sum({total}) OVER ()::float8 AS ms_all "
        "FROM {view} s WHERE {where} ORDER BY 4 DESC LIMIT %s"
    ).format(total=sql.SQL(total),
             view=sql.Identifier(schema, "pg_stat_statements"),
             where=sql.SQL(" AND ".join(where)))


def read_pgss_live(dsn: str | None, *, limit: int = DEFAULT_LIMIT,
                   all_databases: bool = False, statement_timeout_ms: int = 5000,
                   connect_timeout_s: int = 5) -> PgStatStatements:
    """Read the live view (see the module docstring): the top ``limit`` entries by total
    time. Raises TargetUnreachable or ConfigError."""
    import psycopg

    from auditor.collectors.postgres import PostgresCollector
    if limit < 1:
        raise ConfigError(f"the pg_stat_statements limit must be at least 1, got {limit}")
    pg = PostgresCollector(dsn, statement_timeout_ms=statement_timeout_ms,
                           connect_timeout_s=connect_timeout_s)
    with pg.session() as conn:
        try:
            found = conn.execute(_SQL_WHERE).fetchone()
            if found is None:
                db = conn.execute("SELECT current_database()").fetchone()[0]
                raise TargetUnreachable(
                    f"pg_stat_statements is not installed in database {db!r} at "
                    f"{pg.target}: {_INSTALL}")
            schema, columns, db = found
            cols = set(columns)
            rows = conn.execute(_view_sql(schema, cols, all_databases), (limit,)).fetchall()
            since = None
            if "toplevel" in cols:  # PostgreSQL 14+: pg_stat_statements_info exists
                from psycopg import sql
                r = conn.execute(sql.SQL("SELECT extract(epoch FROM stats_reset)::float8 "
                                         "FROM {}").format(
                    sql.Identifier(schema, "pg_stat_statements_info"))).fetchone()
                since = r[0] if r else None
        except psycopg.errors.ObjectNotInPrerequisiteState:
            raise TargetUnreachable(
                f"pg_stat_statements is installed but not loaded at {pg.target}: set "
                "shared_preload_libraries = 'pg_stat_statements' in postgresql.conf and "
                "restart the server") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise TargetUnreachable(
                f"cannot read pg_stat_statements at {pg.target}: {redact(exc)}; grant the "
                "role pg_read_all_stats") from None
        except psycopg.errors.QueryCanceled:
            raise TargetUnreachable(
                f"reading pg_stat_statements at {pg.target} took longer than "
                f"{statement_timeout_ms} ms; lower the limit ({limit})") from None
        except psycopg.OperationalError as exc:
            raise TargetUnreachable(f"lost the connection to {pg.target} while reading "
                                    f"pg_stat_statements: {redact(exc)}") from None
    facts = PgStatStatements(source=f"{pg.target} (pg_stat_statements)", limit=limit,
                             database=None if all_databases else db, stats_since=since)
    _aggregate(({"query": q, "calls": c, "rows": r, "total_time": t}
                for q, c, r, t, _n, _ms in rows), facts)
    facts.entries_total = int(rows[0][4]) if rows else 0
    facts.total_ms_all = round(float(rows[0][5] or 0.0), 3) if rows else 0.0
    return facts


class PgssCollector:
    """Collector for the ``pgss`` evidence kind: pg_stat_statements from a live server
    (``dsn``) or a CSV export (``csv_path``). ``limit``: entries read from the live
    view, top by total time. Nothing connects before :meth:`collect`."""
    kind = "pgss"

    def __init__(self, dsn: str | None = None, *, csv_path: str | Path | None = None,
                 limit: int = DEFAULT_LIMIT, all_databases: bool = False) -> None:
        if (dsn is None) == (csv_path is None):
            raise ConfigError("pg_stat_statements: give either a DSN or a CSV export")
        self.dsn = dsn
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.limit = limit
        self.all_databases = all_databases

    def describe(self) -> str:
        if self.csv_path is not None:
            return f"pg_stat_statements export {self.csv_path}"
        return f"pg_stat_statements at {redact(self.dsn)} (top {self.limit} by total time)"

    def collect(self) -> PgStatStatements:
        """Read the view or the export; raises TargetUnreachable or ConfigError."""
        if self.csv_path is not None:
            return read_pgss_csv(self.csv_path)
        return read_pgss_live(self.dsn, limit=self.limit, all_databases=self.all_databases)
