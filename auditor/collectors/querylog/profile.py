"""Records → :class:`~auditor.facts.workload.WorkloadProfile`, in one pass.

What counts as one executed statement (the rules, in the order of the messages):

- ``duration: X ms  statement: SQL`` (simple protocol): one statement of X ms.
- ``parse``/``bind`` (extended protocol, with or without a name such as ``<unnamed>``):
  not counted; their durations are carried over and added to the next ``execute``
  of the session, so a statement's duration is parse + bind + execute.
- ``execute <name>: SQL``: one statement, counted once here; its parameters come from
  the ``DETAIL:  parameters: $1 = '...'`` that follows it (or, if it has none, from
  its bind's). ``execute fetch from ...`` (a further fetch of a portal) is not counted
  again.
- ``statement: SQL`` / ``execute ...: SQL`` without a duration (``log_statement = all``):
  one statement; a later bare ``duration: X ms`` line of the same session gives its
  duration (a bare duration with no statement waiting is carried like a parse's). A
  statement whose duration never comes keeps ``duration_ms = None``.

``Statement.ts`` is the log time of the statement's line: when it finished, for a line
with a duration; when it started, for ``log_statement`` lines.

Sessions are keyed by ``%c`` (csvlog/jsonlog always have it) or else by the pid (a
stderr prefix with neither makes the whole log one session); a
``connection received`` on a pid that has an open session, or a ``disconnection``,
ends that session. Each session is cut into requests (see :class:`Request`):

- a transaction, from ``BEGIN``/``START TRANSACTION`` (psycopg and most drivers send
  this implicitly) to ``COMMIT``/``END``/``ROLLBACK``/``ABORT``/``PREPARE TRANSACTION``
  (``ROLLBACK TO SAVEPOINT`` does not end it) is one request, ``boundary="transaction"``;
- statements outside transactions are grouped until a pause longer than
  ``idle_gap_ms`` (the gap from one statement's end, its log time, to the next one's
  start, log time minus duration) or the next transaction: ``boundary="idle-gap"``; a
  group that runs to the end of its session is ``boundary="session"``.
"""

from __future__ import annotations

import re
from collections import Counter

from auditor.collectors.querylog.formats import Record
from auditor.collectors.querylog.prefix import format_ts
from auditor.facts.workload import (FingerprintStats, Request, Statement,
                                    WorkloadProfile)
from auditor.fingerprint import fingerprint, normalize

_DURATION = re.compile(r"duration: (\d+(?:\.\d*)?) ms\s*(.*)\Z", re.S)
_STATEMENT = re.compile(r"(statement|execute|parse|bind)(?: ([^:]*?))?: (.*)\Z", re.S)
_PARAM = re.compile(r"\$(\d+) = (?:'((?:[^']|'')*)'|(NULL))")
_SESSION_TIME = re.compile(r"session time: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_TX = re.compile(
    r"(?:\s|;|/\*.*?\*/|--[^\n]*\n)*"
    r"(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|PREPARE\s+TRANSACTION)\b"
    r"(\s+(?:WORK\s+|TRANSACTION\s+)?(?:TO|PREPARED)\b)?",
    re.I | re.S,
)

BEGIN, END = "begin", "end"


def transaction_control(query: str) -> str | None:
    """``"begin"`` for BEGIN/START TRANSACTION, ``"end"`` for COMMIT/END/ROLLBACK/ABORT/
    PREPARE TRANSACTION, None otherwise (ROLLBACK TO, COMMIT PREPARED: None)."""
    m = _TX.match(query)
    if m is None or m.group(2):
        return None
    word = m.group(1).upper()
    return BEGIN if word == "BEGIN" or word.startswith("START") else END


def parse_parameters(detail: str) -> tuple[str, ...]:
    """``parameters: $1 = 'a', $2 = NULL`` → ``("a", "NULL")`` (quotes removed, ``''``
    unescaped, ordered by $n; SQL NULL becomes the text ``NULL``)."""
    found = []
    for m in _PARAM.finditer(detail):
        value = "NULL" if m.group(3) else m.group(2).replace("''", "'")
        found.append((int(m.group(1)), value))
    found.sort(key=lambda p: p[0])
    return tuple(v for _, v in found)


class _Pending:
    __slots__ = ("query", "params", "duration", "ts", "carry")

    def __init__(self, query, params, duration, ts, carry):
        self.query = query
        self.params = params
        self.duration = duration
        self.ts = ts
        self.carry = carry


class _Session:
    __slots__ = ("sid", "pending", "carry", "bind_params", "detail_for", "cur", "in_tx",
                 "last_end", "user", "db", "app")

    def __init__(self, sid: str, user, db, app):
        self.sid = sid
        self.pending: _Pending | None = None
        self.carry = 0.0  # parse/bind durations waiting for their execute
        self.bind_params: tuple[str, ...] = ()
        self.detail_for: str | None = None  # "bind" / "execute": what a DETAIL applies to
        self.cur: Request | None = None
        self.in_tx = False
        self.last_end: float | None = None
        self.user, self.db, self.app = user, db, app


class ProfileBuilder:
    """Feed records in log order with :meth:`feed`, then call :meth:`finish` once."""

    def __init__(self, *, idle_gap_ms: float = 1000.0) -> None:
        self.idle_gap_s = idle_gap_ms / 1000.0
        self.profile = WorkloadProfile()
        self._sessions: dict[str, _Session] = {}
        self._received: Counter[int] = Counter()  # connections per wall-clock second
        self._authorized: Counter[int] = Counter()
        self._n_received = 0
        self._n_authorized = 0
        self._conn_first: float | None = None
        self._conn_last: float | None = None

    # -- sessions -------------------------------------------------------------------
    def _session(self, rec: Record, create: bool = True) -> _Session | None:
        key = rec.session or rec.pid or "?"
        s = self._sessions.get(key)
        if s is None and create:
            if rec.session:
                sid = rec.session
            elif rec.ts is not None:
                sid = f"{rec.pid or '?'}@{format_ts(rec.ts)}"
            else:
                sid = f"{rec.pid or '?'}@{len(self._sessions)}"
            s = self._sessions[key] = _Session(sid, rec.user, rec.db, rec.app)
        elif s is not None:
            if s.user is None and rec.user and rec.user != "[unknown]":
                s.user, s.db = rec.user, rec.db
            if s.app is None and rec.app and rec.app != "[unknown]":
                s.app = rec.app
        return s

    def _end_session(self, key: str) -> None:
        s = self._sessions.pop(key, None)
        if s is None:
            return
        self._flush(s)
        if s.cur is not None:
            if not s.in_tx and s.cur.boundary == "idle-gap":
                s.cur.boundary = "session"
            self._close_request(s)

    # -- statements -----------------------------------------------------------------
    def _flush(self, s: _Session) -> None:
        p = s.pending
        if p is None:
            return
        s.pending = None
        self._record(s, p)

    def _record(self, s: _Session, p: _Pending) -> None:
        fp = fingerprint(p.query)
        st = Statement(fp, p.query, p.params, p.duration, p.ts)
        prof = self.profile
        prof.statements += 1
        dur = p.duration or 0.0
        prof.total_ms += dur
        stats = prof.fingerprints.get(fp)
        if stats is None:
            stats = prof.fingerprints[fp] = FingerprintStats(fp, normalize(p.query), st)
        stats.calls += 1
        stats.total_ms += dur
        if dur > stats.max_ms:
            stats.max_ms = dur
            stats.example = st
        self._assign(s, st)

    def _assign(self, s: _Session, st: Statement) -> None:
        ctl = transaction_control(st.query)
        start = end = st.ts
        if st.ts is not None and st.duration_ms:
            start = st.ts - st.duration_ms / 1000.0
        if ctl == BEGIN:
            if s.cur is not None:
                self._close_request(s)
            s.cur = self._new_request(s, "transaction")
            s.in_tx = True
            s.cur.statements.append(st)
        elif s.in_tx:
            s.cur.statements.append(st)
            if ctl == END:
                self._close_request(s)
                s.in_tx = False
        else:
            if (s.cur is not None and start is not None and s.last_end is not None
                    and start - s.last_end > self.idle_gap_s):
                self._close_request(s)
            if s.cur is None:
                s.cur = self._new_request(s, "idle-gap")
            s.cur.statements.append(st)
        if end is not None:
            s.last_end = end

    def _new_request(self, s: _Session, boundary: str) -> Request:
        return Request(session=s.sid, boundary=boundary, user=s.user, database=s.db,
                       application=s.app)

    def _close_request(self, s: _Session) -> None:
        req = s.cur
        s.cur = None
        if req is not None and req.statements:
            self.profile.requests.append(req)

    # -- records --------------------------------------------------------------------
    def feed(self, rec: Record) -> None:
        prof = self.profile
        ts = rec.ts
        if ts is not None:
            if prof.first_ts is None or ts < prof.first_ts:
                prof.first_ts = ts
            if prof.last_ts is None or ts > prof.last_ts:
                prof.last_ts = ts
        level = rec.level
        if level == "DETAIL":
            s = self._session(rec, create=False)
            if s is not None:
                self._detail(s, rec.message)
            return
        if level != "LOG":
            if level in ("ERROR", "FATAL", "PANIC"):
                s = self._session(rec, create=False)
                if s is not None:
                    s.detail_for = None
            return
        msg = rec.message
        if msg.startswith("duration: "):
            self._duration_message(rec, msg)
        elif msg.startswith(("statement: ", "execute ")):
            self._statement_message(rec, msg, None)
        elif msg.startswith("connection "):
            self._connection(rec, msg)
        elif msg.startswith("disconnection: "):
            self._disconnection(rec, msg)
        elif msg.startswith("replication connection "):
            self._connection(rec, msg[len("replication "):])

    def _detail(self, s: _Session, detail: str) -> None:
        if not detail.startswith("parameters: "):
            return
        if s.detail_for == "execute" and s.pending is not None:
            s.pending.params = parse_parameters(detail)
        elif s.detail_for == "bind":
            s.bind_params = parse_parameters(detail)
        s.detail_for = None

    def _duration_message(self, rec: Record, msg: str) -> None:
        m = _DURATION.match(msg)
        if m is None:
            return
        ms = float(m.group(1))
        rest = m.group(2)
        if rest:
            self._statement_message(rec, rest, ms)
            return
        s = self._session(rec)
        s.detail_for = None
        p = s.pending
        if p is not None and p.duration is None:
            p.duration = round(ms + p.carry, 3)
        else:
            s.carry += ms

    def _statement_message(self, rec: Record, text: str, ms: float | None) -> None:
        m = _STATEMENT.match(text)
        if m is None:  # "duration: ... plan:" (auto_explain) and the like
            return
        kind, name, query = m.group(1), m.group(2), m.group(3)
        s = self._session(rec)
        if kind in ("parse", "bind"):
            if ms is not None:
                s.carry += ms
            if kind == "bind":
                s.bind_params = ()
                s.detail_for = "bind"
                if rec.detail:
                    self._detail(s, rec.detail)
            else:
                s.detail_for = None
            return
        if kind == "execute" and name and name.startswith("fetch from"):
            if ms is not None and s.pending is not None and s.pending.duration is not None:
                s.pending.duration = round(s.pending.duration + ms, 3)
            s.detail_for = None
            return
        self._flush(s)
        carry, s.carry = s.carry, 0.0
        params: tuple[str, ...] = ()
        if kind == "execute":
            params = s.bind_params
            s.bind_params = ()
        duration = round(ms + carry, 3) if ms is not None else None
        s.pending = _Pending(query, params, duration, rec.ts, carry)
        s.detail_for = "execute"
        if rec.detail:
            self._detail(s, rec.detail)

    # -- connections ------------------------------------------------------------------
    def _conn_event(self, ts: float | None) -> None:
        if ts is None:
            return
        if self._conn_first is None or ts < self._conn_first:
            self._conn_first = ts
        if self._conn_last is None or ts > self._conn_last:
            self._conn_last = ts

    def _connection(self, rec: Record, msg: str) -> None:
        self.profile.connections.logged = True
        if msg.startswith("connection received"):
            key = rec.session or rec.pid or "?"
            if key in self._sessions:  # the pid was reused: the old session is over
                self._end_session(key)
            self._n_received += 1
            if rec.ts is not None:
                self._received[int(rec.ts)] += 1
            self._session(rec)
        elif msg.startswith("connection authorized"):
            self._n_authorized += 1
            if rec.ts is not None:
                self._authorized[int(rec.ts)] += 1
            s = self._session(rec)
            m = re.search(r"\buser=(\S+)(?: database=(\S+))?", msg)
            if m:
                s.user, s.db = m.group(1), m.group(2) or s.db
            a = re.search(r"\bapplication_name=(\S+)", msg)
            if a:
                s.app = a.group(1)
        else:
            return
        self._conn_event(rec.ts)

    def _disconnection(self, rec: Record, msg: str) -> None:
        conns = self.profile.connections
        conns.logged = True
        conns.disconnections += 1
        m = _SESSION_TIME.search(msg)
        if m:
            h, mi, sec = int(m.group(1)), int(m.group(2)), float(m.group(3))
            conns.session_ms.append(round((h * 3600 + mi * 60 + sec) * 1000.0, 3))
        self._conn_event(rec.ts)
        self._end_session(rec.session or rec.pid or "?")

    # -- end --------------------------------------------------------------------------
    def finish(self) -> WorkloadProfile:
        """End every open session and return the profile (call once)."""
        for key in list(self._sessions):
            self._end_session(key)
        conns = self.profile.connections
        use_auth = self._n_authorized > 0
        conns.connections = self._n_authorized if use_auth else self._n_received
        per_second = self._authorized if use_auth else self._received
        conns.peak_per_second = max(per_second.values(), default=0)
        conns.first_ts, conns.last_ts = self._conn_first, self._conn_last
        self.profile.total_ms = round(self.profile.total_ms, 3)
        for stats in self.profile.fingerprints.values():
            stats.total_ms = round(stats.total_ms, 3)
        return self.profile
