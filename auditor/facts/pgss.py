"""pg_stat_statements facts: the server's own per-statement counters, a second source of
workload evidence beside the query log (no logging needed, but no per-request order).

Times are milliseconds; ``stats_since`` is epoch seconds (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StatementTotals:
    """One query shape's counters, summed over the pg_stat_statements entries whose
    text has this fingerprint (one entry per user, database, queryid and, from
    PostgreSQL 14, top-level flag)."""
    fingerprint: str  # auditor.fingerprint.fingerprint of the entry's text
    query: str  # pg_stat_statements' text (constants as $n) of the entry with most time
    calls: int = 0
    total_ms: float = 0.0  # total_exec_time + total_plan_time (total_time before PG 13)
    rows: int = 0  # rows retrieved or affected, summed
    entries: int = 0  # pg_stat_statements entries merged here

    @property
    def mean_ms(self) -> float:
        """total_ms / calls (0 without calls)."""
        return self.total_ms / self.calls if self.calls else 0.0

    @property
    def rows_per_call(self) -> float:
        return self.rows / self.calls if self.calls else 0.0


@dataclass
class PgStatStatements:
    """What pg_stat_statements held, per fingerprint.

    ``source``: the DSN read (password masked) or the CSV file. ``limit``: the live view
    is read top-N by total time (None: every entry, e.g. from a CSV). ``entries``: the
    entries read; ``entries_total``: those the view held (more than ``entries`` when
    the limit cut it); ``total_ms_all``: the total time of every entry, read or not,
    so the share the top N covers is known. ``skipped``: entries not read, per reason
    (e.g. another role's text hidden as ``<insufficient privilege>``).
    ``stats_since``: when the counters were last reset (PostgreSQL 14+), if known.
    ``notes``: what a reader should know about what was read, one sentence each (e.g.
    an export's rows of other databases left out, or that they could not be told
    apart).
    """
    source: str
    statements: dict[str, StatementTotals] = field(default_factory=dict)
    entries: int = 0
    entries_total: int = 0
    total_ms_all: float = 0.0
    limit: int | None = None
    database: str | None = None  # the database whose entries were read (None: all or unknown)
    skipped: dict[str, int] = field(default_factory=dict)
    stats_since: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.statements.values())

    @property
    def total_ms(self) -> float:
        return sum(s.total_ms for s in self.statements.values())

    def top(self, n: int = 10, *, by: str = "total_ms") -> list[StatementTotals]:
        """The ``n`` shapes with the highest ``by`` (``total_ms``, ``calls``,
        ``mean_ms`` or ``rows``), highest first."""
        return sorted(self.statements.values(), key=lambda s: getattr(s, by),
                      reverse=True)[:n]
