"""Opening log files and turning their lines into :class:`Record` values.

Three PostgreSQL log formats: ``stderr`` (lines with a ``log_line_prefix``,
continuation lines starting with a tab), ``csvlog`` and ``jsonlog``. gzip, bzip2 and
xz files are decompressed on the fly (recognised by their magic bytes, not their
names). Everything streams: one line in memory at a time, plus the current record.

Lines that cannot be read are counted in ``skipped`` (reason -> lines) and skipped.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import re
import zlib
from pathlib import Path
from typing import IO, Iterable, Iterator

from auditor.collectors.querylog.prefix import Prefix, parse_ts
from auditor.errors import TargetUnreachable

FORMATS = ("stderr", "csvlog", "jsonlog")
SAMPLE_BYTES = 64 * 1024

# skipped-line reasons (stable strings: tests and reports show them)
NO_PREFIX = "line does not match log_line_prefix"
ORPHAN_CONTINUATION = "continuation line without a record before it"
BAD_CSV = "invalid csvlog row"
SHORT_CSV = "csvlog row with too few columns"
BAD_JSON = "invalid jsonlog line"
NO_MESSAGE = "jsonlog record without a message"
BAD_TIMESTAMP = "unreadable timestamp"
TRUNCATED = "truncated or corrupt compressed data"


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


# -- opening --------------------------------------------------------------------------
def _opener(head: bytes):
    if head[:2] == b"\x1f\x8b":
        return gzip.open
    if head[:3] == b"BZh":
        return bz2.open
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.open
    return open


def _unreadable(path: Path, why: str) -> TargetUnreachable:
    return TargetUnreachable(f"cannot read query log {path}: {why}")


def sample(path: Path) -> str:
    """The first ~64 KB of ``path``, decompressed and decoded (for format and prefix
    detection). Raises TargetUnreachable when the file cannot be opened, decompressed
    or is not text."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
        with _opener(head)(path, "rb") as fh:
            data = fh.read(SAMPLE_BYTES)
    except FileNotFoundError:
        raise _unreadable(path, "no such file; check the path") from None
    except IsADirectoryError:
        raise _unreadable(path, "it is a directory; give the log files inside it") from None
    except PermissionError:
        raise _unreadable(path, "permission denied; run the auditor as a user who may read "
                                "the server's log directory, or copy the log") from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise _unreadable(path, f"the compressed data is corrupt ({exc})") from None
    if b"\x00" in data:
        raise _unreadable(path, "it holds binary data, not a PostgreSQL text log "
                                "(stderr, csvlog or jsonlog)")
    text = data.decode("utf-8", errors="replace")
    if text.count("\ufffd") > max(8, len(text) // 100):
        raise _unreadable(path, "it is not UTF-8 text; convert it (iconv -f LATIN1 -t UTF-8) "
                                "or give the server's log as written")
    return text


def open_lines(path: Path, skipped: dict[str, int]) -> Iterator[str]:
    """Yield the decoded lines of ``path`` (newline stripped). A compressed stream that
    ends early is counted under ``skipped`` and ends the iteration."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    raw: IO[bytes] = _opener(head)(path, "rb")
    text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)
    try:
        while True:
            try:
                line = text.readline()
            except (OSError, EOFError, lzma.LZMAError, zlib.error):
                skipped[TRUNCATED] = skipped.get(TRUNCATED, 0) + 1
                return
            if not line:
                return
            yield line
    finally:
        text.close()


_CSV_START = re.compile(r'^"?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [^,"]*)?"?,')


def detect_format(path: Path, text: str) -> str:
    """``stderr``, ``csvlog`` or ``jsonlog`` from the first lines (the file name's
    ``.csv``/``.json`` is the tie-breaker for an empty sample)."""
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            return "jsonlog"
        if _CSV_START.match(line) and line.count(",") >= 12:
            return "csvlog"
        return "stderr"
    suffixes = [s for s in path.suffixes if s not in (".gz", ".bz2", ".xz")]
    if suffixes and suffixes[-1] == ".csv":
        return "csvlog"
    if suffixes and suffixes[-1] == ".json":
        return "jsonlog"
    return "stderr"


# -- readers --------------------------------------------------------------------------
def _bump(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def read_stderr(lines: Iterable[str], prefix: Prefix, skipped: dict[str, int],
                counts: dict[str, int] | None = None) -> Iterator[Record]:
    """Records of a stderr log. ``counts`` (optional) receives ``matched`` and
    ``unmatched`` line totals, for the caller's wrong-prefix diagnosis."""
    match = prefix.regex.match
    cur: Record | None = None
    parts: list[str] = []
    dropping = False  # inside a record skipped for its timestamp: drop its continuations
    matched = unmatched = 0
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        if line[0] == "\t":
            if cur is not None:
                parts.append(line[1:])
            elif not dropping:
                _bump(skipped, ORPHAN_CONTINUATION)
            continue
        m = match(line)
        if m is None:
            if line[0] == " " and cur is not None:
                parts.append(line)  # a continuation whose tab became spaces (an edited log)
                continue
            unmatched += 1
            _bump(skipped, NO_PREFIX)
            continue
        if cur is not None:
            cur.message = parts[0] if len(parts) == 1 else "\n".join(parts)
            yield cur
            cur = None
        g = m.groupdict()
        ts_text = g.get("ts")
        if ts_text is not None:
            ts = parse_ts(ts_text)
            if ts is None:
                unmatched += 1
                _bump(skipped, BAD_TIMESTAMP)
                dropping = True
                continue
        elif g.get("epoch"):
            ts = float(g["epoch"])
        else:
            ts = None
        matched += 1
        dropping = False
        host = g.get("host")
        if host and "(" in host:
            host = host.split("(", 1)[0]
        cur = Record(ts, g.get("pid"), g.get("session"), g.get("user") or None,
                     g.get("db") or None, g.get("app") or None, host or None,
                     g["level"], "")
        parts = [g["msg"]]
    if cur is not None:
        cur.message = parts[0] if len(parts) == 1 else "\n".join(parts)
        yield cur
    if counts is not None:
        counts["matched"] = counts.get("matched", 0) + matched
        counts["unmatched"] = counts.get("unmatched", 0) + unmatched


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
            unmatched += 1
            _bump(skipped, SHORT_CSV)
            continue
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
    if counts is not None:
        counts["matched"] = counts.get("matched", 0) + matched
        counts["unmatched"] = counts.get("unmatched", 0) + unmatched


def _first(obj: dict, *keys):
    for k in keys:
        v = obj.get(k)
        if v not in (None, ""):
            return v
    return None


def read_jsonlog(lines: Iterable[str], skipped: dict[str, int],
                 counts: dict[str, int] | None = None) -> Iterator[Record]:
    """Records of a jsonlog file (PostgreSQL 15+: one JSON object a line; CloudNativePG's
    wrapper with the fields under ``record`` is read too)."""
    loads = json.loads
    matched = unmatched = 0
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            obj = loads(line)
        except ValueError:
            unmatched += 1
            _bump(skipped, BAD_JSON)
            continue
        if not isinstance(obj, dict):
            unmatched += 1
            _bump(skipped, BAD_JSON)
            continue
        if isinstance(obj.get("record"), dict):
            obj = obj["record"]
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
        yield Record(ts, str(pid) if pid is not None else None,
                     _first(obj, "session_id"), _first(obj, "user", "user_name"),
                     _first(obj, "dbname", "database_name"), _first(obj, "application_name"),
                     _first(obj, "remote_host"), _first(obj, "error_severity") or "LOG",
                     msg, _first(obj, "detail"))
    if counts is not None:
        counts["matched"] = counts.get("matched", 0) + matched
        counts["unmatched"] = counts.get("unmatched", 0) + unmatched
