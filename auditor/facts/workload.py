"""Workload facts: what the query-log reader distils from PostgreSQL logs.

Times are epoch seconds (float, UTC); durations are milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Why a log-based check cannot judge a log without statements (an Inconclusive reason).
NO_STATEMENTS = ("the query log holds no statements; log them with "
                 "log_min_duration_statement = 0 (or log_statement = 'all')")


@dataclass(frozen=True)
class Statement:
    """One executed statement as logged."""
    fingerprint: str  # query shape id (auditor.fingerprint), literals removed
    query: str  # the text as logged (literals or $n placeholders included)
    params: tuple[str, ...] = ()  # bind values from "DETAIL: parameters: $1 = '...'", in order
    duration_ms: float | None = None  # None when the log has no duration for it
    ts: float | None = None  # epoch seconds


@dataclass
class Request:
    """The statements of one request of one session, in order.

    ``boundary`` says how the request was cut out of its session: ``transaction``
    (BEGIN..COMMIT/ROLLBACK), ``idle-gap`` (a pause longer than the N+1 rule's
    ``idle_gap_ms`` outside a transaction) or ``session`` (the whole session).
    """
    session: str  # session id: %c when logged, else "<pid>@<first timestamp>"
    boundary: str
    statements: list[Statement] = field(default_factory=list)
    user: str | None = None
    database: str | None = None
    application: str | None = None


@dataclass
class FingerprintStats:
    fingerprint: str
    normalized: str  # the statement with literals replaced by $n placeholders
    example: Statement  # a real execution with its parameter values
    calls: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


@dataclass
class ConnectionStats:
    """Connection events from log_connections / log_disconnections lines."""
    logged: bool = False  # True when the log holds connection or disconnection lines at all
    connections: int = 0  # "connection authorized" (or "connection received") lines
    disconnections: int = 0
    session_ms: list[float] = field(default_factory=list)  # from "session time: h:mm:ss.fff"
    first_ts: float | None = None
    last_ts: float | None = None
    peak_per_second: int = 0  # most connections opened within one wall-clock second

    @property
    def per_second(self) -> float:
        """Mean new connections per second over the logged span (0 if under 1 s)."""
        if self.first_ts is None or self.last_ts is None or self.last_ts - self.first_ts < 1:
            return float(self.connections) if self.connections else 0.0
        return self.connections / (self.last_ts - self.first_ts)


@dataclass
class WorkloadProfile:
    sources: list[str] = field(default_factory=list)  # the files read
    statements: int = 0
    total_ms: float = 0.0
    fingerprints: dict[str, FingerprintStats] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    connections: ConnectionStats = field(default_factory=ConnectionStats)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> number of lines skipped
    first_ts: float | None = None
    last_ts: float | None = None
