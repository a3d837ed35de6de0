"""PostgreSQL facts: what :class:`auditor.collectors.postgres.PostgresCollector` reads
from the catalog and the statistics views of one database.

Every value is JSON-friendly (str, int, float, bool, None, tuples, dicts of those), so a
:class:`PostgresFacts` round-trips through :meth:`PostgresFacts.to_dict` /
:meth:`PostgresFacts.from_dict` for snapshots: a check run on a snapshot sees exactly what
it would have seen live.

Units: sizes in bytes, rows as the planner's estimate, counters as PostgreSQL keeps them
(cumulative since the last statistics reset).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Mapping

SNAPSHOT_FORMAT = "auditor.postgres-snapshot"
SNAPSHOT_VERSION = 1

#: The schema an unqualified table name resolves to (PostgreSQL's default search_path
#: is ``"$user", public``; a per-user schema is rare enough in web apps to ignore).
DEFAULT_SCHEMA = "public"


@dataclass(frozen=True)
class Table:
    """A table, partitioned table or materialized view (``kind``: "table", "partitioned",
    "matview").

    rows_estimate: the larger of ``pg_class.reltuples`` (-1 before the first VACUUM/ANALYZE)
    and ``pg_stat_all_tables.n_live_tup``; for a partitioned table, the sum over its
    partitions. size_bytes: ``pg_total_relation_size`` (heap + indexes + TOAST; summed over
    partitions for a partitioned table). seq_scan, seq_tup_read, idx_scan: cumulative
    counters from ``pg_stat_all_tables``; None when the statistics could not be read.
    columns: the live columns in attnum order. partition_of: "schema.table" of the parent
    when this is a partition.
    """
    schema: str
    name: str
    rows_estimate: int
    size_bytes: int
    seq_scan: int | None = None
    seq_tup_read: int | None = None
    idx_scan: int | None = None
    columns: tuple[str, ...] = ()
    kind: str = "table"
    partition_of: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Index:
    """An index. columns: the key columns in index order (INCLUDE columns left out), None
    for an expression. valid: ``indisvalid AND indisready AND indislive`` (a failed
    CREATE INDEX CONCURRENTLY leaves an invalid index the planner never uses).
    partial: has a WHERE predicate. method: the access method (btree, hash, gist, gin,
    brin, spgist). definition: ``pg_get_indexdef``."""
    schema: str
    table: str
    name: str
    columns: tuple[str | None, ...]
    unique: bool = False
    primary: bool = False
    valid: bool = True
    partial: bool = False
    method: str = "btree"
    definition: str = ""


@dataclass(frozen=True)
class ForeignKey:
    """A foreign-key constraint: ``schema.table(columns)`` references
    ``ref_schema.ref_table(ref_columns)``, columns in key order."""
    schema: str
    table: str
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class ColumnStats:
    """Planner statistics of one column (``pg_stats``; only columns the auditing role may
    read, only after ANALYZE). n_distinct: > 0 a count of distinct values, < 0 minus the
    fraction of rows that are distinct (-1: unique). null_frac: fraction of NULLs (0..1)."""
    schema: str
    table: str
    column: str
    null_frac: float
    n_distinct: float


@dataclass(frozen=True)
class Connections:
    """Client connections of the whole cluster (``pg_stat_activity``, client backends,
    the auditor's own session left out).

    total = active + idle + idle_in_transaction + other. idle_in_transaction includes
    "idle in transaction (aborted)". other: fastpath/disabled states, and sessions of other
    roles whose state the auditing role may not see (then ``hidden`` counts them too).
    by_application: application_name -> count ("" when unset). by_client: client address ->
    count ("local" for Unix sockets). superuser_reserved: superuser_reserved_connections.
    """
    max_connections: int
    superuser_reserved: int
    total: int
    active: int = 0
    idle: int = 0
    idle_in_transaction: int = 0
    other: int = 0
    hidden: int = 0
    by_application: dict[str, int] = field(default_factory=dict)
    by_client: dict[str, int] = field(default_factory=dict)

    @property
    def used_ratio(self) -> float:
        """total / max_connections (0 when max_connections is unknown)."""
        return self.total / self.max_connections if self.max_connections else 0.0


@dataclass(frozen=True)
class PostgresFacts:
    """One database's catalog and statistics.

    server_version: ``server_version`` (e.g. "15.20"). database: the database read.
    target: the DSN with its password masked. settings: name -> ``current_setting(name)``
    text as SHOW prints it (e.g. "32MB", "on", "-1"), read before the auditor set its own
    session limits. pooler: "pgbouncer" (or another pooler's name) when one was recognised
    between the auditor and the server, "proxy" when something forwards the connection
    but could not be identified, None when nothing points at one; pooler_evidence says why.
    notes: what could not be read (e.g. no permission on a statistics view); facts are
    then partial.
    """
    server_version: str
    database: str
    target: str
    tables: tuple[Table, ...] = ()
    indexes: tuple[Index, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    column_stats: tuple[ColumnStats, ...] = ()
    connections: Connections | None = None
    settings: dict[str, str] = field(default_factory=dict)
    pooler: str | None = None
    pooler_evidence: str = ""
    notes: tuple[str, ...] = ()

    # -- lookups (pure; built once per instance) ---------------------------------------
    @cached_property
    def _tables_by_name(self) -> dict[tuple[str, str], Table]:
        return {(t.schema, t.name): t for t in self.tables}

    @cached_property
    def _indexes_by_table(self) -> dict[tuple[str, str], list[Index]]:
        out: dict[tuple[str, str], list[Index]] = {}
        for ix in self.indexes:
            out.setdefault((ix.schema, ix.table), []).append(ix)
        return out

    @cached_property
    def _stats_by_column(self) -> dict[tuple[str, str, str], ColumnStats]:
        return {(s.schema, s.table, s.column): s for s in self.column_stats}

    def table(self, schema: str, name: str) -> Table | None:
        return self._tables_by_name.get((schema, name))

    def find_table(self, name: str, schema: str | None = None) -> Table | None:
        """Resolve a table name as a query names it: schema-qualified, else
        :data:`DEFAULT_SCHEMA`, else the only schema holding a table of that name."""
        if schema is not None:
            return self.table(schema, name)
        hit = self.table(DEFAULT_SCHEMA, name)
        if hit is not None:
            return hit
        found = [t for t in self.tables if t.name == name]
        return found[0] if len(found) == 1 else None

    def indexes_on(self, schema: str, table: str) -> list[Index]:
        return list(self._indexes_by_table.get((schema, table), ()))

    def column_stat(self, schema: str, table: str, column: str) -> ColumnStats | None:
        return self._stats_by_column.get((schema, table, column))

    def setting_int(self, name: str) -> int | None:
        """An integer setting (e.g. max_connections), None when absent or not an integer."""
        try:
            return int(self.settings[name])
        except (KeyError, ValueError):
            return None

    # -- snapshots ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists); inverse of :meth:`from_dict`."""
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PostgresFacts":
        """Rebuild facts from :meth:`to_dict` output. Raises ValueError on a malformed dict."""
        try:
            conn = data.get("connections")
            return cls(
                server_version=str(data["server_version"]),
                database=str(data["database"]),
                target=str(data["target"]),
                tables=tuple(Table(**{**t, "columns": tuple(t.get("columns", ()))})
                             for t in data.get("tables", ())),
                indexes=tuple(Index(**{**i, "columns": tuple(i.get("columns", ()))})
                              for i in data.get("indexes", ())),
                foreign_keys=tuple(ForeignKey(**{**k, "columns": tuple(k["columns"]),
                                                 "ref_columns": tuple(k["ref_columns"])})
                                   for k in data.get("foreign_keys", ())),
                column_stats=tuple(ColumnStats(**s) for s in data.get("column_stats", ())),
                connections=Connections(**conn) if conn is not None else None,
                settings=dict(data.get("settings", {})),
                pooler=data.get("pooler"),
                pooler_evidence=str(data.get("pooler_evidence", "")),
                notes=tuple(data.get("notes", ())),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a PostgreSQL facts mapping: {exc}") from exc


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
