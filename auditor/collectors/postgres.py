"""Read one PostgreSQL database's catalog and statistics into :class:`PostgresFacts`.

The collector is read-only and bounded (DESIGN.md, "Read-only and safe"):

- every query runs in one ``READ ONLY`` transaction (REPEATABLE READ: one consistent
  snapshot) with ``statement_timeout``, ``lock_timeout`` and
  ``idle_in_transaction_session_timeout`` set for that transaction, and
  ``application_name = 'auditor'``. The limits are transaction-local (``set_config(...,
  true)``) and the transaction is rolled back at the end, so nothing leaks into a server
  connection a pooler in transaction mode hands to someone else afterwards (a session-level
  SET or a startup ``options`` parameter would, and PgBouncer rejects the latter).
  Those are the server's limits; on the client side the connection has TCP keepalives
  and ``tcp_user_timeout`` (:data:`CLIENT_TCP`), so a network that drops mid-query ends
  the session within about 30 s instead of leaving the client waiting for an answer that
  never comes (the server's timeouts cannot reach a client that no longer hears it).
- every query the auditor writes starts with :data:`QUERY_TAG`, a comment that
  pg_stat_statements and the server's log keep with the text, so the auditor leaves
  its own statements out of the workload it judges (auditor.collectors.pgss).
- it sends a FIXED number of bulk queries (:data:`QUERIES`), whatever the number of
  tables: server settings, session limits, tables, table statistics, indexes with their
  column lists, foreign keys, column statistics, connection activity. Each runs under a
  savepoint, so a statistics view the role may not read leaves a note in
  ``PostgresFacts.notes`` instead of ending the run. Two of them (exact table sizes,
  index definitions) wait for a lock on a table under ACCESS EXCLUSIVE; when
  lock_timeout cancels them they are sent again in a lock-free form (at most two more
  queries, still independent of the number of tables).

Errors raised by :meth:`PostgresCollector.collect`:

- :class:`~auditor.errors.TargetUnreachable`: the server cannot be reached, refuses the
  login, or the catalog itself (tables, indexes, foreign keys) cannot be read. The message
  never holds the password (it is registered with :func:`auditor.redact.register_secret`).
- :class:`~auditor.errors.ConfigError`: a malformed DSN, both a DSN and a snapshot, or a
  snapshot file that is not one.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from auditor.errors import ConfigError, TargetUnreachable
from auditor.facts.postgres import (
    SNAPSHOT_FORMAT, SNAPSHOT_VERSION, ColumnStats, Connections, ForeignKey, Index,
    PostgresFacts, Table,
)
from auditor.redact import redact, register_secret

APPLICATION_NAME = "auditor"
#: Leads every statement the auditor sends (here and in auditor.collectors.pgss):
#: pg_stat_statements keeps comments in its text, so the auditor's own catalog reads are
#: told apart from the application's, whatever role or application_name ran them.
QUERY_TAG = "/* auditor:self */"
#: libpq's client-side TCP settings for the auditor's connection (a DSN's own values
#: win): the first keepalive probe after 10 s of silence, then one every 5 s, the
#: connection dropped after 3 unanswered ones (25 s); and data sent but unacknowledged
#: for 30 s (``tcp_user_timeout``, ms; Linux) ends it too. Ignored on Unix sockets.
CLIENT_TCP = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3, "tcp_user_timeout": 30_000}

#: Settings copied into ``PostgresFacts.settings`` (those the role may see).
SETTINGS = (
    "max_connections", "superuser_reserved_connections", "shared_buffers", "work_mem",
    "maintenance_work_mem", "effective_cache_size", "random_page_cost",
    "log_connections", "log_disconnections", "log_min_duration_statement", "log_statement",
    "log_line_prefix", "log_destination", "logging_collector", "log_duration",
    "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
    "port", "server_version", "shared_preload_libraries", "track_counts", "track_activities",
)

# Schemas that are never the application's.
_USER_SCHEMAS = ("n.nspname NOT IN ('pg_catalog', 'information_schema') "
                 "AND n.nspname !~ '^pg_(toast|temp_)'")

_SQL_SERVER = QUERY_TAG + """
SELECT current_database(), current_setting('server_version'), inet_server_port(),
       (SELECT coalesce(json_object_agg(name, current_setting(name)), '{}'::json)
          FROM pg_settings WHERE name = ANY(%s))
"""

_SQL_LIMITS = QUERY_TAG + """
SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true),
       set_config('idle_in_transaction_session_timeout', %s, true),
       set_config('default_transaction_read_only', 'on', true)
"""

_SQL_TABLES = QUERY_TAG + f"""
SELECT n.nspname, c.relname, c.relkind, c.reltuples::float8,
       {{size}},
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum),
       (SELECT pn.nspname || '.' || pc.relname
          FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
          JOIN pg_namespace pn ON pn.oid = pc.relnamespace
         WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm') AND {_USER_SCHEMAS}
 ORDER BY 1, 2
"""
# pg_total_relation_size takes an AccessShareLock on each table; when one is locked
# (ALTER TABLE in progress) lock_timeout cancels the query and the tables are read again
# with this lock-free estimate from pg_class.relpages (heap + TOAST + indexes).
_SIZE_EXACT = "CASE WHEN c.relkind = 'p' THEN 0 ELSE pg_total_relation_size(c.oid) END"
_SIZE_ESTIMATE = (
    "(c.relpages::bigint + coalesce((SELECT t.relpages FROM pg_class t WHERE t.oid = c.reltoastrelid), 0)"
    " + coalesce((SELECT sum(ic.relpages) FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid"
    " WHERE x.indrelid = c.oid), 0)) * current_setting('block_size')::bigint"
)

# pg_get_indexdef waits for a lock on a table under ACCESS EXCLUSIVE too: same fallback
# (definitions then rebuilt from the method and columns, marked "(approximate)").
_DEF_EXACT = "pg_get_indexdef(x.indexrelid)"
_DEF_NONE = "NULL::text"

_SQL_TABLE_STATS = QUERY_TAG + """
SELECT schemaname, relname, seq_scan, seq_tup_read, idx_scan, n_live_tup
  FROM pg_stat_all_tables
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname !~ '^pg_(toast|temp_)'
"""

_SQL_INDEXES = QUERY_TAG + f"""
SELECT n.nspname, t.relname, ic.relname,
       ARRAY(SELECT a.attname::text
               FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
               LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                                       AND k.attnum > 0
              WHERE k.ord <= x.indnkeyatts
              ORDER BY k.ord),
       x.indisunique, x.indisprimary, x.indisvalid AND x.indisready AND x.indislive,
       x.indpred IS NOT NULL, am.amname, {{definition}}
  FROM pg_index x
  JOIN pg_class ic ON ic.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am am ON am.oid = ic.relam
 WHERE t.relkind IN ('r', 'p', 'm') AND {_USER_SCHEMAS}
 ORDER BY 1, 2, 3
"""

_SQL_FOREIGN_KEYS = QUERY_TAG + f"""
SELECT n.nspname, c.relname, con.conname,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
              ORDER BY k.ord),
       rn.nspname, rc.relname,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
              ORDER BY k.ord)
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class rc ON rc.oid = con.confrelid
  JOIN pg_namespace rn ON rn.oid = rc.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0 AND {_USER_SCHEMAS}
 ORDER BY 1, 2, 3
"""

# pg_stats shows only columns the role may SELECT; inherited rows (partitioned parents)
# are used only where no plain row exists.
_SQL_COLUMN_STATS = QUERY_TAG + """
SELECT DISTINCT ON (schemaname, tablename, attname)
       schemaname, tablename, attname, null_frac::float8, n_distinct::float8
  FROM pg_stats
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname !~ '^pg_(toast|temp_)'
 ORDER BY schemaname, tablename, attname, inherited
"""

# Client backends of the whole cluster, the auditor's own session left out. For sessions
# of other roles the auditing role may not see (no pg_read_all_stats), backend_type, state
# and client_addr read as NULL: rows with a user and a database count as hidden sessions
# (the logical replication launcher has no database; a parallel worker of another role
# would be miscounted as one).
_SQL_ACTIVITY = QUERY_TAG + """
SELECT coalesce(a.application_name, ''),
       CASE WHEN a.client_addr IS NOT NULL THEN host(a.client_addr)
            WHEN a.client_port = -1 THEN 'local' ELSE '' END,
       a.state, count(*)
  FROM pg_stat_activity a
 WHERE (a.backend_type = 'client backend' OR (a.backend_type IS NULL AND a.usesysid IS NOT NULL AND a.datid IS NOT NULL))
   AND a.pid <> pg_backend_pid()
 GROUP BY 1, 2, 3
"""

#: The bulk queries one collect() sends, in order (plus BEGIN, savepoints, ROLLBACK).
QUERIES = ("server", "limits", "tables", "table_stats", "indexes", "foreign_keys",
           "column_stats", "activity")

#: application_name patterns of poolers, as they show in pg_stat_activity.
_POOLER_APPS = (
    ("pgbouncer", re.compile(r"pgbouncer", re.I)),
    ("pgpool", re.compile(r"pgpool", re.I)),
    ("odyssey", re.compile(r"odyssey", re.I)),
    ("pgcat", re.compile(r"pgcat", re.I)),
    ("supavisor", re.compile(r"supavisor", re.I)),
    ("rds-proxy", re.compile(r"rds.?proxy", re.I)),
)
PGBOUNCER_PORT = 6432


class PostgresCollector:
    """Collect :class:`PostgresFacts` from a live database (``dsn``) or a snapshot file.

    dsn: a libpq URL or key=value string; None uses libpq's environment (PGHOST, ...).
    snapshot: a file written by :meth:`save_snapshot` (then nothing connects).
    statement_timeout_ms, lock_timeout_ms: per-statement limits of the auditor's
    transaction (ms); connect_timeout_s: seconds libpq waits for the server. The
    connection also gets :data:`CLIENT_TCP` (keepalives, ``tcp_user_timeout``) unless
    the DSN sets them.

    ``queries_executed`` counts the bulk queries the last :meth:`collect` sent: always
    ``len(QUERIES)``, plus one for each lock-free fallback that ran (at most two).
    """

    kind = "postgres"

    def __init__(self, dsn: str | None = None, *, snapshot: str | Path | None = None,
                 statement_timeout_ms: int = 5000, lock_timeout_ms: int = 1000,
                 connect_timeout_s: int = 5) -> None:
        if dsn is not None and snapshot is not None:
            raise ConfigError("give either a PostgreSQL DSN or a snapshot file, not both")
        self.dsn = dsn
        self.snapshot = Path(snapshot) if snapshot is not None else None
        self.statement_timeout_ms = int(statement_timeout_ms)
        self.lock_timeout_ms = int(lock_timeout_ms)
        self.connect_timeout_s = int(connect_timeout_s)
        self.queries_executed = 0
        self._params: dict[str, Any] = {}
        if dsn is not None:
            try:
                self._params = conninfo_to_dict(dsn)
            except psycopg.ProgrammingError as exc:
                register_secret(_password_in(dsn))
                raise ConfigError(f"the PostgreSQL DSN is malformed: {redact(exc)}") from None
            register_secret(self._params.get("password"))
        register_secret(os.environ.get("PGPASSWORD"))

    # -- description -------------------------------------------------------------------
    @property
    def target(self) -> str:
        """The DSN with its password masked (or a word on where libpq looks)."""
        if self.dsn is None:
            return "libpq defaults (PGHOST, PGPORT, PGDATABASE, PGUSER)"
        return redact(self.dsn)

    def describe(self) -> str:
        if self.snapshot is not None:
            return f"PostgreSQL snapshot {self.snapshot}"
        return f"PostgreSQL {self.target}"

    # -- the session -------------------------------------------------------------------
    def connect_params(self) -> dict[str, Any]:
        """The libpq parameters the auditor adds to the DSN's: ``application_name``,
        ``connect_timeout`` (s) and :data:`CLIENT_TCP` (those the DSN does not set)."""
        tcp = {k: v for k, v in CLIENT_TCP.items() if k not in self._params}
        return {"application_name": APPLICATION_NAME,
                "connect_timeout": self.connect_timeout_s, **tcp}

    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(self.dsn or "", **self.connect_params(),
                                   prepare_threshold=None, autocommit=False)
        except psycopg.Error as exc:
            raise TargetUnreachable(_unreachable_message(self.target, exc)) from None
        register_secret(conn.info.password)
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        return conn

    @contextmanager
    def session(self) -> Iterator[psycopg.Connection]:
        """A connection inside the auditor's read-only transaction, limits applied.

        Yields a psycopg connection; the transaction is rolled back and the connection
        closed on exit. Raises TargetUnreachable when the server cannot be reached.
        """
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                self._limits(cur)
            yield conn
        finally:
            try:
                conn.rollback()
            except psycopg.Error:
                pass
            conn.close()

    def _limit_params(self) -> tuple[str, str, str]:
        # statement_timeout, lock_timeout, idle_in_transaction_session_timeout (ms)
        return (f"{self.statement_timeout_ms}ms", f"{self.lock_timeout_ms}ms",
                f"{max(self.statement_timeout_ms * 4, 10000)}ms")

    def _limits(self, cur: psycopg.Cursor) -> None:
        cur.execute(_SQL_LIMITS, self._limit_params())

    # -- collect -----------------------------------------------------------------------
    def collect(self) -> PostgresFacts:
        """Read the catalog and statistics (or the snapshot). Raises TargetUnreachable,
        ConfigError (see the module docstring)."""
        if self.snapshot is not None:
            return load_snapshot(self.snapshot)
        self.queries_executed = 0
        conn = self._connect()
        try:
            return self._collect(conn)
        except psycopg.OperationalError as exc:
            raise TargetUnreachable(
                f"lost the connection to PostgreSQL at {self.target} while reading it: "
                f"{_first_line(exc)}") from None
        finally:
            try:
                conn.rollback()
            except psycopg.Error:
                pass
            conn.close()

    def _collect(self, conn: psycopg.Connection) -> PostgresFacts:
        # one read-only transaction, always rolled back; each query under a savepoint
        with conn.transaction(force_rollback=True):
            return self._collect_in_transaction(conn)

    def _collect_in_transaction(self, conn: psycopg.Connection) -> PostgresFacts:
        notes: list[str] = []
        cur = conn.cursor()

        def run(name: str, sql: str, params: tuple = (), *, required: bool) -> list[tuple] | None:
            self.queries_executed += 1
            try:
                with conn.transaction():  # a savepoint: a failure leaves the rest usable
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description else []
            except (pg_errors.InsufficientPrivilege, pg_errors.QueryCanceled,
                    pg_errors.LockNotAvailable, pg_errors.UndefinedTable,
                    pg_errors.UndefinedColumn, pg_errors.UndefinedFunction) as exc:
                why = _first_line(exc)
                if required:
                    raise TargetUnreachable(
                        f"cannot read the catalog ({name}) of PostgreSQL at {self.target}: {why}; "
                        "the auditing role needs CONNECT on the database and USAGE on its schemas"
                    ) from None
                notes.append(f"{name}: not read ({why})")
                return None

        run("limits", _SQL_LIMITS, self._limit_params(), required=True)  # before anything else
        server = run("server", _SQL_SERVER, (list(SETTINGS),), required=True)
        database, version, inet_port, settings = server[0]
        settings = {k: str(v) for k, v in (settings or {}).items()}

        rows = run("tables", _SQL_TABLES.format(size=_SIZE_EXACT), required=False)
        if rows is None:  # a locked table, most likely: read sizes without locks
            notes[-1] += "; table sizes estimated from pg_class.relpages"
            rows = run("tables (lock-free sizes)", _SQL_TABLES.format(size=_SIZE_ESTIMATE),
                       required=True)
        stats = run("table_stats", _SQL_TABLE_STATS, required=False)
        index_rows = run("indexes", _SQL_INDEXES.format(definition=_DEF_EXACT), required=False)
        if index_rows is None:
            notes[-1] += "; index definitions rebuilt from their columns"
            index_rows = run("indexes (lock-free)", _SQL_INDEXES.format(definition=_DEF_NONE),
                             required=True)
        fk_rows = run("foreign_keys", _SQL_FOREIGN_KEYS, required=True)
        col_rows = run("column_stats", _SQL_COLUMN_STATS, required=False)
        activity = run("activity", _SQL_ACTIVITY, required=False)
        cur.close()

        tables = _tables(rows, stats)
        indexes = tuple(
            Index(schema=r[0], table=r[1], name=r[2], columns=tuple(r[3]), unique=r[4],
                  primary=r[5], valid=r[6], partial=r[7], method=r[8],
                  definition=r[9] if r[9] is not None else _approximate_indexdef(r))
            for r in index_rows)
        fks = tuple(ForeignKey(schema=r[0], table=r[1], name=r[2], columns=tuple(r[3]),
                               ref_schema=r[4], ref_table=r[5], ref_columns=tuple(r[6]))
                    for r in fk_rows)
        col_stats = tuple(ColumnStats(schema=r[0], table=r[1], column=r[2],
                                      null_frac=float(r[3] or 0.0), n_distinct=float(r[4] or 0.0))
                          for r in (col_rows or ()))
        connections = _connections(activity, settings) if activity is not None else None
        if connections is not None and connections.hidden:
            notes.append(f"activity: {connections.hidden} sessions of other roles hidden "
                         "(grant pg_read_all_stats to the auditing role to see their state)")
        info = conn.info
        pooler, evidence = detect_pooler(
            dsn_port=_int(info.port), server_port=_int(settings.get("port")),
            inet_server_port=inet_port,
            applications=connections.by_application if connections else {})
        target = _url(info.user, info.host, info.port, info.dbname)
        return PostgresFacts(
            server_version=str(version).split()[0], database=str(database), target=redact(target),
            tables=tables, indexes=indexes, foreign_keys=fks, column_stats=col_stats,
            connections=connections, settings=settings, pooler=pooler,
            pooler_evidence=evidence, notes=tuple(notes),
        )

    # -- snapshots ---------------------------------------------------------------------
    @staticmethod
    def save_snapshot(facts: PostgresFacts, path: str | Path) -> Path:
        """Write ``facts`` as a JSON snapshot that ``PostgresCollector(snapshot=path)``
        reads back. Returns the path. The target is already redacted in the facts."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "facts": facts.to_dict()}
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return path


def load_snapshot(path: str | Path) -> PostgresFacts:
    """Read a snapshot written by :meth:`PostgresCollector.save_snapshot`.

    Raises TargetUnreachable when the file cannot be read, ConfigError when it is not a
    PostgreSQL snapshot."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TargetUnreachable(f"cannot read the PostgreSQL snapshot {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text)
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {SNAPSHOT_FORMAT!r}")
        if doc.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"version {doc.get('version')!r} is not {SNAPSHOT_VERSION}")
        return PostgresFacts.from_dict(doc["facts"])
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not an auditor PostgreSQL snapshot: {exc}") from None


# -- pure helpers ------------------------------------------------------------------------
def detect_pooler(*, dsn_port: int | None, server_port: int | None,
                  inet_server_port: int | None = None,
                  applications: dict[str, int] | None = None) -> tuple[str | None, str]:
    """Decide whether a pooler sits between the auditor and the server.

    dsn_port: the port libpq connected to; server_port: the server's ``port`` setting;
    applications: application_name -> sessions from pg_stat_activity. Returns
    (pooler, evidence): a pooler's name when recognised (port 6432 is PgBouncer's default,
    or a pooler's application_name among the sessions), "proxy" when only the ports differ
    (a pooler, or a port mapping such as Docker's), else (None, evidence of no pooler).
    """
    found: str | None = None
    why: list[str] = []
    if dsn_port == PGBOUNCER_PORT:
        found = "pgbouncer"
        why.append(f"the DSN's port is {PGBOUNCER_PORT}, PgBouncer's default")
    for app, n in sorted((applications or {}).items()):
        for name, pattern in _POOLER_APPS:
            if pattern.search(app):
                found = found or name
                why.append(f"{n} session(s) with application_name {app!r} in pg_stat_activity")
                break
    if dsn_port is not None and server_port is not None and dsn_port != server_port:
        shown = f" (inet_server_port() = {inet_server_port})" if inet_server_port else ""
        why.append(f"the DSN connects to port {dsn_port} but the server listens on "
                   f"{server_port}{shown}: something forwards the connection")
        found = found or "proxy"
    if not why:
        return None, (f"no pooler seen: the DSN's port {dsn_port} is the server's own port "
                      "and no session carries a pooler's application_name")
    return found, "; ".join(why)


def _approximate_indexdef(r: tuple) -> str:
    cols = ", ".join(c if c is not None else "<expression>" for c in r[3])
    unique = "UNIQUE " if r[4] else ""
    where = " WHERE <predicate>" if r[7] else ""
    return f"CREATE {unique}INDEX {r[2]} ON {r[0]}.{r[1]} USING {r[8]} ({cols}){where} (approximate)"


def _tables(rows: list[tuple], stats: list[tuple] | None) -> tuple[Table, ...]:
    by_name = {(r[0], r[1]): r for r in (stats or ())}
    base: dict[tuple[str, str], dict[str, Any]] = {}
    for schema, name, relkind, reltuples, size, columns, parent in rows:
        s = by_name.get((schema, name))
        live = int(s[5]) if s is not None and s[5] is not None else 0
        base[(schema, name)] = dict(
            schema=schema, name=name, rows_estimate=max(int(reltuples), live, 0),
            size_bytes=int(size or 0),
            seq_scan=_int(s[2]) if s is not None else None,
            seq_tup_read=_int(s[3]) if s is not None else None,
            idx_scan=_int(s[4]) if s is not None else None,
            columns=tuple(columns or ()),
            kind={"r": "table", "p": "partitioned", "m": "matview"}[relkind],
            partition_of=parent,
        )
    # a partitioned table holds no rows itself: sum its (possibly nested) partitions
    def total(key: tuple[str, str], seen: frozenset = frozenset()) -> tuple[int, int]:
        t = base[key]
        if t["kind"] != "partitioned" or key in seen:
            return t["rows_estimate"], t["size_bytes"]
        qualified = f"{key[0]}.{key[1]}"
        rows_, size_ = 0, 0
        for k, child in base.items():
            if child["partition_of"] == qualified:
                r, b = total(k, seen | {key})
                rows_, size_ = rows_ + r, size_ + b
        return rows_, size_
    for key, t in base.items():
        if t["kind"] == "partitioned":
            t["rows_estimate"], t["size_bytes"] = total(key)
    return tuple(Table(**t) for t in base.values())


def _connections(rows: list[tuple], settings: dict[str, str]) -> Connections:
    counts = {"active": 0, "idle": 0, "idle_in_transaction": 0, "other": 0, "hidden": 0}
    by_app: dict[str, int] = {}
    by_client: dict[str, int] = {}
    total = 0
    for app, client, state, n in rows:
        n = int(n)
        total += n
        if state == "active":
            counts["active"] += n
        elif state == "idle":
            counts["idle"] += n
        elif state and state.startswith("idle in transaction"):
            counts["idle_in_transaction"] += n
        else:
            counts["other"] += n
            if state is None:
                counts["hidden"] += n
        by_app[app] = by_app.get(app, 0) + n
        if client:
            by_client[client] = by_client.get(client, 0) + n
    return Connections(
        max_connections=_int(settings.get("max_connections")) or 0,
        superuser_reserved=_int(settings.get("superuser_reserved_connections")) or 0,
        total=total, by_application=by_app, by_client=by_client, **counts)


def _unreachable_message(target: str, exc: Exception) -> str:
    text = str(exc)
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        hint = "check the user and password in the DSN (or PGPASSWORD / ~/.pgpass)"
    elif "does not exist" in low and "database" in low:
        hint = "check the database name in the DSN"
    elif "does not exist" in low and "role" in low:
        hint = "check the user name in the DSN"
    elif "pg_hba.conf" in low:
        hint = "the server's pg_hba.conf does not admit this user/host; ask its administrator"
    elif "timeout" in low or "timed out" in low:
        hint = "the server did not answer in time; check the host, the port and any firewall"
    elif "refused" in low or "could not connect" in low or "no such file" in low:
        hint = ("nothing accepts connections there; check the host and port, and that "
                "PostgreSQL runs and listens on TCP (listen_addresses)")
    elif "translate host name" in low or "name or service not known" in low:
        hint = "the host name does not resolve; check the host in the DSN"
    else:
        hint = "check the DSN and that the server is up"
    return redact(f"cannot connect to PostgreSQL at {target}: {_first_line(exc)}; {hint}")


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return redact(lines[0] if lines else type(exc).__name__)


def _password_in(dsn: str) -> str | None:
    m = re.search(r"://[^:/@\s]*:([^@\s]+)@", dsn) or re.search(r"password\s*=\s*'?([^\s']+)", dsn)
    return m.group(1) if m else None


def _url(user: str, host: str, port: Any, dbname: str) -> str:
    """A password-free URL naming what was read (Unix socket directories as ?host=)."""
    if host.startswith("/"):
        return f"postgresql://{user}@/{dbname}?host={host}&port={port}"
    shown = f"[{host}]" if ":" in host else host
    return f"postgresql://{user}@{shown}:{port}/{dbname}"


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None
