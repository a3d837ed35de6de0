"""Log formats: detection (once per file) and the readers that turn lines into
:class:`Record` values.

===========  ==========================================================================
format       what it reads
===========  ==========================================================================
stderr       lines that start with the server's ``log_line_prefix`` (given, read from
             the server with :func:`~auditor.collectors.querylog.prefix.prefix_from_server`,
             or detected); continuation lines start with a tab
rds          Amazon RDS / Aurora: stderr with RDS's fixed prefix ``%t:%r:%u@%d:[%p]:``
syslog       ``<date> <host> <ident>[<pid>]: [<seq>-<chunk>] <prefix><LEVEL>:  ...``:
             chunks after the first continue the record (rsyslog's ``#011`` is a tab);
             chunks of different backends may interleave; the date (no year) comes from
             the header unless the prefix has its own timestamp
csvlog       PostgreSQL's csvlog (23 to 26 columns, PostgreSQL 9.0 to 17)
jsonlog      PostgreSQL 15+ jsonlog, one object a line
cloudsql     Google Cloud SQL exported from Cloud Logging: JSON lines, the stderr text in
             ``textPayload`` (its own prefix, e.g. ``[%p]: [%l-1] db=%d,user=%u``), the
             time in ``timestamp``
cnpg         CloudNativePG: JSON lines, the jsonlog/csvlog fields under ``record``; the
             operator's own lines are counted as skipped
pgbouncer    PgBouncer's own log: recognised so it is never misread as PostgreSQL's; it
             holds no statements; its client logins and server connections are counted
             (:attr:`LogFile.pgbouncer`)
===========  ==========================================================================

:func:`open_log` detects the format from the first 64 KB (JSON lines by their keys,
syslog by its header, csvlog by its first column, PgBouncer by its level words, stderr
otherwise) and picks the reader once per file: no per-line format test.

Lines that cannot be read are counted in ``skipped`` (reason -> lines) and skipped. A
prefix that matches no line is an error naming what the lines lack and the
``log_line_prefix`` to set, never a silent "0 statements". A record longer than
:data:`~auditor.collectors.querylog.inputs.MAX_LINE_CHARS` (4 MiB: one line the input
layer replaced by its marker line, or lines that add up to more) is skipped whole and
counted once under :data:`TOO_LONG`.
"""

from __future__ import annotations

import calendar
import csv
import json
import os
import re
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from auditor.collectors.querylog.inputs import (LONG_LINE, MAX_LINE_CHARS, NOT_UTF8,
                                                SAMPLE_BYTES, TOO_LONG, TRUNCATED, LogInput,
                                                open_input)
from auditor.collectors.querylog.prefix import (LEVELS, RECOMMENDED_PREFIX, Prefix,
                                                detect_prefix, get_prefix, infer_prefix,
                                                missing_fields, parse_ts, set_prefix_advice)
from auditor.errors import ConfigError, TargetUnreachable

__all__ = ["FORMATS", "Record", "LogFile", "open_log", "detect_format", "sample",
           "open_lines", "read_stderr", "read_syslog", "read_csvlog", "read_jsonlog",
           "read_cloudsql", "read_pgbouncer", "RDS_PREFIX", "SAMPLE_BYTES", "TRUNCATED",
           "NOT_UTF8", "TOO_LONG"]

FORMATS = ("stderr", "rds", "syslog", "csvlog", "jsonlog", "cloudsql", "cnpg", "pgbouncer")
RDS_PREFIX = "%t:%r:%u@%d:[%p]:"
_DETECT_LINES = 200

# skipped-line reasons (stable strings: tests and reports show them)
NO_PREFIX = "line does not match log_line_prefix"
ORPHAN_CONTINUATION = "continuation line without a record before it"
BAD_CSV = "invalid csvlog row"
SHORT_CSV = "csvlog row with too few columns"
BAD_JSON = "invalid jsonlog line"
NO_MESSAGE = "jsonlog record without a message"
BAD_TIMESTAMP = "unreadable timestamp"
NOT_SYSLOG = "line without a syslog header"
OTHER_PROGRAM = "syslog line from another program"
CNPG_OTHER = "CloudNativePG line without a PostgreSQL record (operator or start-up output)"
NO_TEXT_PAYLOAD = "Cloud Logging entry without a textPayload"
PGBOUNCER_LINE = "PgBouncer log line (pooler events, no statements)"

# fields a format's wrapper carries whatever the prefix (for "what is missing")
_WRAPPER_FIELDS = {"syslog": " %m [%p]", "cloudsql": " %m"}


class Record:
    """One log record (a message with its prefix fields). ``level`` is the severity
    word (LOG, ERROR, DETAIL, ...); ``detail`` holds csvlog/jsonlog's detail field
    (stderr logs DETAIL as a record of its own). ``ts`` is epoch seconds or None."""
    __slots__ = ("ts", "pid", "session", "user", "db", "app", "host", "level", "message",
                 "detail")

    def __init__(self, ts, pid, session, user, db, app, host, level, message, detail=None):
        self.ts = ts
        self.pid = pid
        self.session = session
        self.user = user
        self.db = db
        self.app = app
        self.host = host
        self.level = level
        self.message = message
        self.detail = detail

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Record({self.level} pid={self.pid} {self.message[:60]!r})"


def _bump(skipped: dict[str, int], reason: str, n: int = 1) -> None:
    skipped[reason] = skipped.get(reason, 0) + n


def _add_counts(counts: dict[str, int] | None, matched: int, unmatched: int) -> None:
    if counts is not None:
        counts["matched"] = counts.get("matched", 0) + matched
        counts["unmatched"] = counts.get("unmatched", 0) + unmatched


# -- compatibility helpers (a path in, text out) -----------------------------------------
def sample(path: "str | os.PathLike") -> str:
    """The first ~64 KB of ``path``, decompressed and decoded (for detection). Raises
    TargetUnreachable (see :mod:`auditor.collectors.querylog.inputs`)."""
    return open_input(path).sample


def open_lines(path: "str | os.PathLike", skipped: dict[str, int]) -> Iterator[str]:
    """The decoded lines of ``path`` (see :mod:`~auditor.collectors.querylog.inputs`)."""
    return open_input(path).lines(skipped)


# -- detection ------------------------------------------------------------------------
# a csvlog row starts with its timestamp, then at most a time-zone token, then a comma
# (anything looser takes a stderr line whose statement holds commas for csvlog)
_CSV_START = re.compile(r'^"?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?'
                        r'(?: ?[A-Za-z][A-Za-z0-9+\-/_]{0,31}| ?[+-]\d\d(?::?\d\d)?)?"?,')
_SYSLOG = re.compile(
    r"(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" (?:(?P<host>\S+) )?(?P<ident>[^\s\[\]:]+)\[(?P<pid>\d+)\]: "
    r"(?:\[(?P<seq>\d+)(?:-(?P<chunk>\d+))?\] ?)?(?P<rest>.*)\Z", re.S)
_PGBOUNCER = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}(?: [A-Za-z0-9+-]+)? \[?\d+\]? "
    r"(?:LOG|WARNING|ERROR|FATAL|NOISE|DEBUG) ")


def _json_kind(line: str) -> str:
    try:
        obj = json.loads(line)
    except ValueError:
        return "jsonlog"
    if not isinstance(obj, dict):
        return "jsonlog"
    if "textPayload" in obj or ("insertId" in obj and "logName" in obj):
        return "cloudsql"
    if "record" in obj or ("logger" in obj and "msg" in obj) or "logging_pod" in obj:
        return "cnpg"
    return "jsonlog"


def detect_format(path: "str | os.PathLike", text: str) -> str:
    """One of :data:`FORMATS` (never ``rds``: RDS logs are stderr with RDS's prefix)
    from a file's first lines; the file name's ``.csv``/``.json`` decides for an empty
    sample."""
    lines = [ln for ln in text.splitlines()[:_DETECT_LINES] if ln.strip()]
    if lines:
        first = lines[0].lstrip()
        if first.startswith("{"):
            return _json_kind(first)
        if _CSV_START.match(first) and first.count(",") >= 12:
            return "csvlog"
        heads = [ln for ln in lines if ln[0] != "\t"]
        if sum(1 for ln in heads if _SYSLOG.match(ln)) * 2 > len(heads):
            return "syslog"
        if sum(1 for ln in heads if _PGBOUNCER.match(ln)) * 2 > len(heads):
            return "pgbouncer"
        return "stderr"
    suffixes = [s for s in Path(str(path)).suffixes if s not in (".gz", ".bz2", ".xz", ".zst")]
    if suffixes and suffixes[-1] == ".csv":
        return "csvlog"
    if suffixes and suffixes[-1] == ".json":
        return "jsonlog"
    return "stderr"


# -- stderr -----------------------------------------------------------------------------
def _field_index(prefix: Prefix) -> tuple[int, ...]:
    """Positions in ``match.groups()`` of ts, epoch, pid, session, user, db, app, host,
    level, msg (-1: the prefix has no such field)."""
    gi = prefix.regex.groupindex
    return tuple(gi[n] - 1 if n in gi else -1
                 for n in ("ts", "epoch", "pid", "session", "user", "db", "app", "host",
                           "level", "msg"))


def read_stderr(lines: Iterable[str], prefix: Prefix, skipped: dict[str, int],
                counts: dict[str, int] | None = None, *,
                stripped: bool = False) -> Iterator[Record]:
    """Records of a stderr log. ``counts`` (optional) receives ``matched`` and
    ``unmatched`` line totals, for the caller's wrong-prefix diagnosis. ``stripped``:
    the lines come without their trailing newline. A record longer than
    :data:`~auditor.collectors.querylog.inputs.MAX_LINE_CHARS` is skipped (its lines
    add up to more, or one was replaced by the input's marker line,
    :data:`~auditor.collectors.querylog.inputs.LONG_LINE`: a continuation line's marker
    drops the record it continues, a first line's ends the record before it)."""
    match = prefix.regex.match
    i_ts, i_ep, i_pid, i_ses, i_usr, i_db, i_app, i_host, i_lvl, i_msg = _field_index(prefix)
    cur: Record | None = None
    parts: list[str] | None = None  # the record's lines, once it has a continuation
    size = 0  # the characters of those lines, once it has a continuation
    dropping = False  # inside a skipped record (bad timestamp, too long): drop its lines
    matched = unmatched = 0
    ts_cache: dict[str, float] = {}  # timestamp text -> epoch (%t: one entry a second)
    ts_get = ts_cache.get
    if not stripped:
        lines = (line.rstrip("\n") for line in lines)
    for line in lines:
        if not line:
            continue
        if line[0] == "\t":
            if cur is not None:
                if parts is None:
                    parts = [cur.message]
                    size = len(cur.message)
                parts.append(line[1:])
                size += len(line)
                if size > MAX_LINE_CHARS:
                    cur = parts = None
                    dropping = True
                    _bump(skipped, TOO_LONG)
            elif not dropping:
                _bump(skipped, ORPHAN_CONTINUATION)
            continue
        m = match(line)
        if m is None:
            if line[0] == " " and cur is not None:
                if parts is None:
                    parts = [cur.message]
                    size = len(cur.message)
                parts.append(line)  # a continuation whose tab became spaces (an edited log)
                size += len(line)
                if size > MAX_LINE_CHARS:
                    cur = parts = None
                    dropping = True
                    _bump(skipped, TOO_LONG)
                continue
            if line[0] == LONG_LINE:  # (counted by the input layer)
                if line[1:2] != "\t" and cur is not None:  # a new record's line was cut
                    if parts is not None:
                        cur.message = "\n".join(parts)
                    yield cur
                cur = parts = None  # (a continuation was cut: its record goes)
                dropping = True
                continue
            unmatched += 1
            _bump(skipped, NO_PREFIX)
            continue
        if cur is not None:
            if parts is not None:
                cur.message = "\n".join(parts)
                parts = None
            yield cur
            cur = None
        g = m.groups()  # one tuple: no per-line dict
        ts_text = g[i_ts] if i_ts >= 0 else None
        if ts_text is not None:
            ts = ts_get(ts_text)
            if ts is None:
                ts = parse_ts(ts_text)
                if ts is None:
                    unmatched += 1
                    _bump(skipped, BAD_TIMESTAMP)
                    dropping = True
                    continue
                if len(ts_cache) >= 4096:
                    ts_cache.clear()
                ts_cache[ts_text] = ts
        elif i_ep >= 0 and g[i_ep]:
            ts = float(g[i_ep])
        else:
            ts = None
        matched += 1
        dropping = False
        host = g[i_host] if i_host >= 0 else None
        if host and "(" in host:
            host = host.split("(", 1)[0]
        cur = Record(ts, g[i_pid] if i_pid >= 0 else None, g[i_ses] if i_ses >= 0 else None,
                     (g[i_usr] or None) if i_usr >= 0 else None,
                     (g[i_db] or None) if i_db >= 0 else None,
                     (g[i_app] or None) if i_app >= 0 else None, host or None, g[i_lvl],
                     g[i_msg])
    if cur is not None:
        if parts is not None:
            cur.message = "\n".join(parts)
        yield cur
    _add_counts(counts, matched, unmatched)


# -- syslog -----------------------------------------------------------------------------
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                       "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_SYSLOG_WINDOW = 2000  # lines a record may wait for its next chunk (interleaved backends)


def _bsd_clock(ref_epoch: float | None):
    """A parser for BSD syslog dates (``Feb 11 13:15:39``, no year, read as UTC): the
    year is the reference time's (a file's mtime), or the one before for months after
    it (a log that began in December and was written until January)."""
    ref = time.gmtime(ref_epoch if ref_epoch is not None else time.time())
    cache: dict[str, float | None] = {}

    def parse(text: str) -> float | None:
        v = cache.get(text)
        if v is None and text not in cache:
            try:
                mon = _MONTHS[text[:3]]
                year = ref.tm_year - 1 if mon > ref.tm_mon else ref.tm_year
                v = float(calendar.timegm((year, mon, int(text[4:6]), int(text[7:9]),
                                           int(text[10:12]), int(text[13:15]), 0, 0, 0)))
            except (KeyError, ValueError):
                v = None
            if len(cache) > 100_000:
                cache.clear()
            cache[text] = v
        return v
    return parse


def _unescape_syslog(text: str) -> str:
    # rsyslog writes control characters as #ooo (octal); PostgreSQL's tabs are the ones
    # that matter (statement lines start with one)
    return text.replace("#011", "\t")


class _Open:
    __slots__ = ("rec", "parts", "last", "size")

    def __init__(self, rec: Record, parts: list[str], last: int) -> None:
        self.rec, self.parts, self.last = rec, parts, last
        self.size = len(parts[0])  # characters so far; -1: too long, skipped

    def add(self, text: str, skipped: dict[str, int], join: bool = False) -> None:
        """Add a chunk (``join``: to the last line, else as a new line)."""
        if self.size < 0:
            return
        self.size += len(text)
        if self.size > MAX_LINE_CHARS:
            self.size = -1
            self.parts = []
            _bump(skipped, TOO_LONG)
        elif join:
            self.parts[-1] += text
        else:
            self.parts.append(text)


def read_syslog(lines: Iterable[str], prefix: Prefix, skipped: dict[str, int],
                counts: dict[str, int] | None = None, *, ident: str | None = None,
                ref_epoch: float | None = None) -> Iterator[Record]:
    """Records of a syslog file. ``prefix``: the server's log_line_prefix (what follows
    ``[seq-1] ``). ``ident``: the PostgreSQL program name (syslog_ident; None: any
    line with a ``[seq-chunk]`` tag). ``ref_epoch``: dates BSD syslog lines (see
    :func:`_bsd_clock`). Records come out in order per backend."""
    header = _SYSLOG.match
    match = prefix.regex.match
    bsd = _bsd_clock(ref_epoch)
    pending: dict[str, _Open] = {}  # pid -> its open record, in order of last touch
    matched = unmatched = 0
    n = 0

    def close(ent: _Open) -> Record | None:
        if ent.size < 0:
            return None  # too long: skipped
        rec = ent.rec
        rec.message = ent.parts[0] if len(ent.parts) == 1 else "\n".join(ent.parts)
        return rec

    for line in lines:
        n += 1
        line = line.rstrip("\n")
        if not line:
            continue
        h = header(line)
        if h is None:
            if line[0] == LONG_LINE:
                continue  # (counted by the input layer)
            _bump(skipped, NOT_SYSLOG)
            unmatched += 1
            continue
        if ident is not None and h.group("ident") != ident:
            _bump(skipped, OTHER_PROGRAM)
            continue
        pid, chunk, rest = h.group("pid"), h.group("chunk"), h.group("rest")
        if "#0" in rest:
            rest = _unescape_syslog(rest)
        if chunk is not None and chunk != "1":  # the next chunk of a record
            ent = pending.pop(pid, None)
            if ent is None:
                _bump(skipped, ORPHAN_CONTINUATION)
                continue
            if rest[:1] == "\t":
                ent.add(rest[1:], skipped)  # a new line of the message
            else:
                ent.add(rest, skipped, join=True)  # a long line cut at PG_SYSLOG_LIMIT
            ent.last = n
            pending[pid] = ent
            continue
        m = match(rest)
        if m is None:
            ent = pending.get(pid) if chunk is None else None
            if ent is not None:
                # syslog_sequence_numbers = off ("[2] ..." or no tag): a line that is no
                # record continues its backend's record
                ent.add(rest[1:] if rest[:1] == "\t" else rest, skipped)
                ent.last = n
                continue
            unmatched += 1
            _bump(skipped, NO_PREFIX)
            continue
        old = pending.pop(pid, None)
        if old is not None and (done := close(old)) is not None:
            yield done
        while pending:  # records whose backend went quiet: finished
            first = next(iter(pending))
            if pending[first].last >= n - _SYSLOG_WINDOW:
                break
            if (done := close(pending.pop(first))) is not None:
                yield done
        g = m.groupdict()
        ts_text = g.get("ts")
        if ts_text is not None:
            ts = parse_ts(ts_text)
        elif g.get("epoch"):
            ts = float(g["epoch"])
        else:
            hts = h.group("ts")
            ts = parse_ts(hts) if hts[0].isdigit() else bsd(hts)
        if ts is None:
            unmatched += 1
            _bump(skipped, BAD_TIMESTAMP)
            continue
        matched += 1
        host = g.get("host")
        if host and "(" in host:
            host = host.split("(", 1)[0]
        rec = Record(ts, g.get("pid") or pid, g.get("session"), g.get("user") or None,
                     g.get("db") or None, g.get("app") or None, host or None, g["level"], "")
        pending[pid] = _Open(rec, [g["msg"]], n)
    for ent in pending.values():
        if (done := close(ent)) is not None:
            yield done
    _add_counts(counts, matched, unmatched)


def _syslog_parts(sample_lines: list[str]) -> tuple[str | None, list[str]]:
    """(the PostgreSQL ident, the first chunks' texts) from a syslog sample."""
    idents: Counter[str] = Counter()
    firsts: dict[str, list[str]] = {}
    for ln in sample_lines:
        h = _SYSLOG.match(ln)
        if h is None:
            continue
        ident, chunk = h.group("ident"), h.group("chunk")
        if h.group("seq") is not None:
            idents[ident] += 1
        if chunk is None or chunk == "1":
            firsts.setdefault(ident, []).append(_unescape_syslog(h.group("rest")))
    if idents:
        ident = idents.most_common(1)[0][0]
    else:
        ident = next((i for i in ("postgres", "postgresql") if i in firsts), None)
    rests = firsts.get(ident, []) if ident else [r for v in firsts.values() for r in v]
    return ident, [r for r in rests if r[:1] != "\t"]


# -- csvlog -------------------------------------------------------------------------------
def read_csvlog(lines: Iterable[str], skipped: dict[str, int],
                counts: dict[str, int] | None = None) -> Iterator[Record]:
    """Records of a csvlog file (23 to 26 columns, PostgreSQL 9.0 to 17; the columns
    used keep their positions across versions)."""
    reader = csv.reader(lines)
    matched = unmatched = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            unmatched += 1
            _bump(skipped, BAD_CSV)
            continue
        if not row:
            continue
        if len(row) < 14:
            if row[0][:1] == LONG_LINE:
                continue  # a line too long to read (counted by the input layer)
            unmatched += 1
            _bump(skipped, SHORT_CSV)
            continue
        if LONG_LINE in row[13]:
            continue  # a message with a line too long to read (counted by the input layer)
        ts = parse_ts(row[0])
        if ts is None:
            unmatched += 1
            _bump(skipped, BAD_TIMESTAMP)
            continue
        matched += 1
        host = row[4].rsplit(":", 1)[0] if row[4] and row[4][0] != "[" else row[4]
        yield Record(ts, row[3] or None, row[5] or None, row[1] or None, row[2] or None,
                     (row[22] if len(row) > 22 else "") or None, host or None,
                     row[11], row[13], (row[14] if len(row) > 14 else "") or None)
    _add_counts(counts, matched, unmatched)


# -- jsonlog, CloudNativePG ------------------------------------------------------------------
def _first(obj: dict, *keys):
    for k in keys:
        v = obj.get(k)
        if v not in (None, ""):
            return v
    return None


def read_jsonlog(lines: Iterable[str], skipped: dict[str, int],
                 counts: dict[str, int] | None = None, *,
                 cnpg: bool = False) -> Iterator[Record]:
    """Records of a jsonlog file (PostgreSQL 15+: one JSON object a line). The
    CloudNativePG wrapper (the fields under ``record``; csvlog's field names) is read
    too; with ``cnpg=True`` its operator lines are counted under :data:`CNPG_OTHER`."""
    loads = json.loads
    matched = unmatched = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            obj = loads(line)
        except ValueError:
            if line[0] == LONG_LINE:
                continue  # a line too long to read (counted by the input layer)
            unmatched += 1
            _bump(skipped, BAD_JSON)
            continue
        if not isinstance(obj, dict):
            unmatched += 1
            _bump(skipped, BAD_JSON)
            continue
        rec = obj.get("record")
        if isinstance(rec, dict):
            obj = rec
        elif cnpg:
            _bump(skipped, CNPG_OTHER)
            continue
        msg = obj.get("message")
        if not isinstance(msg, str):
            unmatched += 1
            _bump(skipped, NO_MESSAGE)
            continue
        ts_text = _first(obj, "timestamp", "log_time")
        ts = parse_ts(ts_text) if isinstance(ts_text, str) else None
        if ts is None:
            unmatched += 1
            _bump(skipped, BAD_TIMESTAMP)
            continue
        matched += 1
        pid = _first(obj, "pid", "process_id")
        host = _first(obj, "remote_host", "connection_from")
        if isinstance(host, str) and ":" in host and host[:1] != "[":
            host = host.rsplit(":", 1)[0]  # csvlog's connection_from is host:port
        yield Record(ts, str(pid) if pid is not None else None,
                     _first(obj, "session_id"), _first(obj, "user", "user_name"),
                     _first(obj, "dbname", "database_name"), _first(obj, "application_name"),
                     host, _first(obj, "error_severity") or "LOG",
                     msg, _first(obj, "detail"))
    _add_counts(counts, matched, unmatched)


# -- Google Cloud SQL ---------------------------------------------------------------------
def _iso_to_pg(ts: str) -> str | None:
    """``2020-05-02T13:00:20.382318Z`` → ``2020-05-02 13:00:20.382318 UTC`` (what %m
    matches); None when ``ts`` is not such a time."""
    if len(ts) < 19 or ts[10] not in "T ":
        return None
    base, tail = ts[:10] + " " + ts[11:19], ts[19:]
    frac = ".0"
    if tail.startswith("."):
        end = 1
        while end < len(tail) and tail[end].isdigit():
            end += 1
        frac, tail = tail[:end], tail[end:]
    tz = "UTC" if tail in ("", "Z", "z") else tail.strip()
    return f"{base}{frac} {tz}"


def _cloudsql_lines(lines: Iterable[str], skipped: dict[str, int],
                    stats: dict[str, int]) -> Iterator[str]:
    """Cloud Logging JSON lines → stderr lines with the entry's time in front (a
    ``%m`` the reader's prefix starts with)."""
    loads = json.loads
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            obj = loads(line)
        except ValueError:
            if line[0] == LONG_LINE:
                continue  # a line too long to read (counted by the input layer)
            stats["unmatched"] += 1
            _bump(skipped, BAD_JSON)
            continue
        text = obj.get("textPayload") if isinstance(obj, dict) else None
        if not isinstance(text, str):
            stats["unmatched"] += 1
            _bump(skipped, NO_TEXT_PAYLOAD)
            continue
        for i, part in enumerate(text.split("\n")):
            if not part:
                continue
            if part[0] == "\t" or i > 0:
                yield part if part[0] == "\t" else "\t" + part
                continue
            ts = obj.get("timestamp")
            pg_ts = _iso_to_pg(ts) if isinstance(ts, str) else None
            if pg_ts is None:
                stats["unmatched"] += 1
                _bump(skipped, BAD_TIMESTAMP)
                break
            yield f"{pg_ts} {part}"


def read_cloudsql(lines: Iterable[str], inner_prefix: Prefix | str,
                  skipped: dict[str, int],
                  counts: dict[str, int] | None = None) -> Iterator[Record]:
    """Records of a Cloud SQL export. ``inner_prefix``: the prefix of the
    ``textPayload`` texts (Cloud SQL's is ``[%p]: [%l-1] db=%d,user=%u ``)."""
    text = inner_prefix.text if isinstance(inner_prefix, Prefix) else inner_prefix
    stats = {"unmatched": 0}
    inner: dict[str, int] = {}
    yield from read_stderr(_cloudsql_lines(lines, skipped, stats), get_prefix("%m " + text),
                           skipped, inner)
    _add_counts(counts, inner.get("matched", 0), inner.get("unmatched", 0) + stats["unmatched"])


def _cloudsql_texts(sample_lines: list[str]) -> list[str]:
    out = []
    for ln in sample_lines:
        try:
            obj = json.loads(ln)
        except ValueError:
            continue
        text = obj.get("textPayload") if isinstance(obj, dict) else None
        if isinstance(text, str) and text[:1] not in ("\t", ""):
            out.append(text.split("\n", 1)[0])
    return out


# -- PgBouncer ------------------------------------------------------------------------------
def read_pgbouncer(lines: Iterable[str], skipped: dict[str, int],
                   stats: dict[str, int]) -> Iterator[Record]:
    """No records (PgBouncer logs no statements); counts into ``stats``: ``lines``,
    ``client_logins`` ("login attempt"), ``server_connections`` ("new connection to
    server"), ``client_closes`` ("closing because"). Every line is counted under
    :data:`PGBOUNCER_LINE`."""
    logins = servers = closes = total = 0
    for line in lines:
        if not line.strip() or line[0] == LONG_LINE:
            continue
        total += 1
        if "login attempt" in line:
            logins += 1
        elif "new connection to server" in line:
            servers += 1
        elif "closing because" in line and ": C-" not in line and " C-0x" in line:
            closes += 1
    stats.update(lines=total, client_logins=logins, server_connections=servers,
                 client_closes=closes)
    if total:
        _bump(skipped, PGBOUNCER_LINE, total)
    return iter(())


# -- one file -------------------------------------------------------------------------------
_LEVEL_WORD = re.compile(rf"(?:^|(?<=[\s:\]]))(?:{LEVELS}):\s")


def _head_of(line: str) -> str:
    """The prefix part of a line (up to its severity word), for messages: never the
    statement text, which may hold secrets."""
    m = _LEVEL_WORD.search(line)
    head = line[:m.start()] if m else line[:40]
    return head[:80]


def _no_prefix_error(name: str, heads: list[str]) -> TargetUnreachable:
    """The error for lines no known prefix matches: what they lack, and what to set."""
    with_level = [ln for ln in heads if _LEVEL_WORD.search(ln)]
    if not with_level:
        return TargetUnreachable(
            f"cannot read query log {name}: no line carries a PostgreSQL severity word "
            f"(LOG:, ERROR:, ...; the first starts {_head_of(heads[0])!r}). Either this is "
            "not a PostgreSQL server log, or the server writes its messages in another "
            "language: set lc_messages = 'C' in postgresql.conf")
    guess = infer_prefix(with_level[0]) or ""
    lacks = missing_fields(guess)
    why = ("; the lines carry " + "; ".join(lacks)) if lacks else ""
    return TargetUnreachable(
        f"cannot read query log {name}: its lines do not match any known log_line_prefix "
        f"(the first starts {_head_of(with_level[0])!r}){why}. To read it, "
        f"{set_prefix_advice()}")


class LogFile:
    """One log opened for reading.

    ``name``: its path (``stdin`` for ``-``); ``format``: one of :data:`FORMATS`;
    ``prefix``: the log_line_prefix used (stderr, rds, syslog, cloudsql); ``records``:
    an iterator over its :class:`Record` values (once); ``counts``: ``matched`` /
    ``unmatched`` lines, complete once ``records`` is exhausted; ``notes``: what a
    reader of the results should know (e.g. the prefix lacks the pid);
    ``pgbouncer``: the PgBouncer counts (see :func:`read_pgbouncer`) for that format.
    """

    def __init__(self, name: str, fmt: str, prefix: str | None, given_prefix: bool,
                 records: Iterator[Record], counts: dict[str, int], notes: list[str],
                 pgbouncer: dict[str, int] | None = None, heads: list[str] = (),
                 detected: str | None = None) -> None:
        self.name = name
        self.detected = detected  # the format the content shows (when one was given)
        self._heads = list(heads)
        self.format = fmt
        self.prefix = prefix
        self.given_prefix = given_prefix
        self.records = records
        self.counts = counts
        self.notes = notes
        self.pgbouncer = pgbouncer

    def finish(self, statements: int) -> None:
        """Call after reading ``records``, with the number of statements they held.
        Raises ConfigError (a prefix given) or TargetUnreachable (detected) when most
        lines did not match the prefix and no statement was read: never a silent 0."""
        matched, unmatched = self.counts.get("matched", 0), self.counts.get("unmatched", 0)
        if statements or unmatched <= matched:
            return
        where = f"{unmatched} of {matched + unmatched} lines of {self.name}"
        if self.detected is not None and self.detected != self.format and not matched:
            raise ConfigError(
                f"{where} are not {self.format} lines: the file looks like "
                f"{self.detected}; give --format {self.detected} (or auto)")
        if self.prefix is None:
            raise TargetUnreachable(f"{where} are not {self.format} records and no statement "
                                    "was read; check the file and its format")
        if self.format == "syslog" and not matched:
            raise (ConfigError if self.given_prefix else TargetUnreachable)(
                f"{where} are not PostgreSQL syslog lines (<date> <host> postgres[<pid>]: "
                "[<n>-1] ...); give the log's format (--format) if it is another one")
        lacks = missing_fields(self.prefix + _WRAPPER_FIELDS.get(self.format, ""))
        why = (" (that prefix carries " + "; ".join(lacks) + ")") if lacks else ""
        if self.given_prefix:
            found = detect_prefix(self._heads) if self._heads else None
            looks = (f"; the lines look like log_line_prefix {found!r}: give that"
                     if found is not None and found != self.prefix else "")
            raise ConfigError(
                f"{where} do not match log_line_prefix {self.prefix!r}{why} and no "
                f"statement was read{looks}; {set_prefix_advice()}")
        raise TargetUnreachable(
            f"{where} do not match the detected log_line_prefix {self.prefix!r}{why} and "
            f"no statement was read; {set_prefix_advice()}")

    def info(self) -> dict:
        """A JSON-ready description: path, format, line_prefix, lines matched and
        unmatched, notes, and the PgBouncer counts when it is one."""
        out = {"path": self.name, "format": self.format, "line_prefix": self.prefix,
               "lines_matched": self.counts.get("matched", 0),
               "lines_unmatched": self.counts.get("unmatched", 0), "notes": list(self.notes)}
        if self.pgbouncer is not None:
            out["pgbouncer"] = dict(self.pgbouncer)
        return out


def _detect_stderr_prefix(name: str, heads: list[str]) -> str:
    if not heads:
        return ""
    found = detect_prefix(heads[:_DETECT_LINES])
    if found is None:
        raise _no_prefix_error(name, heads)
    return found


def open_log(path: "str | os.PathLike", fmt: str = "auto", line_prefix: str | None = None,
             skipped: dict[str, int] | None = None) -> LogFile:
    """Open one log (``-``: stdin), detect what is not given, and return its
    :class:`LogFile`. ``fmt``: ``auto`` or one of :data:`FORMATS`. ``line_prefix``: the
    server's log_line_prefix (stderr, syslog: what follows ``[seq-1]``; cloudsql: the
    ``textPayload`` prefix); None: detected. Skipped lines are counted in ``skipped``.

    Raises TargetUnreachable (cannot open/decode; no prefix recognised, with what the
    lines lack and the prefix to set) or ConfigError (unknown format).
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigError(f"log format {fmt!r} is not one of auto, {', '.join(FORMATS)}")
    skipped = {} if skipped is None else skipped
    src: LogInput = open_input(path)
    text = src.sample
    detected = detect_format(path, text)
    if fmt == "auto":
        fmt = detected
    elif fmt == "rds" and detected == "stderr":
        detected = "rds"
    counts: dict[str, int] = {}
    notes: list[str] = []
    sample_lines = [ln for ln in text.splitlines()[:_DETECT_LINES * 5] if ln.strip()]
    if len(text) >= SAMPLE_BYTES and sample_lines:
        sample_lines.pop()  # may be cut short
    given = line_prefix is not None
    prefix: str | None = None
    heads: list[str] = []

    if fmt == "csvlog":
        records = read_csvlog(src.lines(skipped), skipped, counts)
    elif fmt in ("jsonlog", "cnpg"):
        records = read_jsonlog(src.lines(skipped), skipped, counts, cnpg=fmt == "cnpg")
    elif fmt == "pgbouncer":
        stats: dict[str, int] = {}
        records = _drain_pgbouncer(src.lines(skipped), skipped, stats)
        notes.append("PgBouncer's own log: it holds no statements; give the PostgreSQL "
                     "server's log for the workload (this one shows the pooler at work)")
        return LogFile(src.name, fmt, None, False, records, counts, notes, stats,
                       detected=detected)
    elif fmt == "syslog":
        ident, heads = _syslog_parts(sample_lines)
        prefix = line_prefix if given else _detect_stderr_prefix(src.name, heads)
        records = read_syslog(src.lines(skipped), get_prefix(prefix), skipped, counts,
                              ident=ident, ref_epoch=src.mtime)
        if src.mtime is None or not re.search(r"%[mtn]", prefix):
            notes.append("syslog dates carry no year: read as "
                         f"{time.gmtime(src.mtime or time.time()).tm_year} UTC")
    elif fmt == "cloudsql":
        heads = _cloudsql_texts(sample_lines)
        prefix = line_prefix if given else _detect_stderr_prefix(src.name, heads)
        records = read_cloudsql(src.lines(skipped), prefix, skipped, counts)
    else:  # stderr, rds
        heads = [ln for ln in sample_lines if ln[0] != "\t"]
        if not given and fmt == "rds":
            prefix, given = RDS_PREFIX, True  # chosen with the format: "given"
        elif given:
            prefix = line_prefix
        else:
            prefix = _detect_stderr_prefix(src.name, heads)
        records = read_stderr(src.lines(skipped), get_prefix(prefix), skipped, counts)
    if prefix is not None:
        for why in missing_fields(prefix + _WRAPPER_FIELDS.get(fmt, "")):
            notes.append(f"log_line_prefix {prefix!r} carries {why}; set "
                         f"log_line_prefix = '{RECOMMENDED_PREFIX}'")
    return LogFile(src.name, fmt, prefix, given, records, counts, notes,
                   heads=heads[:_DETECT_LINES], detected=detected)


def _drain_pgbouncer(lines: Iterable[str], skipped: dict[str, int],
                     stats: dict[str, int]) -> Iterator[Record]:
    yield from read_pgbouncer(lines, skipped, stats)
