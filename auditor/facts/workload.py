"""Workload facts: what the query-log reader distils from PostgreSQL logs.

Times are epoch seconds (float, UTC); durations are milliseconds. Everything here is
bounded by the number of distinct query shapes and repeated-statement patterns, never
by the size of the log: the reader runs the request-level detectors (N+1, MN+1,
redundant query) while it streams and keeps their aggregates (:class:`LoopStats`,
:class:`RedundantStats`), not the requests. ``WorkloadProfile.requests`` holds every
request only when the reader is asked to keep them (``keep_requests=True``: tests and
small tools).
"""

from __future__ import annotations

import math
from dataclasses import InitVar, dataclass, field
from typing import Iterable, Mapping

# Why a log-based check cannot judge a log without statements (an Inconclusive reason).
NO_STATEMENTS = ("the query log holds no statements; log them with "
                 "log_min_duration_statement = 0 (or log_statement = 'all')")

BUCKETS_PER_DECADE = 20  # histogram resolution: bucket edges 10^(1/20) = 12.2 % apart


def bucket_of(us: int) -> int:
    """The :class:`LogHistogram` bucket of a value in microseconds: ``-1`` for 0, else
    ``floor(20 * log10(us))`` (bucket ``b`` holds ``[10^(b/20), 10^((b+1)/20))`` µs)."""
    return int(math.log10(us) * BUCKETS_PER_DECADE) if us > 0 else -1


def bucket_low_us(b: int) -> float:
    return 0.0 if b < 0 else 10.0 ** (b / BUCKETS_PER_DECADE)


@dataclass
class LogHistogram:
    """A fixed-resolution histogram of durations: counts per logarithmic bucket (20 per
    decade of microseconds, so a quantile read from it is within ±6 % of the true value,
    and at most ~200 buckets whatever the number of values). Mergeable by adding
    counts, which is what lets partial profiles of log chunks combine exactly.

    ``buckets``: {bucket: count} (see :func:`bucket_of`); ``count``: values added;
    ``min_us``/``max_us``: the extremes (quantiles are clamped to them).
    """
    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    min_us: int | None = None
    max_us: int | None = None

    @classmethod
    def of_ms(cls, values: Iterable[float]) -> "LogHistogram":
        h = cls()
        for v in values:
            h.add_us(round(v * 1000))
        return h

    def add_us(self, us: int) -> None:
        b = bucket_of(us)
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1
        if self.min_us is None or us < self.min_us:
            self.min_us = us
        if self.max_us is None or us > self.max_us:
            self.max_us = us

    def merge(self, other: "LogHistogram") -> None:
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        if other.min_us is not None and (self.min_us is None or other.min_us < self.min_us):
            self.min_us = other.min_us
        if other.max_us is not None and (self.max_us is None or other.max_us > self.max_us):
            self.max_us = other.max_us

    def quantile_ms(self, q: float) -> float | None:
        """The q-quantile (0..1) in ms: the geometric middle of the bucket holding it,
        clamped to [min, max] (0 and 1 give min and max exactly); None when empty."""
        if not self.count:
            return None
        if q <= 0 or q >= 1:
            return round(((self.min_us if q <= 0 else self.max_us) or 0) / 1000.0, 3)
        rank = q * self.count
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                mid = 0.0 if b < 0 else 10.0 ** ((b + 0.5) / BUCKETS_PER_DECADE)
                lo, hi = self.min_us or 0, self.max_us or 0
                return round(min(max(mid, lo), hi) / 1000.0, 3)
        return round((self.max_us or 0) / 1000.0, 3)  # pragma: no cover - rounding guard

    def count_below_ms(self, ms: float) -> float:
        """How many values are below ``ms``. Exact when ``ms`` is a bucket edge (1, 10,
        100, 1000 ms ... and every 10^(k/20) µs); otherwise the bucket holding ``ms``
        is split in proportion to its log-width."""
        us = ms * 1000.0
        if us <= 0:
            return 0.0
        edge = math.log10(us) * BUCKETS_PER_DECADE
        full = math.floor(edge)
        n = float(sum(c for b, c in self.buckets.items() if b < full))
        if edge > full:
            n += self.buckets.get(full, 0) * (edge - full)
        return n


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

    ``boundary`` says how the request was cut out of its session: ``tag`` (a
    sqlcommenter ``traceparent``/``route``/``controller`` tag changed), ``transaction``
    (BEGIN..COMMIT/ROLLBACK), ``idle-gap`` (a pause longer than the N+1 rule's
    ``idle_gap_ms`` outside a transaction), ``session`` (the whole rest of the session)
    or ``cap`` (the request reached ``Detection.max_request_statements``).
    """
    session: str  # session id: %c when logged, else "<pid>@<first timestamp>"
    boundary: str
    statements: list[Statement] = field(default_factory=list)
    user: str | None = None
    database: str | None = None
    application: str | None = None


SESSION_IDLE_GAPS = 600  # Detection.session_idle_limit_ms: this many idle gaps ...
SESSION_IDLE_FLOOR_MS = 600_000.0  # ... but at least 10 minutes (see Detection)


@dataclass(frozen=True)
class Detection:
    """The thresholds the reader's streaming detectors use (they run while the log is
    read, so they must be known then; the checks can only raise them afterwards).

    ``min_repeats``: back-to-back executions of one statement shape that make an N+1
    loop (rules.yaml PG201, 5, after Sentry's N+1 DB detector). ``min_pattern_repeats``:
    repetitions of a pattern of 2..``max_pattern`` different statements that make an
    MN+1 loop (PG201, 3, as the issue defines MN+1). ``redundant_min_repeats``: identical
    reads (same shape, same values) in one request (PG202, 5). ``idle_gap_ms``: outside
    a transaction, a pause this long (ms) ends a request (PG201, 1000).
    ``max_request_statements``: a request is cut after this many statements so that
    a session without transactions, tags or pauses cannot hold unbounded memory
    (10,000; a built-in bound, not a rule threshold).

    ``session_idle_ms``: a session whose next record comes more than this long (ms of
    log time) after its previous one is treated as ended before it (its open request
    closed and analysed, as at a disconnection; the record starts a new session, counted
    again in ``WorkloadProfile.sessions``). It is what bounds the reader's memory when
    the log has no disconnection lines (``log_disconnections = off``): without it every
    session ever seen stays open. None (the default): :attr:`session_idle_limit_ms`,
    600 × ``idle_gap_ms`` with a floor of 10 minutes (600,000 ms at the default 1 s
    gap). Why: a pause of ``idle_gap_ms`` already ends a request outside a
    transaction, so a session silent 600 times that long has no request left to extend
    except an idle-in-transaction or a traceparent-tagged one, which a pause of minutes
    cuts harmlessly; and 10 minutes is the idle timeout of the common poolers
    (PgBouncer's ``server_idle_timeout`` = 600 s, HikariCP's ``idleTimeout`` = 10 min),
    so a pooled connection silent that long would have been closed anyway. What it can
    change: a statement logged when it starts (``log_statement``) whose bare
    ``duration:`` line comes more than this long later, with no other line of its
    session in between, keeps no duration. A built-in bound, not a rule threshold.
    """
    min_repeats: int = 5
    min_pattern_repeats: int = 3
    max_pattern: int = 4
    redundant_min_repeats: int = 5
    idle_gap_ms: float = 1000.0
    max_request_statements: int = 10_000
    session_idle_ms: float | None = None

    @property
    def session_idle_limit_ms(self) -> float:
        """The session idle limit in use (ms): ``session_idle_ms``, or 600 ×
        ``idle_gap_ms`` but at least 600,000 (10 minutes)."""
        if self.session_idle_ms is not None:
            return float(self.session_idle_ms)
        return max(SESSION_IDLE_FLOOR_MS, SESSION_IDLE_GAPS * self.idle_gap_ms)

    @classmethod
    def from_params(cls, pg201: Mapping | None = None, pg202: Mapping | None = None,
                    **overrides) -> "Detection":
        """From the rules' params (rules.yaml merged with config): PG201's
        ``min_repeats``, ``min_pattern_repeats``, ``max_pattern``, ``idle_gap_ms`` and
        PG202's ``min_repeats``. Missing keys keep the defaults above."""
        a, b = dict(pg201 or {}), dict(pg202 or {})
        d = cls()
        kw = {
            "min_repeats": int(a.get("min_repeats", d.min_repeats)),
            "min_pattern_repeats": int(a.get("min_pattern_repeats", d.min_pattern_repeats)),
            "max_pattern": int(a.get("max_pattern", d.max_pattern)),
            "idle_gap_ms": float(a.get("idle_gap_ms", d.idle_gap_ms)),
            "redundant_min_repeats": int(b.get("min_repeats", d.redundant_min_repeats)),
        }
        kw.update(overrides)
        return cls(**kw)


@dataclass
class FingerprintStats:
    """Executions of one statement shape. ``durations`` is their histogram (for p95),
    ``kind`` what the shape does: ``read`` (SELECT, WITH without writes), ``write``
    (INSERT/UPDATE/DELETE/MERGE), ``begin``/``end`` (transaction control) or ``other``."""
    fingerprint: str
    normalized: str  # the statement with literals replaced by $n placeholders
    example: Statement  # a real execution with its parameter values (the slowest)
    calls: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    kind: str = "other"
    durations: LogHistogram = field(default_factory=LogHistogram)

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    @property
    def p95_ms(self) -> float | None:
        """95th percentile of the logged durations (±6 %, see LogHistogram); None when
        no execution had a duration."""
        return self.durations.quantile_ms(0.95)


@dataclass
class CountStats:
    """The requests in which a pattern ran exactly ``count`` times (the key of
    ``by_count``): how many, their summed duration, the costliest one."""
    requests: int = 0
    total_ms: float = 0.0
    max_request_ms: float = 0.0


@dataclass
class LoopExample:
    """One request's loop, the costliest seen: its session, database, iteration count,
    the loop's summed duration, the statement before the loop and the loop's first
    iterations (up to 3) with their real values."""
    session: str
    database: str | None
    count: int
    total_ms: float
    before: Statement | None
    statements: tuple[Statement, ...]


@dataclass
class LoopStats:
    """An N+1 (one statement shape) or MN+1 (a pattern of 2..max_pattern different
    shapes) loop, aggregated over every request where it ran with the same statement
    before it. ``kind``: ``read``, ``write`` or ``mixed`` (the shapes in the pattern).
    ``by_count``: {iterations in one request: CountStats}. Read loops that re-ran the
    same values in every iteration are not here (they are PG202's redundant reads)."""
    fingerprints: tuple[str, ...]
    before: str | None  # fingerprint of the statement just before the loop
    kind: str
    by_count: dict[int, CountStats]
    example: LoopExample


@dataclass
class RedundantExample:
    session: str
    database: str | None
    count: int
    total_ms: float
    statement: Statement


@dataclass
class RedundantStats:
    """A read run ``count`` times with the same shape *and* values in one request
    (anywhere in it), aggregated per shape: ``by_count``: {identical executions in one
    request: CountStats} (``requests`` there counts repeat groups)."""
    fingerprint: str
    by_count: dict[int, CountStats]
    example: RedundantExample


@dataclass
class ConnectionStats:
    """Connection events from log_connections / log_disconnections lines.

    ``session_lengths``: a histogram of the ``session time`` of disconnections (bounded
    whatever the number of sessions); ``session_ms`` (constructor only) adds values in ms.
    """
    logged: bool = False  # True when the log holds connection or disconnection lines at all
    connections: int = 0  # "connection authorized" (or "connection received") lines
    disconnections: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    peak_per_second: int = 0  # most connections opened within one wall-clock second
    session_lengths: LogHistogram = field(default_factory=LogHistogram)
    session_ms: InitVar[Iterable[float] | None] = None

    def __post_init__(self, session_ms: Iterable[float] | None) -> None:
        if session_ms:
            self.session_lengths.merge(LogHistogram.of_ms(session_ms))

    @property
    def sessions_timed(self) -> int:
        """Disconnections with a session time."""
        return self.session_lengths.count

    def sessions_shorter_than(self, ms: float) -> float:
        """Sessions that lasted less than ``ms`` (see LogHistogram.count_below_ms)."""
        return self.session_lengths.count_below_ms(ms)

    @property
    def median_session_ms(self) -> float | None:
        return self.session_lengths.quantile_ms(0.5)

    @property
    def per_second(self) -> float:
        """Mean new connections per second over the logged span; a span under 1 s counts
        as one second (so the figure is the number of connections)."""
        if self.first_ts is None or self.last_ts is None or self.last_ts - self.first_ts < 1:
            return float(self.connections) if self.connections else 0.0
        return self.connections / (self.last_ts - self.first_ts)


@dataclass
class WorkloadProfile:
    """The workload of the logs read. ``detection`` is None for a profile built by
    hand (the checks then run the detectors over ``requests`` themselves)."""
    sources: list[str] = field(default_factory=list)  # the files read
    statements: int = 0
    total_ms: float = 0.0
    fingerprints: dict[str, FingerprintStats] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)  # only with keep_requests
    connections: ConnectionStats = field(default_factory=ConnectionStats)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> number of lines skipped
    first_ts: float | None = None
    last_ts: float | None = None
    sessions: int = 0  # sessions that ran statements (keyed by %c, else by pid)
    request_count: int = 0  # requests cut out of the sessions (kept or not)
    loops: list[LoopStats] = field(default_factory=list)
    redundant: list[RedundantStats] = field(default_factory=list)
    detection: Detection | None = None
