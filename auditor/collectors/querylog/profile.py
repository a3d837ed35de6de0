"""Records → :class:`~auditor.facts.workload.WorkloadProfile`, in one streaming pass.

What counts as one executed statement (the rules, in the order of the messages):

- ``duration: X ms  statement: SQL`` (simple protocol): one statement of X ms.
- ``parse``/``bind`` (extended protocol, with or without a name such as ``<unnamed>``):
  not counted; their durations are carried over and added to the next ``execute``
  of the session, so a statement's duration is parse + bind + execute.
- ``execute <name>: SQL``: one statement, counted once here; its parameters come from
  the ``DETAIL:  parameters: $1 = '...'`` that follows it (or, if it has none, from
  its bind's; a bind's parameters apply to the next statement only). ``execute fetch
  from ...`` (a further fetch of a portal) is not counted again.
- ``statement: SQL`` / ``execute ...: SQL`` without a duration (``log_statement = all``):
  one statement; a later bare ``duration: X ms`` line of the same session gives its
  duration (a bare duration with no statement waiting is carried like a parse's). A
  statement whose duration never comes keeps ``duration_ms = None``.

``Statement.ts`` is the log time of the statement's line: when it finished, for a line
with a duration; when it started, for ``log_statement`` lines. Durations are summed
as integer microseconds (the log's 3 decimals), so totals do not depend on the order
of addition.

Sessions are keyed by ``%c`` (csvlog/jsonlog always have it) or else by the pid (a
stderr prefix with neither makes the whole log one session); a ``connection received``
on a pid that has an open session, or a ``disconnection``, ends that session. Each
session is cut into requests (see :class:`~auditor.facts.workload.Request`):

- statements ending in a sqlcommenter comment (``/*traceparent='00-<trace>-...'*/``,
  or ``route``/``controller``/``action`` tags) belong to the request of their tag: the
  trace id when there is a ``traceparent``, else the route/controller/action; a new
  tag value starts a new request (``boundary="tag"``); untagged statements in between
  (the driver's BEGIN/COMMIT) join it. Without a traceparent a pause longer than
  ``idle_gap_ms`` outside a transaction also starts a new request, since two requests
  to one route on a pooled connection would otherwise merge;
- else a transaction, from ``BEGIN``/``START TRANSACTION`` (psycopg and most drivers
  send this implicitly) to ``COMMIT``/``END``/``ROLLBACK``/``ABORT``/``PREPARE
  TRANSACTION`` (``ROLLBACK TO SAVEPOINT`` does not end it) is one request,
  ``boundary="transaction"``;
- statements outside transactions are grouped until a pause longer than
  ``idle_gap_ms`` (the gap from one statement's end, its log time, to the next one's
  start, log time minus duration) or the next transaction: ``boundary="idle-gap"``; a
  group that runs to the end of its session is ``boundary="session"``;
- any request is cut at ``max_request_statements`` (``boundary="cap"``), which bounds
  memory for a session that never pauses.

Each request is handed to the detectors (:mod:`auditor.analysis.repeats`) when it
closes and then dropped, unless ``keep_requests`` is set: memory holds the open
sessions, one request per session, and aggregates bounded by the number of distinct
statement shapes and loop patterns.

**Chunks.** A builder made with ``orphans=True`` reads one chunk of a log that does not
start at the beginning (:mod:`auditor.collectors.querylog.parallel`). A session it meets
without its ``connection received`` line may carry state from before the chunk (a
statement waiting for its parameters, an open transaction), so it is *muted*: its
records are kept as the session's *head* and nothing it does is counted, until it
starts a request at a statement whose every input lies inside the chunk; from then on
it counts normally, and the state it had at that point is kept as a *snapshot*.
:meth:`ProfileBuilder.absorb` replays a chunk's heads onto the sessions as the previous
chunks left them, checks that each replay reaches its snapshot (then everything after
it is exactly what one pass would have found) and otherwise reads the chunk again
from the true state. Positions (``pos``) order every tie the same way in all modes.

**Idle sessions.** A session whose next record comes more than
``Detection.session_idle_limit_ms`` of log time after its previous one (10 minutes by
default) is treated as ended before that record, as by a disconnection: its pending
statement is recorded and its open request closed and analysed, at the position of its
previous record (``seen_pos``); the record starts a new session. This is a function of
each session's own record times only, so it gives the same result in one pass and in
chunks. Memory follows from it: when a new session is about to be added to a map of at
least ``SWEEP_MIN`` (and then twice the size the last sweep left), a sweep ends every
session silent for longer than the limit plus a margin for log-order skew (``min(60 s,
limit)``): exactly the sessions the rule would end at their next record (or at the end
of the log, where :meth:`ProfileBuilder.finish` ends a session that has been silent that
long at its ``seen_pos`` too), so when a sweep runs never changes a result (as long as
the log's time never steps back by more than the margin: a clock set back could make a
sweep end a session the rule would have kept). Without
disconnection lines the open sessions are then those active in the last 10 minutes,
not every session of the log. A fast path that sets a statement pending without the
check (``p[4] > seen_pos``) is checked when that statement is next looked at
(:meth:`ProfileBuilder._validate`).
"""

from __future__ import annotations

import gc as _gc
import re
import time as _time
from math import floor as _floor, log10 as _log10
from typing import Callable, Iterable
from urllib.parse import unquote

from auditor.analysis.repeats import (E_DUR, E_KIND, E_TAG, E_TS, K_BEGIN, K_END,
                                      KIND_NAMES, Aggregates, classify)
from auditor.facts.workload import (ConnectionStats, Detection, FingerprintStats,
                                    LogHistogram, Request, Statement, WorkloadProfile,
                                    BUCKETS_PER_DECADE)
from auditor.fingerprint import _BY_TEXT, normalize, shape_uncached

def _lines_of(blocks: Iterable[str]):
    """The lines of text blocks (each block whole lines separated by ``\\n``), without
    their newline; the empty piece after a block's last newline is not a line (empty
    lines are ignored by the readers anyway)."""
    for block in blocks:
        lines = block.split("\n")
        if lines[-1] == "":
            lines.pop()
        yield from lines


_PLAIN_DECIMAL = re.compile(r"[0-9]*\.?[0-9]*")


def _py_records(records: Iterable, sessions: dict, idle_s: float):
    """What the compiled scanner's ``start(...)`` hands out, in Python, from
    :func:`~auditor.collectors.querylog.formats.read_stderr`'s records: ``(session,
    us, ts, SQL)`` for a record the short path takes (see
    :meth:`ProfileBuilder._consume_scanned`), else ``(None, Record, None, None)``. A
    generator: each record is judged when the reader asks for it."""
    get = sessions.get
    for rec in records:
        if rec.level == "LOG":
            msg = rec.message
            if msg[:10] == "duration: " and not rec.detail:  # (csvlog: detail is a field)
                j = msg.find(" ms  statement: ", 10)
                if j > 10 and _PLAIN_DECIMAL.fullmatch(msg, 10, j) and msg[10:j] != ".":
                    s = get(rec.session or rec.pid or "?")
                    ts = rec.ts
                    if (s is not None and (s.user is not None or rec.user is None)
                            and (s.app is not None or rec.app is None) and not s.muted
                            and (ts is None or s.seen is None or ts - s.seen <= idle_s)):
                        yield s, round(float(msg[10:j]) * 1000), ts, msg[j + 16:]
                        continue
        yield None, rec, None, None


__all__ = ["ProfileBuilder", "parse_parameters", "transaction_control", "tag_of",
           "CHUNK_SHIFT", "END_POS"]

_PARAM = re.compile(r"\$(\d+) = (?:'((?:[^']|'')*)'|(NULL))")
_SESSION_TIME = re.compile(r"session time: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUTH = re.compile(r"\buser=(\S+)(?: database=(\S+))?(?: application_name=(\S+))?")
_AUTH_APP = re.compile(r"\bapplication_name=(\S+)")
_TAG = re.compile(r"(\w+)\s*=\s*'([^']*)'")
_ERRORS = frozenset(("ERROR", "FATAL", "PANIC"))

_IDENTITIES: dict[str, tuple] = {}  # "connection authorized: ..." -> its user, db, app
CHUNK_SHIFT = 40  # pos = chunk << 40 | record number within the chunk
END_POS = 1 << 62  # the position of closes at the end of the stream
_PLACEHOLDER = "\x00"  # prefix of the session id a chunk gives a session it joined late
_PER_SECOND_KEEP = 4096  # per-second connection counts kept before older ones are folded
_SETTLED_S = 60  # seconds after which a second's count is final (log order skew)
_NO_SWEEP = float("inf")

# detail_for values
_NONE, _BIND, _EXECUTE = 0, 1, 2
# fingerprint stats list fields
_CALLS, _TOTAL, _MAX, _HIST, _EXAMPLE, _KIND, _FIRST, _MIN, _TIMED = range(9)
_SESSION_LOG = ("duration: ", "statement: ", "execute ", "connection ",
                "replication connection ", "disconnection: ")


def transaction_control(query: str) -> str | None:
    """``"begin"`` for BEGIN/START TRANSACTION, ``"end"`` for COMMIT/END/ROLLBACK/ABORT/
    PREPARE TRANSACTION, None otherwise (ROLLBACK TO, COMMIT PREPARED: None)."""
    k = classify(query)
    return "begin" if k == K_BEGIN else "end" if k == K_END else None


def parse_parameters(detail: str) -> tuple[str, ...]:
    """``parameters: $1 = 'a', $2 = NULL`` → ``("a", "NULL")`` (quotes removed, ``''``
    unescaped, ordered by $n; SQL NULL becomes the text ``NULL``)."""
    found = []
    for m in _PARAM.finditer(detail):
        value = "NULL" if m.group(3) else m.group(2).replace("''", "'")
        found.append((int(m.group(1)), value))
    found.sort(key=lambda p: p[0])
    return tuple(v for _, v in found)


def tag_of(query: str) -> str | None:
    """The request tag of a statement ending in a sqlcommenter comment:
    ``trace:<trace id>`` from ``traceparent``, else ``route:<route>|<controller>|
    <action>``; None without such a comment."""
    end = len(query) - (2 if query[-2:] == "*/" else 3 if query[-3:] == "*/;" else 0)
    if end == len(query):
        return None
    i = query.rfind("/*", 0, end)
    if i < 0:
        return None
    tags = dict(_TAG.findall(query, i + 2, end))
    if not tags:
        return None
    tp = tags.get("traceparent")
    if tp:
        parts = unquote(tp).split("-")
        if len(parts) >= 3 and parts[1]:
            return "trace:" + parts[1]
    route = [unquote(tags.get(k, "")) for k in ("route", "controller", "action")]
    if any(route):
        return "route:" + "|".join(route)
    return None


class _Session:
    __slots__ = ("key", "sid", "user", "db", "app", "first_pos", "pending", "carry",
                 "bind_params", "detail_for", "cur", "cur_boundary", "cur_tag", "cur_ident",
                 "in_tx", "last_end", "muted", "head", "flushes", "snapshot", "counted",
                 "seen", "seen_pos")

    def __init__(self, key: str, sid: str, user, db, app, first_pos: int,
                 seen: float | None = None) -> None:
        self.key = key
        self.sid = sid
        self.user, self.db, self.app = user, db, app
        self.first_pos = first_pos
        # log time and position of the session's latest record checked by the idle rule
        self.seen = seen
        self.seen_pos = first_pos
        self.pending: list | None = None  # [query, params, duration_us, ts, pos, carry_us]
        self.carry = 0  # parse/bind durations (µs) waiting for their execute
        self.bind_params: tuple[str, ...] = ()
        self.detail_for = _NONE  # what a DETAIL line applies to
        self.cur: list | None = None  # entries of the open request
        self.cur_boundary = ""
        self.cur_tag: str | None = None
        self.cur_ident: tuple = (None, None, None)  # user, database, app of cur
        self.in_tx = False
        self.last_end: float | None = None
        self.muted = False
        self.head: list | None = None
        self.flushes = 0
        self.snapshot: tuple | None = None
        self.counted = False  # in WorkloadProfile.sessions (it ran a statement)

    def state(self) -> tuple:
        """Everything that decides what the session does next (not who it is)."""
        return (None if self.pending is None else tuple(self.pending), self.carry,
                self.bind_params, self.detail_for,
                None if self.cur is None else tuple(self.cur), self.cur_boundary,
                self.cur_tag, self.in_tx, self.last_end)

    def clone(self) -> "_Session":
        c = _Session.__new__(_Session)
        for name in _Session.__slots__:
            setattr(c, name, getattr(self, name))
        c.pending = None if self.pending is None else list(self.pending)
        c.cur = None if self.cur is None else list(self.cur)
        return c


class _PerSecond:
    """Connections per wall-clock second, bounded: counts older than the newest second
    minus _SETTLED_S (and not among the first _SETTLED_S seconds, which a previous
    chunk may still add to) are folded into ``peak``."""
    __slots__ = ("counts", "peak", "first")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.peak = 0
        self.first: int | None = None

    def add(self, sec: int, n: int = 1) -> None:
        c = self.counts
        c[sec] = c.get(sec, 0) + n
        if self.first is None or sec < self.first:
            self.first = sec
        if len(c) > _PER_SECOND_KEEP:
            self._fold()

    def _fold(self) -> None:
        c = self.counts
        newest = max(c)
        keep_head = (self.first or 0) + _SETTLED_S
        for sec in [s for s in c if keep_head < s < newest - _SETTLED_S]:
            n = c.pop(sec)
            if n > self.peak:
                self.peak = n

    def merge(self, other: "_PerSecond") -> None:
        for sec, n in other.counts.items():
            self.counts[sec] = self.counts.get(sec, 0) + n
        self.peak = max(self.peak, other.peak)
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first = other.first
        if len(self.counts) > _PER_SECOND_KEEP:
            self._fold()

    def max(self) -> int:
        return max(self.peak, max(self.counts.values(), default=0))


class ProfileBuilder:
    """Feed records in log order (:meth:`feed` or :meth:`consume`), then call
    :meth:`finish` once. ``detection``: the detectors' thresholds (``idle_gap_ms``, the
    old keyword, overrides its idle gap). ``keep_requests``: also keep every request
    (memory then grows with the log). ``chunk``/``orphans``: see the module docstring.
    ``SWEEP_MIN``: the size of the session map from which idle sessions are swept (see
    "Idle sessions" in the module docstring)."""

    SWEEP_MIN = 1024

    def __init__(self, *, detection: Detection | None = None, idle_gap_ms: float | None = None,
                 keep_requests: bool = False, chunk: int = 0, orphans: bool = False) -> None:
        det = detection or Detection()
        if idle_gap_ms is not None and idle_gap_ms != det.idle_gap_ms:
            det = Detection(**{**det.__dict__, "idle_gap_ms": float(idle_gap_ms)})
        self.detection = det
        self.idle_gap_s = det.idle_gap_ms / 1000.0
        self.cap = det.max_request_statements
        self.idle_s = det.session_idle_limit_ms / 1000.0
        self.sweep_idle_s = self.idle_s + min(float(_SETTLED_S), self.idle_s)
        self._sweep_at: float = self.SWEEP_MIN
        self.keep_requests = keep_requests
        self.orphans = orphans
        self.pos = chunk << CHUNK_SHIFT
        self.sessions: dict[str, _Session] = {}
        self.kinds: dict[str, int] = {}  # fingerprint -> K_* code (also for muted sessions)
        # what is counted
        self.statements = 0
        self.total_us = 0
        self.fps: dict[str, list] = {}
        self.agg = Aggregates()
        self.kept: list[tuple[int, int, Request]] = []
        self.request_count = 0
        self.n_sessions = 0
        self.first_ts = float("inf")
        self.last_ts = float("-inf")
        self.skipped: dict[str, int] = {}
        self.sources: list[str] = []
        # connections
        self.conn_logged = False
        self.n_received = 0
        self.n_authorized = 0
        self.n_disconnections = 0
        self.received = _PerSecond()
        self.authorized = _PerSecond()
        self.conn_first: float | None = None
        self.conn_last: float | None = None
        self.session_lengths = LogHistogram()
        # chunk bookkeeping (orphans=True)
        # (key, sid, head, snapshot, pos of the record that ended the head)
        self.heads: list[tuple[str, str, list, tuple | None, int]] = []
        self.restarts: list[tuple[str, int, float | None]] = []  # (key, pos, ts)
        # keys whose session this chunk ended: their next session starts here, fresh
        self._ended: set[str] = set()
        self.placeholders: dict[str, str] = {}  # placeholder sid -> key
        self.orphan_counted: set[str] = set()  # keys of joined sessions counted here
        self._unmuted = False

    # -- sessions -------------------------------------------------------------------
    def _session(self, rec, create: bool = True) -> _Session | None:
        key = rec.session or rec.pid or "?"
        s = self.sessions.get(key)
        if s is not None and not self._live(s, rec.ts):
            s = None  # it was idle too long: ended before this record
        if s is None:
            orphan = self.orphans and key not in self._ended
            if not (create or orphan):
                return None
            ts = rec.ts
            if ts is not None and len(self.sessions) >= self._sweep_at:
                self._sweep(ts)
            if rec.session:
                sid = rec.session
            elif orphan:
                sid = _PLACEHOLDER + key
                self.placeholders[sid] = key
            elif ts is not None:
                sid = f"{rec.pid or '?'}@{_iso(ts)}"
            else:
                sid = f"{rec.pid or '?'}@{self.n_sessions}"
            s = self.sessions[key] = _Session(key, sid, rec.user, rec.db, rec.app, self.pos,
                                              ts)
            if orphan:
                s.muted = True
                s.head = []
        else:
            if s.user is None and rec.user and rec.user != "[unknown]":
                s.user, s.db = rec.user, rec.db
            if s.app is None and rec.app and rec.app != "[unknown]":
                s.app = rec.app
        return s

    def _end_session(self, key: str, ts: float | None = None) -> None:
        """End ``key``'s session at ``self.pos``. ``ts``: the log time of the record
        that ends it, which a muted session's head keeps so that :meth:`absorb` can
        apply the idle rule to the true session first."""
        s = self.sessions.pop(key, None)
        if s is None:
            return
        if self.orphans:
            self._ended.add(key)
        if s.muted:
            s.head.append(("end", self.pos, ts))
            self._park(s)
            return
        self._flush(s)
        if s.cur is not None:
            if not s.in_tx and s.cur_boundary == "idle-gap":
                s.cur_boundary = "session"
            self._close(s)

    def _park(self, s: _Session) -> None:
        """Keep a muted session's head for :meth:`absorb` (it can do nothing more)."""
        self.heads.append((s.key, s.sid, s.head, None, self.pos))
        s.head = None

    # -- idle sessions (see the module docstring) -------------------------------------
    def _live(self, s: _Session, ts: float | None) -> bool:
        """Apply the idle rule to ``s`` before a record of it at log time ``ts`` (at
        ``self.pos``): False if ``s`` was idle too long and has been ended (it is no
        longer in the map); else True, with the record noted as its latest."""
        p = s.pending
        if p is not None and p[4] > s.seen_pos:
            self._validate(s, p)
        if ts is not None:
            seen = s.seen
            if seen is not None and ts - seen > self.idle_s:
                self._expire(s)
                return False
            s.seen = ts
        s.seen_pos = self.pos
        return True

    def _validate(self, s: _Session, p: list) -> None:
        """Apply the idle rule to a pending statement that a fast path set without it
        (``p[4] > s.seen_pos``): if it came more than the limit after the session's
        previous record, the session ended before it and it starts a new one."""
        ts = p[3]
        if ts is not None:
            if s.seen is not None and ts - s.seen > self.idle_s:
                self._renew(s, p)
            s.seen = ts
        s.seen_pos = p[4]

    def _renew(self, s: _Session, p: list) -> None:
        """End ``s`` at its ``seen_pos`` except for ``p`` (its pending statement, already
        taken by the fast path that set it) and make ``s`` the new session ``p`` starts,
        in place (the caller holds ``s``). The identity (user, database, application)
        stays: the fast path did not keep the record's."""
        if p[5]:  # the old session's parse/bind time, which the fast path added to p
            if p[2] is not None:
                p[2] -= p[5]
            p[5] = 0
        pos = self.pos
        self.pos = s.seen_pos
        if s.cur is not None:
            if not s.in_tx and s.cur_boundary == "idle-gap":
                s.cur_boundary = "session"
            self._close(s)
        self.pos = pos
        if s.sid != s.key and p[3] is not None:  # keyed by pid: a new session, a new id
            s.sid = f"{s.key}@{_iso(p[3])}"
        s.first_pos = p[4]
        s.cur_tag = None
        s.in_tx = False
        s.last_end = None
        s.counted = False
        s.flushes = 0
        s.snapshot = None

    def _expire(self, s: _Session) -> None:
        """End ``s`` (idle too long) at the position of its latest record."""
        p = s.pending
        if p is not None and p[4] > s.seen_pos:
            self._validate(s, p)
        pos = self.pos
        self.pos = s.seen_pos
        self._end_session(s.key)
        self.pos = pos

    def _end_at(self, key: str, ts: float | None) -> None:
        """End ``key``'s session at a record at log time ``ts`` (a disconnection, a new
        connection on its pid), or before it if it was idle too long."""
        s = self.sessions.get(key)
        if s is not None and self._live(s, ts):
            self._end_session(key, ts)

    def _sweep(self, now: float) -> None:
        """End every session silent since before ``now`` minus the limit and the skew
        margin (ones the idle rule would end at their next record anyway)."""
        cutoff = now - self.sweep_idle_s
        for s in list(self.sessions.values()):
            p = s.pending
            if p is not None and p[4] > s.seen_pos:
                self._validate(s, p)
            if s.seen is not None and s.seen < cutoff:
                self._expire(s)
        self._sweep_at = max(self.SWEEP_MIN, 2 * len(self.sessions))

    # -- statements -----------------------------------------------------------------
    def _flush(self, s: _Session) -> None:
        p = s.pending
        if p is not None:
            s.pending = None
            self._record(s, p)

    def _new_shape(self, fp: str, query: str) -> int:
        kind = self.kinds[fp] = classify(normalize(query))
        return kind

    def _record(self, s: _Session, p: list) -> None:
        if p[4] > s.seen_pos:  # set by a fast path without the idle check
            self._validate(s, p)
        query = p[0]
        fp = _by_text_get(query) or shape_uncached(query)
        st = None if s.muted else self.fps.get(fp)
        if st is not None:
            kind = st[5]  # _KIND
        else:
            kind = self.kinds.get(fp)
            if kind is None:
                kind = self._new_shape(fp, query)
        dur = p[2]
        last = query[-1:]
        tag = (tag_of(query) if last == "/" or (last == ";" and query[-3:] == "*/;")
               else None)
        e = (fp, kind, query, p[1], dur, p[3], p[4], tag)
        s.flushes += 1
        if not s.muted:
            self.statements += 1
            if not s.counted:
                s.counted = True
                self.n_sessions += 1
                if s.snapshot is not None:  # a session joined in the middle
                    self.orphan_counted.add(s.key)
            if st is None:
                st = self.fps[fp] = [0, 0, 0, {}, e, kind, (p[4], query), None, 0]
            elif p[4] < st[6][0]:  # _FIRST: the earliest, whatever the order of records
                st[6] = (p[4], query)
            st[0] += 1  # _CALLS
            if dur is not None:
                self.total_us += dur
                st[1] += dur  # _TOTAL
                st[8] += 1  # _TIMED
                b = int(_log10(dur) * BUCKETS_PER_DECADE) if dur > 0 else -1
                h = st[3]  # _HIST
                h[b] = h.get(b, 0) + 1
                if st[7] is None or dur < st[7]:  # _MIN
                    st[7] = dur
                if dur > st[2]:  # _MAX
                    st[2] = dur
                    st[4] = e  # _EXAMPLE: the slowest, the earliest of equals
                elif dur == st[2] and p[4] < st[4][6]:
                    st[4] = e
            elif not st[2] and p[4] < st[4][6]:
                st[4] = e
        # -- which request: the untagged common case first ----------------------------
        cur = s.cur
        if tag is None and s.cur_tag is None:
            if kind == K_BEGIN:
                if cur is not None:
                    self._close(s)
                cur = self._open(s, "transaction", None)
                s.in_tx = True
                cur.append(e)
                opened = True
            elif s.in_tx:
                opened = cur is None
                if opened:
                    cur = self._open(s, "transaction", None)
                cur.append(e)
                if kind == K_END:
                    self._close(s)
                    s.in_tx = False
                    cur = None
            else:
                ts = p[3]
                if (cur is not None and ts is not None and s.last_end is not None
                        and (ts - dur / 1e6 if dur else ts) - s.last_end > self.idle_gap_s):
                    self._close(s)
                    cur = None
                opened = cur is None
                if opened:
                    cur = self._open(s, "idle-gap", None)
                cur.append(e)
        else:
            cur, opened = self._assign_tagged(s, e, cur)
        ts = p[3]
        if ts is not None:
            s.last_end = ts
        if cur is not None and len(cur) >= self.cap and s.cur is cur:
            s.cur_boundary = "cap"
            self._close(s)
        if opened and s.muted and s.flushes >= 2:
            # a request started at a statement whose inputs all lie in this chunk:
            # from here on this session's state no longer depends on what came before
            s.snapshot = s.state()
            s.muted = False
            self.heads.append((s.key, s.sid, s.head, s.snapshot, self.pos))
            s.head = None
            self._unmuted = True

    def _assign_tagged(self, s: _Session, e: tuple, cur: list | None) -> tuple:
        """Request assignment when the statement or the open request has a tag."""
        kind = e[E_KIND]
        ts = e[E_TS]
        tag = e[E_TAG]
        opened = False
        gap = False
        if cur is not None and ts is not None and s.last_end is not None:
            dur = e[E_DUR]
            gap = (ts - dur / 1e6 if dur else ts) - s.last_end > self.idle_gap_s
        if tag is not None:
            if cur is None or s.cur_tag != tag or (gap and not s.in_tx and tag[0] == "r"):
                if cur is not None:
                    self._close(s)
                cur = self._open(s, "tag", tag)
                opened = True
            if kind == K_BEGIN:
                s.in_tx = True
            elif kind == K_END:
                s.in_tx = False
            cur.append(e)
            return cur, opened
        # an untagged statement while a tagged request is open (the driver's BEGIN ...)
        if not (gap and not s.in_tx):
            if kind == K_BEGIN:
                s.in_tx = True
            elif kind == K_END:
                s.in_tx = False
            cur.append(e)
            return cur, False
        self._close(s)
        s.cur_tag = None
        if kind == K_BEGIN:
            s.in_tx = True
            cur = self._open(s, "transaction", None)
            cur.append(e)
        elif s.in_tx:  # (not reached: the gap only ends a request outside transactions)
            cur = self._open(s, "transaction", None)
            cur.append(e)
        else:
            cur = self._open(s, "idle-gap", None)
            cur.append(e)
        return cur, True

    def _open(self, s: _Session, boundary: str, tag: str | None) -> list:
        cur = s.cur = []
        s.cur_boundary = boundary
        s.cur_tag = tag
        s.cur_ident = (s.user, s.db, s.app)
        return cur

    def _close(self, s: _Session) -> None:
        cur = s.cur
        s.cur = None
        s.cur_tag = None
        if not cur or s.muted:
            return
        self.request_count += 1
        user, db, app = s.cur_ident
        if len(cur) > 1:
            self.agg.analyse(cur, self.detection, s.sid, db, self.pos)
        if self.keep_requests:
            self.kept.append((self.pos, s.first_pos, Request(
                session=s.sid, boundary=s.cur_boundary,
                statements=[Statement(e[0], e[2], e[3],
                                      e[4] / 1000 if e[4] is not None else None, e[5])
                            for e in cur],
                user=user, database=db, application=app)))

    # -- records --------------------------------------------------------------------
    def consume(self, records: Iterable, progress: Callable[[int], None] | None = None,
                every: int = 50_000) -> None:
        """Feed every record of ``records``; ``progress(statements)`` is called every
        ``every`` records. The common record, ``duration: X ms  statement: SQL`` of a
        known session, takes a short path (:func:`_py_records`, :meth:`_consume_scanned`);
        everything else goes through :meth:`feed`."""
        if self.orphans:
            n = 0
            for rec in records:
                self.feed(rec)
                n += 1
                if progress is not None and n % every == 0:
                    progress(self.statements)
            return
        self._consume_scanned(_py_records(records, self.sessions, self.idle_s), progress,
                              every)

    def consume_stderr_blocks(self, blocks: Iterable[str], prefix, skipped: dict[str, int],
                              counts: dict[str, int] | None = None,
                              progress: Callable[[int], None] | None = None,
                              every: int = 50_000) -> None:
        """Read a stderr log given as text blocks (each block whole lines separated by
        ``\\n``, the last block perhaps without one): the records of
        :func:`~auditor.collectors.querylog.formats.read_stderr`, counted as
        :meth:`consume` counts them. The compiled scanner
        (:mod:`auditor.collectors.querylog.scan`) splits, matches and joins the lines in
        C and hands out the common ``duration: X ms  statement: SQL`` record of a known
        session without a Record; without it (not built, ``AUDITOR_PURE_PYTHON=1``, or a
        prefix it cannot match exactly) :func:`_py_records` does the same in Python.
        Same results either way (tests/test_scan.py). The cyclic garbage collector runs
        every 50,000 allocations instead of 700 while reading (the loop allocates many
        small tuples and lists and makes no cycles)."""
        from auditor.collectors.querylog import formats as _f
        from auditor.collectors.querylog.scan import scanner_for
        scanner = scanner_for(prefix, skipped, (_f.NO_PREFIX, _f.ORPHAN_CONTINUATION,
                                                _f.BAD_TIMESTAMP, _f.TOO_LONG))
        if scanner is not None:
            records = scanner.start(blocks, self.sessions, _f.Record, self.idle_s)
        else:
            records = _py_records(_f.read_stderr(_lines_of(blocks), prefix, skipped, counts,
                                                 stripped=True), self.sessions, self.idle_s)
        old = _gc.get_threshold()
        _gc.set_threshold(max(old[0], 50_000), *old[1:])
        try:
            self._consume_scanned(records, progress, every)
        finally:
            _gc.set_threshold(*old)
        if scanner is not None:
            _f._add_counts(counts, *scanner.counts)

    def _consume_scanned(self, records, progress, every) -> None:
        """The loop of :meth:`consume_stderr_blocks`, over items that are either
        ``(session, us, ts, SQL)`` for a ``duration: X ms  statement: SQL`` record that
        takes :meth:`consume`'s short path (X plain decimal digits; the session known,
        not muted, its user and application set where the record has them, not idle for
        longer than ``idle_s``), or ``(None, Record, None, None)`` for the general path
        (:meth:`_dispatch`, or :meth:`feed`'s in a chunk reader). The items come one at
        a time, so each is judged against the sessions as the records before left them."""
        orphans = self.orphans
        feed_orphan = self._feed_orphan
        get = self.sessions.get
        dispatch = self._dispatch
        record = self._record
        pos = self.pos
        first, last = self.first_ts, self.last_ts
        left = every if progress is not None else -1
        for s, us, rts, stmt in records:
            pos += 1
            self.pos = pos
            if left > 0:
                left -= 1
                if not left:
                    left = every
                    progress(self.statements)
            if s is not None:
                p = s.pending
                if p is not None:
                    s.pending = None
                    record(s, p)
                carry = s.carry
                if carry:
                    s.carry = 0
                s.bind_params = ()
                s.pending = [stmt, (), us + carry, rts, pos, carry]
                if rts is not None:
                    s.seen = rts
                    if rts > last:
                        last = rts
                    if rts < first:
                        first = rts
                s.seen_pos = pos
                s.detail_for = _EXECUTE
                continue
            rec = us
            ts = rec.ts
            if ts is not None:
                if ts > last:
                    last = ts
                if ts < first:
                    first = ts
            if orphans:  # what feed() does
                key = rec.session or rec.pid or "?"
                s = get(key)
                if s is None or s.muted:
                    feed_orphan(rec, key, s)
                else:
                    dispatch(rec)
            else:
                dispatch(rec)
        self.first_ts, self.last_ts = first, last

    def feed(self, rec) -> None:
        self.pos += 1
        ts = rec.ts
        if ts is not None:
            if ts > self.last_ts:
                self.last_ts = ts
            if ts < self.first_ts:
                self.first_ts = ts
        if self.orphans:
            key = rec.session or rec.pid or "?"
            s = self.sessions.get(key)
            if s is None or s.muted:
                self._feed_orphan(rec, key, s)
                return
        self._dispatch(rec)

    def _dispatch(self, rec) -> None:
        level = rec.level
        if level == "LOG":
            msg = rec.message
            c = msg[:1]
            if c == "d":
                if msg.startswith("duration: "):
                    self._duration_message(rec, msg)
                elif msg.startswith("disconnection: "):
                    self._disconnection(rec, msg)
            elif c == "s":
                if msg.startswith("statement: "):
                    self._statement(rec, "statement", None, msg[11:], None)
            elif c == "e":
                if msg.startswith("execute "):
                    self._statement_text(rec, msg, None)
            elif c == "c":
                if msg.startswith("connection "):
                    self._connection(rec, msg)
            elif c == "r":
                if msg.startswith("replication connection "):
                    self._connection(rec, msg[12:])
        elif level == "DETAIL":
            s = self._session(rec, create=False)
            if s is not None:
                self._detail(s, rec.message)
        elif level in _ERRORS:
            s = self._session(rec, create=False)
            if s is not None:
                s.detail_for = _NONE

    def _feed_orphan(self, rec, key: str, s: _Session | None) -> None:
        """A record of a session that is muted (or not yet seen) in a chunk."""
        if s is None and key in self._ended:
            # this chunk ended the key's session itself: what follows is a new session
            self._dispatch(rec)
            return
        level = rec.level
        msg = rec.message
        if level == "LOG" and (msg.startswith("connection ") or
                               msg.startswith("replication connection ")):
            text = msg[12:] if msg[0] == "r" else msg
            if text.startswith("connection received"):
                if s is None:
                    self.restarts.append((key, self.pos, rec.ts))
                self._connection(rec, text)  # ends the muted session, starts a fresh one
                return
            if text.startswith("connection authorized"):
                self._count_authorized(rec)
                s = self._session(rec)  # (a new, fresh session if s was idle too long)
                if s.muted:
                    s.head.append(("auth", self.pos, rec))
                self._set_identity(s, text)
                return
            return
        if level == "LOG" and msg.startswith("disconnection: "):
            if s is None:
                s = self._session(rec)
            self._disconnection(rec, msg)
            return
        if not (msg.startswith(_SESSION_LOG) if level == "LOG"
                else level == "DETAIL" or level in _ERRORS):
            return  # a record no session cares about (checkpoints, autovacuum ...)
        if s is None:
            s = self._session(rec)
        self._unmuted = False
        self._dispatch(rec)
        if not self._unmuted and s.muted and s.head is not None:
            # (a session the idle rule ended while dispatching has been parked)
            s.head.append(("r", self.pos, rec))

    def _detail(self, s: _Session, detail: str) -> None:
        if not detail.startswith("parameters: "):
            return
        if s.detail_for == _EXECUTE and s.pending is not None:
            s.pending[1] = parse_parameters(detail)
        elif s.detail_for == _BIND:
            s.bind_params = parse_parameters(detail)
        s.detail_for = _NONE

    def _duration_message(self, rec, msg: str) -> None:
        j = msg.find(" ms", 10)
        if j < 0:
            return
        try:
            us = round(float(msg[10:j]) * 1000)
        except ValueError:
            return
        k = j + 3
        n = len(msg)
        while k < n and msg[k] in " \t\n":
            k += 1
        if k < n:
            if msg.startswith("statement: ", k):
                self._statement(rec, "statement", None, msg[k + 11:], us)
            else:
                self._statement_text(rec, msg[k:] if k else msg, us)
            return
        s = self._session(rec)
        s.detail_for = _NONE
        p = s.pending
        if p is not None and p[2] is None:
            p[2] = us + p[5]
        else:
            s.carry += us

    def _statement_text(self, rec, text: str, us: int | None) -> None:
        """``statement: ``/``execute <name>: ``/``parse ...``/``bind ...`` messages."""
        if text.startswith("statement: "):
            self._statement(rec, "statement", None, text[11:], us)
            return
        for kind in ("execute", "parse", "bind"):
            if text.startswith(kind):
                rest = text[len(kind):]
                if rest.startswith(": "):
                    self._statement(rec, kind, None, rest[2:], us)
                elif rest.startswith(" "):
                    j = rest.find(":")
                    if j > 0 and rest[j + 1:j + 2] == " ":
                        self._statement(rec, kind, rest[1:j], rest[j + 2:], us)
                return
        # anything else ("duration: ... plan:" from auto_explain ...): not a statement

    def _statement(self, rec, kind: str, name: str | None, query: str, us: int | None) -> None:
        s = self._session(rec)
        if kind == "parse" or kind == "bind":
            if us is not None:
                s.carry += us
            if kind == "bind":
                s.bind_params = ()
                s.detail_for = _BIND
                if rec.detail:
                    self._detail(s, rec.detail)
            else:
                s.detail_for = _NONE
            return
        if kind == "execute" and name and name.startswith("fetch from"):
            p = s.pending
            if us is not None and p is not None and p[2] is not None:
                p[2] += us
            s.detail_for = _NONE
            return
        self._flush(s)
        carry = s.carry
        s.carry = 0
        params = s.bind_params if kind == "execute" else ()
        s.bind_params = ()
        s.pending = [query, params, us + carry if us is not None else None, rec.ts,
                     self.pos, carry]
        s.detail_for = _EXECUTE
        if rec.detail:
            self._detail(s, rec.detail)

    # -- connections ------------------------------------------------------------------
    def _conn_event(self, ts: float | None) -> None:
        if ts is not None:
            if self.conn_first is None or ts < self.conn_first:
                self.conn_first = ts
            if self.conn_last is None or ts > self.conn_last:
                self.conn_last = ts

    def _count_authorized(self, rec) -> None:
        self.conn_logged = True
        self.n_authorized += 1
        ts = rec.ts
        if ts is not None:
            self.authorized.add(int(ts))
            if self.conn_first is None or ts < self.conn_first:
                self.conn_first = ts
            if self.conn_last is None or ts > self.conn_last:
                self.conn_last = ts

    @staticmethod
    def _set_identity(s: _Session, msg: str) -> None:
        t = _IDENTITIES.get(msg)  # the same message comes with every connection
        if t is None:
            m = _AUTH.search(msg)
            app = None
            if m:
                app = m.group(3)
            if app is None:
                a = _AUTH_APP.search(msg)
                app = a.group(1) if a else None
            t = ((m.group(1), m.group(2)) if m else None, app)
            if len(_IDENTITIES) >= 1024:
                _IDENTITIES.clear()
            _IDENTITIES[msg] = t
        ud, app = t
        if ud is not None:
            s.user, s.db = ud[0], ud[1] or s.db
        if app is not None:
            s.app = app

    def _connection(self, rec, msg: str) -> None:
        if msg.startswith("connection received"):
            self.conn_logged = True
            key = rec.session or rec.pid or "?"
            if key in self.sessions:  # the pid was reused: the old session is over
                self._end_at(key, rec.ts)
            self.n_received += 1
            ts = rec.ts
            if ts is not None:
                self.received.add(int(ts))
                if self.conn_first is None or ts < self.conn_first:
                    self.conn_first = ts
                if self.conn_last is None or ts > self.conn_last:
                    self.conn_last = ts
            # a session seen from its start (never an orphan)
            sid = (rec.session or (f"{rec.pid or '?'}@{_iso(ts)}" if ts is not None
                                   else f"{rec.pid or '?'}@{self.n_sessions}"))
            if ts is not None and len(self.sessions) >= self._sweep_at:
                self._sweep(ts)
            self.sessions[key] = _Session(key, sid, rec.user, rec.db, rec.app, self.pos, ts)
        elif msg.startswith("connection authorized"):
            self._count_authorized(rec)
            self._set_identity(self._session(rec), msg)

    def _disconnection(self, rec, msg: str) -> None:
        self.conn_logged = True
        self.n_disconnections += 1
        us = None
        if msg.startswith("disconnection: session time: "):
            end = msg.find(" ", 29)
            try:
                h, mi, sec = msg[29:end if end > 0 else len(msg)].split(":")
                us = round((int(h) * 3600 + int(mi) * 60 + float(sec)) * 1e6)
            except ValueError:
                us = None
        if us is None:
            m = _SESSION_TIME.search(msg)
            if m:
                h, mi, sec = int(m.group(1)), int(m.group(2)), float(m.group(3))
                us = round((h * 3600 + mi * 60 + sec) * 1e6)
        if us is not None:
            self.session_lengths.add_us(us)
        self._conn_event(rec.ts)
        self._end_at(rec.session or rec.pid or "?", rec.ts)

    # -- chunks -----------------------------------------------------------------------
    def end_chunk(self) -> None:
        """In a chunk reader: park the heads of sessions still muted (call once, after
        the chunk's last record)."""
        for s in list(self.sessions.values()):
            if s.muted:
                del self.sessions[s.key]
                self._park(s)
        self._ended = set()  # only needed while reading the chunk

    def absorb(self, part: "ProfileBuilder", reread: Callable[[], Iterable]) -> bool:
        """Add the chunk read by ``part`` (a builder made with ``orphans=True`` whose
        :meth:`end_chunk` was called) to this builder, which holds everything before
        it. Returns True if the chunk's partial was used; False if a replayed head did
        not reach its snapshot, in which case the chunk was read again (``reread()``
        gives its records) from the true state. ``part`` is consumed."""
        scratch = ProfileBuilder(detection=self.detection, keep_requests=self.keep_requests)
        scratch._sweep_at = _NO_SWEEP  # heads replay per session, not in log order
        scratch.kinds = self.kinds
        scratch.n_sessions = self.n_sessions
        counted_twice = 0
        ended: set[str] = set()
        for key, pos, ts in part.restarts:
            old = self.sessions.get(key)
            if old is not None:
                scratch.sessions[key] = old.clone()
                scratch.pos = pos
                scratch._end_at(key, ts)
            ended.add(key)
        replayed: dict[str, _Session | None] = {}  # heads without snapshot: final state
        synced: dict[str, _Session] = {}  # heads with snapshot: the state at the sync
        names: dict[str, tuple] = {}
        for key, psid, head, snapshot, sync_pos in sorted(part.heads, key=_head_order):
            old = self.sessions.get(key)
            if old is not None and key not in scratch.sessions and key not in ended:
                scratch.sessions[key] = old.clone()
            for what, pos, rec in head:
                scratch.pos = pos
                if what == "r":
                    scratch._dispatch(rec)
                elif what == "auth":
                    s = scratch._session(rec)
                    scratch._set_identity(s, rec.message)
                else:  # "end"; rec: the log time of the record that ended it, or None
                    scratch._end_at(key, rec)
            true = scratch.sessions.get(key)
            if snapshot is None:
                replayed[key] = true
                continue
            if true is None:
                return self._reread(reread, part)
            scratch.pos = sync_pos
            scratch._flush(true)
            if true.state() != snapshot:
                return self._reread(reread, part)
            synced[key] = true
            names[psid] = (true.sid, true.user, true.db, true.app)
            if true.counted and key in part.orphan_counted:
                counted_twice += 1
        # every replay agreed with its chunk: commit
        n_sessions = scratch.n_sessions
        scratch.n_sessions = 0
        self._add_counts(scratch)
        self.n_sessions = n_sessions
        for key in ended:
            self.sessions.pop(key, None)
        for key, true in replayed.items():
            if true is None:
                self.sessions.pop(key, None)
            else:
                self.sessions[key] = true
        for key in synced:
            self.sessions.pop(key, None)  # ended inside the chunk unless part has it
        for key, s in part.sessions.items():
            if s.snapshot is not None:  # a session the chunk joined in the middle
                true = synced[key]
                s.first_pos = true.first_pos
                s.counted = s.counted or true.counted
                s.sid = true.sid
                s.user = s.user if s.user is not None else true.user
                s.db = s.db if s.db is not None else true.db
                s.app = s.app if s.app is not None else true.app
                u, d, a = s.cur_ident
                s.cur_ident = (u if u is not None else true.user,
                               d if d is not None else true.db,
                               a if a is not None else true.app)
                s.snapshot = None
            self.sessions[key] = s
        part.agg.rename_sessions({p: (v[0], v[2]) for p, v in names.items()})
        for _pos, _first, req in part.kept:
            if req.session in names:
                sid, user, db, app = names[req.session]
                req.session = sid
                req.user = req.user if req.user is not None else user
                req.database = req.database if req.database is not None else db
                req.application = req.application if req.application is not None else app
        self._add_counts(part)
        self.n_sessions -= counted_twice
        self.pos = max(self.pos, part.pos)
        if len(self.sessions) >= self._sweep_at and self.last_ts > float("-inf"):
            self._sweep(self.last_ts)  # every later record is at least this late
        return True

    def _reread(self, reread: Callable[[], Iterable], part: "ProfileBuilder") -> bool:
        self.pos = (part.pos >> CHUNK_SHIFT) << CHUNK_SHIFT
        self.consume(reread())
        for reason, n in part.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n
        return False

    def _add_counts(self, other: "ProfileBuilder") -> None:
        """Add everything ``other`` counted (statements, shapes, detector aggregates,
        kept requests, connections) to this builder."""
        self.statements += other.statements
        self.total_us += other.total_us
        for fp, o in other.fps.items():
            st = self.fps.get(fp)
            if st is None:
                self.fps[fp] = o
                continue
            st[_CALLS] += o[_CALLS]
            st[_TOTAL] += o[_TOTAL]
            st[_TIMED] += o[_TIMED]
            for b, n in o[_HIST].items():
                st[_HIST][b] = st[_HIST].get(b, 0) + n
            if o[_MIN] is not None and (st[_MIN] is None or o[_MIN] < st[_MIN]):
                st[_MIN] = o[_MIN]
            ex, oex = st[_EXAMPLE], o[_EXAMPLE]
            if (oex[E_DUR] or 0, -oex[6]) > (ex[E_DUR] or 0, -ex[6]):
                st[_EXAMPLE] = oex
            if o[_MAX] > st[_MAX]:
                st[_MAX] = o[_MAX]
            if o[_FIRST][0] < st[_FIRST][0]:
                st[_FIRST] = o[_FIRST]
        for fp, k in other.kinds.items():
            self.kinds.setdefault(fp, k)
        self.agg.merge(other.agg)
        self.kept.extend(other.kept)
        self.request_count += other.request_count
        self.n_sessions += other.n_sessions
        self.first_ts = min(self.first_ts, other.first_ts)
        self.last_ts = max(self.last_ts, other.last_ts)
        for reason, n in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n
        self.conn_logged = self.conn_logged or other.conn_logged
        self.n_received += other.n_received
        self.n_authorized += other.n_authorized
        self.n_disconnections += other.n_disconnections
        self.received.merge(other.received)
        self.authorized.merge(other.authorized)
        for ts in (other.conn_first, other.conn_last):
            self._conn_event(ts)
        self.session_lengths.merge(other.session_lengths)

    # -- end --------------------------------------------------------------------------
    def finish(self) -> WorkloadProfile:
        """End every open session and return the profile (call once)."""
        self.pos = END_POS
        # a session silent for longer than a sweep waits was ended where it went quiet
        # (in whichever mode a sweep took it): so here too
        cutoff = self.last_ts - self.sweep_idle_s
        for s in sorted(self.sessions.values(), key=lambda s: s.first_pos):
            p = s.pending
            if p is not None and p[4] > s.seen_pos:
                self._validate(s, p)
            if s.seen is not None and s.seen < cutoff:
                self._expire(s)
            else:
                self._end_session(s.key)
        prof = WorkloadProfile(sources=list(self.sources), detection=self.detection)
        prof.statements = self.statements
        prof.total_ms = self.total_us / 1000
        prof.skipped = dict(self.skipped)
        if self.first_ts <= self.last_ts:
            prof.first_ts, prof.last_ts = self.first_ts, self.last_ts
        prof.sessions = self.n_sessions
        prof.request_count = self.request_count
        for fp, st in self.fps.items():
            ex = st[_EXAMPLE]
            hist = LogHistogram(dict(sorted(st[_HIST].items())), st[_TIMED], st[_MIN],
                                st[_MAX] if st[_TIMED] else None)
            prof.fingerprints[fp] = FingerprintStats(
                fingerprint=fp, normalized=normalize(st[_FIRST][1]),
                example=Statement(ex[0], ex[2], ex[3],
                                  ex[4] / 1000 if ex[4] is not None else None, ex[5]),
                calls=st[_CALLS], total_ms=st[_TOTAL] / 1000, max_ms=st[_MAX] / 1000,
                kind=KIND_NAMES[st[_KIND]], durations=hist)
        prof.loops = self.agg.loop_facts()
        prof.redundant = self.agg.redundant_facts()
        if self.keep_requests:
            prof.requests = [r for _p, _f, r in sorted(self.kept, key=lambda k: k[:2])]
        use_auth = self.n_authorized > 0
        prof.connections = ConnectionStats(
            logged=self.conn_logged,
            connections=self.n_authorized if use_auth else self.n_received,
            disconnections=self.n_disconnections,
            first_ts=self.conn_first, last_ts=self.conn_last,
            peak_per_second=(self.authorized if use_auth else self.received).max(),
            session_lengths=self.session_lengths)
        return prof


def _head_order(h: tuple) -> int:
    head = h[2]
    return head[0][1] if head else h[4]


_by_text_get = _BY_TEXT.get
_SECONDS: dict[int, str] = {}


def _iso(epoch: float) -> str:
    """:func:`~auditor.collectors.querylog.prefix.format_ts` (``2024-01-02T03:04:05.678Z``),
    with the text of each second cached: one session id per connection."""
    sec = _floor(epoch)
    us = round((epoch - sec) * 1e6)  # as datetime.fromtimestamp rounds (half even)
    if us >= 1_000_000:
        sec += 1
        us -= 1_000_000
    text = _SECONDS.get(sec)
    if text is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        text = _SECONDS[sec] = _time.strftime("%Y-%m-%dT%H:%M:%S.", _time.gmtime(sec))
    return f"{text}{us // 1000:03d}Z"
