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

  (any column order; PostgreSQL 9.4 to 17 column names). The view holds every
  database's entries; when the audit names its database (the DSN of ``postgres.dsn``)
  only that database's rows are kept: by a ``datname`` column when the export has one
  (``SELECT d.datname, s.* FROM pg_stat_statements s JOIN pg_database d ON d.oid =
  s.dbid``), else by ``dbid``, whose oid is looked up on the DSN's server in one
  read-only query. ``skipped`` counts the rows left out and ``notes`` says so; when
  the rows cannot be told apart (no such column, no DSN, server unreachable) every row
  is kept and ``notes`` says that instead.

The auditor's own statements (its catalog reads, this collector's query: every one
starts with :data:`auditor.collectors.postgres.QUERY_TAG`, which pg_stat_statements
keeps in its text) are left out of both sources, so an auditor run often enough never
judges itself (PG203). The transaction control psycopg sends for it (``BEGIN``,
``SAVEPOINT``, ``ROLLBACK``) carries no tag and stays: it is never slow and reads no
table.

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

from auditor.collectors.postgres import QUERY_TAG
from auditor.errors import AuditorError, ConfigError, TargetUnreachable
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
OWN_REASON = "the auditor's own query (tagged /* auditor:self */)"

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
        if QUERY_TAG in query:
            facts.skipped[OWN_REASON] = facts.skipped.get(OWN_REASON, 0) + 1
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
def other_database_reason(database: str) -> str:
    """The ``skipped`` reason of a CSV row of another database than ``database``."""
    return f"another database's entry (the audit reads database {database!r})"


def read_pgss_csv(path: str | Path, *, database: str | None = None,
                  database_oid: int | None = None,
                  unknown_why: str | None = None) -> PgStatStatements:
    """Read a CSV export of pg_stat_statements (with a header row).

    ``database``: the audited database's name; with a ``datname`` column only its rows
    are kept; else, with ``database_oid`` (its ``pg_database.oid``) and a ``dbid``
    column, only rows of that dbid. Rows left out are counted in ``skipped`` under
    :func:`other_database_reason`, and ``notes`` says how many of how many databases;
    when no filter applies it says why (``unknown_why``: why the database is not
    known). Raises TargetUnreachable when the file cannot be read or lacks the needed
    columns."""
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
    if database is not None and "datname" in cols:
        column, keep = "datname", database
    elif database is not None and database_oid is not None and "dbid" in cols:
        column, keep = "dbid", str(database_oid)
    else:
        column = keep = None
    seen: dict[str, int] = {}  # database (name or oid) -> rows
    by_db = "datname" if "datname" in cols else "dbid" if "dbid" in cols else None

    def rows():
        for row in reader:
            if by_db is not None:
                key = (row.get(by_db) or "").strip()
                seen[key] = seen.get(key, 0) + 1
            if column is not None and (row.get(column) or "").strip() != keep:
                reason = other_database_reason(database)
                facts.skipped[reason] = facts.skipped.get(reason, 0) + 1
                continue
            yield row
    try:
        _aggregate(rows(), facts)
    except (ValueError, csv.Error) as exc:
        raise TargetUnreachable(f"cannot read pg_stat_statements export {path}: line "
                                f"{reader.line_num}: {exc}") from None
    facts.entries_total = facts.entries + sum(facts.skipped.values())
    facts.total_ms_all = round(facts.total_ms, 3)
    _csv_notes(facts, seen, by_db, column, keep, database, unknown_why)
    return facts


def _csv_notes(facts: PgStatStatements, seen: dict[str, int], by_db: str | None,
               column: str | None, keep: str | None, database: str | None,
               unknown_why: str | None) -> None:
    n_dbs = len(seen)
    if column is not None:
        facts.database = database
        left = sum(n for k, n in seen.items() if k != keep)
        others = sum(1 for k in seen if k != keep)
        via = "by datname" if column == "datname" else f"by dbid {keep}"
        if left:
            facts.notes.append(
                f"rows of database {database!r} only ({via}): {left} row"
                f"{'s' if left != 1 else ''} of {others} other database"
                f"{'s' if others != 1 else ''} left out")
        elif keep in seen:
            facts.notes.append(f"every row is of database {database!r} ({via})")
        else:
            facts.notes.append(f"no row is of database {database!r} ({via}): was the "
                               "export taken from another server?")
        return
    if by_db is None:
        facts.notes.append("the export has no dbid or datname column: its rows may come "
                           "from every database of the server (export it with SELECT * "
                           "FROM pg_stat_statements)")
    elif n_dbs > 1:
        why = unknown_why or "the audit names no database (postgres.dsn)"
        facts.notes.append(f"the export holds rows of {n_dbs} databases ({by_db}) and all "
                           f"are read: {why}")
    elif database is None or by_db == "dbid":
        why = f": {unknown_why}" if unknown_why else ""
        facts.notes.append(f"the export holds one database's rows ({by_db} "
                           f"{next(iter(seen), '?')}), which could not be matched to the "
                           f"audited database{why}")


# -- the live view ----------------------------------------------------------------------
_SQL_WHERE = QUERY_TAG + """
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
    # the auditor's own entries (QUERY_TAG, the first parameter) are counted, not read,
    # and left out before the limit so they never take an application's place
    return sql.SQL(
        QUERY_TAG + " WITH v AS (SELECT s.query, s.calls, s.rows, ({total})::float8 AS total_ms "
        "FROM {view} s WHERE {where}) "
        "SELECT query, calls, rows, total_ms, count(*) OVER () AS n_all, "
        "sum(total_ms) OVER ()::float8 AS ms_all, "
        "(SELECT count(*) FROM v WHERE strpos(v.query, %(tag)s) > 0) AS n_own "
        "FROM v WHERE strpos(v.query, %(tag)s) = 0 ORDER BY 4 DESC LIMIT %(limit)s"
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
                db = conn.execute(QUERY_TAG + " SELECT current_database()").fetchone()[0]
                raise TargetUnreachable(
                    f"pg_stat_statements is not installed in database {db!r} at "
                    f"{pg.target}: {_INSTALL}")
            schema, columns, db = found
            cols = set(columns)
            rows = conn.execute(_view_sql(schema, cols, all_databases),
                                {"tag": QUERY_TAG, "limit": limit}).fetchall()
            since = None
            if "toplevel" in cols:  # PostgreSQL 14+: pg_stat_statements_info exists
                from psycopg import sql
                r = conn.execute(sql.SQL(QUERY_TAG + " SELECT extract(epoch FROM stats_reset)"
                                         "::float8 FROM {}").format(
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
                for q, c, r, t, _n, _ms, _own in rows), facts)
    facts.entries_total = int(rows[0][4]) if rows else 0
    facts.total_ms_all = round(float(rows[0][5] or 0.0), 3) if rows else 0.0
    own = int(rows[0][6]) if rows else 0
    if own:
        facts.skipped[OWN_REASON] = facts.skipped.get(OWN_REASON, 0) + own
    return facts


class PgssCollector:
    """Collector for the ``pgss`` evidence kind: pg_stat_statements from a live server
    (``dsn``) or a CSV export (``csv_path``). ``limit``: entries read from the live
    view, top by total time. ``database_dsn`` (CSV only): the audited database's DSN,
    which names the database whose rows of the export are kept (see the module
    docstring; its oid is looked up there when the export has ``dbid`` but no
    ``datname``). Nothing connects before :meth:`collect`. Raises ConfigError for
    both or neither of ``dsn`` and ``csv_path``."""
    kind = "pgss"

    def __init__(self, dsn: str | None = None, *, csv_path: str | Path | None = None,
                 limit: int = DEFAULT_LIMIT, all_databases: bool = False,
                 database_dsn: str | None = None) -> None:
        if (dsn is None) == (csv_path is None):
            raise ConfigError("pg_stat_statements: give either a DSN or a CSV export")
        self.dsn = dsn
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.limit = limit
        self.all_databases = all_databases
        self.database_dsn = database_dsn
        self._notes: list[str] = []

    def describe(self) -> str:
        """What is (or was) read; after :meth:`collect`, with its notes (e.g. the rows
        of other databases left out of an export)."""
        notes = f" ({'; '.join(self._notes)})" if self._notes else ""
        if self.csv_path is not None:
            return f"pg_stat_statements export {self.csv_path}{notes}"
        return (f"pg_stat_statements at {redact(self.dsn)} (top {self.limit} by total "
                f"time){notes}")

    def collect(self) -> PgStatStatements:
        """Read the view or the export; raises TargetUnreachable or ConfigError."""
        if self.csv_path is not None:
            name, oid, why = self._audited_database()
            facts = read_pgss_csv(self.csv_path, database=name, database_oid=oid,
                                  unknown_why=why)
        else:
            facts = read_pgss_live(self.dsn, limit=self.limit,
                                   all_databases=self.all_databases)
        self._notes = list(facts.notes)
        return facts

    def _audited_database(self) -> tuple[str | None, int | None, str | None]:
        """(name, oid, why not known) of the database ``database_dsn`` names. Connects
        (one read-only query) only when the export's rows are told apart by ``dbid``,
        or the DSN names no database."""
        if not self.database_dsn:
            return None, None, None
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict
        try:
            name = conninfo_to_dict(self.database_dsn).get("dbname")
        except ProgrammingError:
            return None, None, "the DSN is malformed"
        header = _csv_header(self.csv_path)
        if name and ("datname" in header or "dbid" not in header):
            return name, None, None
        from auditor.collectors.postgres import PostgresCollector
        try:
            pg = PostgresCollector(self.database_dsn)
            with pg.session() as conn:
                oid, name = conn.execute(
                    QUERY_TAG + " SELECT oid::int8, datname FROM pg_database "
                    "WHERE datname = current_database()").fetchone()
        except AuditorError as exc:
            return name, None, f"the database's oid could not be looked up: {redact(exc)}"
        except Exception as exc:  # noqa: BLE001 - the export is still read, unfiltered
            return name, None, (f"the database's oid could not be looked up: "
                                f"{redact(type(exc).__name__ + ': ' + str(exc))}")
        return name, int(oid), None


def _csv_header(path: Path) -> set[str]:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            return set(next(csv.reader(fh), []))
    except OSError:
        return set()
