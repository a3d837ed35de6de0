"""``log_line_prefix`` → a regular expression over stderr log lines; prefix detection;
what a prefix lacks, said as a fix; the live server's prefix; log timestamps → epoch
seconds.

Supported escapes (PostgreSQL 17 docs, "What to Log"): %a %u %d %r %h %b %p %P %t %m
%n %i %e %c %l %s %v %x %q %Q %%, with optional padding (``%-10u``, ``%10p``).
Everything else is literal text. ``%q`` makes the rest of the prefix optional (it is
empty for non-session processes such as the checkpointer).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timezone

# The severity words that end the prefix (English lc_messages, as in the log).
LEVELS = (
    "DEBUG5|DEBUG4|DEBUG3|DEBUG2|DEBUG1|DEBUG|INFO|NOTICE|WARNING|ERROR|LOG|FATAL|PANIC|"
    "DETAIL|HINT|QUERY|CONTEXT|LOCATION|STATEMENT"
)

_TS_S = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: [A-Za-z0-9+-]+)?"
_TS_MS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+(?: [A-Za-z0-9+-]+)?"

# escape -> (group name or None, pattern)
_ESCAPES: dict[str, tuple[str | None, str]] = {
    "a": ("app", r".*?"),
    "u": ("user", r".*?"),
    "d": ("db", r".*?"),
    "r": ("host", r"[^\s(]*?(?:\(\d*\))?"),
    "h": ("host", r".*?"),
    "b": (None, r".*?"),
    "p": ("pid", r"\d+"),
    "P": (None, r"\d*"),
    "t": ("ts", _TS_S),
    "m": ("ts", _TS_MS),
    "n": ("epoch", r"\d+(?:\.\d+)?"),
    "i": (None, r".*?"),
    "e": (None, r"[0-9A-Z]{5}"),
    "c": ("session", r"[0-9a-f]+\.[0-9a-f]+"),
    "l": (None, r"\d+"),
    "s": (None, _TS_S),
    "v": (None, r"[\d/-]*"),
    "x": (None, r"\d*"),
    "Q": (None, r"-?\d+"),
}

# Prefixes seen in the wild, tried in order when none is given (the most specific first).
KNOWN_PREFIXES: tuple[str, ...] = (
    "%m [%p] %q%u@%d ",  # Debian / Ubuntu packages
    "%t [%p] %q%u@%d ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",  # pgbadger's recommendation
    "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%t [%p]: [%l-1] db=%d,user=%u,app=%a,client=%h ",
    "%t [%p]: db=%d,user=%u,app=%a,client=%h ",
    "%t [%p]: [%l-1] user=%u,db=%d ",
    "%m [%p] user=%u,db=%d,app=%a,client=%h ",
    "%m [%p] user=%u,db=%d ",
    "%t:%r:%u@%d:[%p]:",  # Amazon RDS
    "%m:%r:%u@%d:[%p]:",
    "%t:%h:%u@%d:[%p]:",
    "%m %c %u@%d ",
    "%m [%p] %c %q%u@%d ",
    "%m [%p] ",  # PostgreSQL's default since 10
    "%t [%p]: [%l-1] ",
    "%t [%p]: ",
    "%t [%p] ",
    "%m ",
    "%t ",
    "",
)


#: The prefix the auditor asks for when a log's prefix lacks what it needs: a timestamp
#: with milliseconds, the pid (sessions), and the user and database (Debian's default).
RECOMMENDED_PREFIX = "%m [%p] %q%u@%d "

# what a prefix must carry, and why (said to the user when it is missing)
_NEEDS = (
    (("pid", "session"), "no pid (%p) or session id (%c), so sessions cannot be told apart "
                         "(the whole log reads as one session, and per-request checks such "
                         "as N+1 cannot be trusted)"),
    (("ts", "epoch"), "no timestamp (%m or %t), so statements cannot be placed in time "
                      "(requests are not cut at idle gaps, connection rates are unknown)"),
    (("user", "db"), "no user (%u) or database (%d), so requests cannot be told apart by "
                     "application"),
)


@dataclass(frozen=True)
class Prefix:
    """A compiled ``log_line_prefix``. ``regex`` matches a whole first line of a log
    record; its groups: ts/epoch, pid, session, user, db, app, host (those the prefix
    has), level and msg."""
    text: str
    regex: re.Pattern

    def match(self, line: str):
        return self.regex.match(line)


def _escape_pattern(text: str, seen: set[str]) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%" or i + 1 >= len(text):
            out.append(re.escape(ch))
            i += 1
            continue
        j = i + 1
        pad = re.match(r"-?\d+", text[j:])
        if pad:
            j += pad.end()
        esc = text[j] if j < len(text) else ""
        if esc == "%":
            out.append("%")
        elif esc in _ESCAPES:
            name, pat = _ESCAPES[esc]
            if name and name not in seen:
                seen.add(name)
                pat = f"(?P<{name}>{pat})"
            else:
                pat = f"(?:{pat})"
            out.append(r" *" + pat + r" *" if pad else pat)
        else:  # unknown escape: PostgreSQL prints nothing for it
            pass
        i = j + 1
    return "".join(out)


def compile_prefix(text: str) -> Prefix:
    """Compile a ``log_line_prefix`` value (as ``SHOW log_line_prefix`` prints it)."""
    seen: set[str] = set()
    head, sep, tail = text.partition("%q")
    pattern = _escape_pattern(head, seen)
    if sep:
        pattern += "(?:" + _escape_pattern(tail, seen) + ")?"
    pattern = "^" + pattern + rf"(?P<level>{LEVELS}):\s+(?P<msg>.*)$"
    return Prefix(text, re.compile(pattern, re.S))


def fields_of(text: str) -> set[str]:
    """The record fields a ``log_line_prefix`` carries: a subset of ts, epoch, pid,
    session, user, db, app, host (``%%`` and unknown escapes carry none)."""
    found: set[str] = set()
    i = 0
    while i < len(text) - 1:
        if text[i] != "%":
            i += 1
            continue
        j = i + 1
        while j < len(text) and (text[j].isdigit() or text[j] == "-"):
            j += 1
        esc = text[j] if j < len(text) else ""
        if esc in _ESCAPES and _ESCAPES[esc][0]:
            found.add(_ESCAPES[esc][0])
        i = j + 1
    return found


def missing_fields(text: str) -> list[str]:
    """What a ``log_line_prefix`` lacks that the auditor needs, each with its
    consequence (empty when nothing essential is missing)."""
    have = fields_of(text)
    return [why for names, why in _NEEDS if not have.intersection(names)]


def set_prefix_advice() -> str:
    """The fix to print: which setting to change, or which value to give the auditor."""
    show = "run `SHOW log_line_prefix;` on the server and give that value (--prefix, or "
    show += "line_prefix in auditor.yaml)"
    return (f"{show}; or set log_line_prefix = '{RECOMMENDED_PREFIX}' in postgresql.conf "
            "and reload (SELECT pg_reload_conf())")


def prefix_from_server(dsn: str, *, connect_timeout_s: int = 5) -> str:
    """The live server's ``log_line_prefix`` (``SHOW log_line_prefix``), read in the
    auditor's read-only session (auditor.collectors.postgres). Raises TargetUnreachable
    when the server cannot be reached, ConfigError for a malformed DSN."""
    from auditor.collectors.postgres import PostgresCollector
    with PostgresCollector(dsn, connect_timeout_s=connect_timeout_s).session() as conn:
        row = conn.execute("SHOW log_line_prefix").fetchone()
    return row[0] if row else ""


_COMPILED: dict[str, Prefix] = {}


def get_prefix(text: str) -> Prefix:
    if text not in _COMPILED:
        _COMPILED[text] = compile_prefix(text)
    return _COMPILED[text]


# -- detection ------------------------------------------------------------------------
_LEVEL_AT = re.compile(rf"(?:^|(?<=[\s:\]]))(?:{LEVELS}):\s")
_INFER = re.compile(
    r"""
      (?P<m>\d{4}-\d\d-\d\d\ \d\d:\d\d:\d\d\.\d+(?:\ [A-Za-z0-9+-]+)?)
    | (?P<t>\d{4}-\d\d-\d\d\ \d\d:\d\d:\d\d(?:\ [A-Za-z0-9+-]+)?)
    | (?P<n>\b\d{9,11}\.\d{3}\b)
    | (?P<kv>(?P<key>[A-Za-z_]+)=(?P<val>\[[^\]\s]*\]|[^,\s\]]*))
    | (?P<at>[^\s:@,\[\]|]*@[^\s:@,\[\]|]*)
    | \[(?P<line>\d+-\d+)\]
    | (?P<ip>(?:\b\d{1,3}(?:\.\d{1,3}){3}\b|\[local\])(?P<port>\(\d*\))?)
    | \[(?P<num>\d+)(?=[\]|,:])
    | (?P<sess>\b[0-9a-f]{6,}\.[0-9a-f]{1,8}\b)
    | (?P<vx>\b\d+/\d+\b)
    | (?P<state>\b(?=[0-9A-Z]{5}\b)(?=[0-9]*[A-Z])(?=[A-Z]*[0-9])[0-9A-Z]{5}\b|\b00000\b)
    | (?P<digits>\b\d+\b)
    """,
    re.X,
)
_KEYS = {
    "user": "%u", "usr": "%u", "u": "%u", "db": "%d", "database": "%d", "dbname": "%d",
    "app": "%a", "appli": "%a", "application": "%a", "application_name": "%a",
    "client": "%h", "host": "%h", "remote": "%h", "ip": "%h", "queryid": "%Q", "query_id": "%Q",
    "session": "%c", "pid": "%p", "xid": "%x", "txid": "%x", "vxid": "%v",
}


def infer_prefix(line: str) -> str | None:
    """Guess a ``log_line_prefix`` from one log line (the text before its severity word):
    timestamps (%m, %t, %n), ``[pid`` (%p), ``[%l-1]``, ``key=value`` pairs with
    well-known keys, ``user@db``, client addresses (%r with a port, else %h), session
    ids (%c), vxids (%v), SQLSTATEs (%e) become
    escapes, other numbers ``%l`` (any digits); the rest stays literal. None if no
    severity word."""
    m = _LEVEL_AT.search(line)
    if not m:
        return None
    head = line[:m.start()]
    out, pos, have_pid = [], 0, False
    for t in _INFER.finditer(head):
        out.append(head[pos:t.start()].replace("%", "%%"))
        pos = t.end()
        if t.group("m"):
            out.append("%m")
        elif t.group("t"):
            out.append("%t")
        elif t.group("kv"):
            esc = _KEYS.get(t.group("key").lower())
            out.append(f"{t.group('key')}={esc}" if esc else t.group().replace("%", "%%"))
        elif t.group("at"):
            out.append("%u@%d")
        elif t.group("line"):
            out.append("[%l-" + t.group("line").split("-")[1] + "]")
        elif t.group("num"):
            out.append("[%x" if have_pid else "[%p")
            have_pid = True
        elif t.group("sess"):
            out.append("%c")
        elif t.group("n"):
            out.append("%n")
        elif t.group("ip"):
            out.append("%r" if t.group("port") else "%h")
        elif t.group("vx"):
            out.append("%v")
        elif t.group("state"):
            out.append("%e")
        elif t.group("digits"):
            out.append("%l")
    out.append(head[pos:].replace("%", "%%"))
    return "".join(out)


_TOKEN = re.compile(r"%%|%-?\d*[a-zA-Z]|\w+|[^\w%]+")


def _generalize(templates: list[str]) -> str | None:
    """One template from inferred ones that differ only in words (a command tag, a
    backend type): those positions become ``%i`` (any text). None if they differ in
    their punctuation or escapes."""
    toks = [_TOKEN.findall(t) for t in templates]
    if not toks or any(len(t) != len(toks[0]) for t in toks):
        return None
    out = []
    for column in zip(*toks):
        if all(c == column[0] for c in column):
            out.append(column[0])
        elif all(c[0] != "%" and (c[0].isalnum() or c[0] == "_") for c in column):
            out.append("%i")
        else:
            return None
    return "".join(out)


def detect_prefix(lines: list[str], *, min_share: float = 0.8) -> str | None:
    """The ``log_line_prefix`` that matches most of ``lines`` (first lines of records,
    continuation lines excluded), from :data:`KNOWN_PREFIXES`, prefixes inferred from
    the lines (:func:`infer_prefix`) and, when those differ only in words, their
    generalisation; None if none matches at least ``min_share`` of them."""
    lines = [ln for ln in lines if ln and not ln.startswith("\t")]
    if not lines:
        return None
    candidates = list(KNOWN_PREFIXES)
    inferred: list[str] = []
    for ln in lines[:50]:
        guess = infer_prefix(ln)
        if guess is not None:
            inferred.append(guess)
    groups: dict[tuple[str, ...], list[str]] = {}  # by shape: words masked
    for guess in inferred:
        shape = tuple("w" if (t[0].isalnum() or t[0] == "_") else t
                      for t in _TOKEN.findall(guess))
        groups.setdefault(shape, []).append(guess)
    for group in sorted(groups.values(), key=len):
        general = _generalize(group) if len(set(group)) > 1 else None
        if general is not None and general not in candidates:
            candidates.insert(0, general)
    for guess in dict.fromkeys(reversed(inferred[:20])):
        if guess not in candidates:
            candidates.insert(0, guess)
    known = set(KNOWN_PREFIXES)
    best, best_key = None, (0, 0, False)
    for cand in candidates:
        try:
            rx = get_prefix(cand).regex
        except re.error:
            continue
        score = sum(1 for ln in lines if rx.match(ln))
        # a tie goes to the prefix capturing more fields, then to a well-known one
        key = (score, len(fields_of(cand)), cand in known)
        if score and key > best_key:
            best, best_key = cand, key
    if best is None or best_key[0] < min_share * len(lines):
        return None
    return best


# -- timestamps -----------------------------------------------------------------------
_TZ_HOURS = {
    "UTC": 0, "GMT": 0, "Z": 0, "UT": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2,
    "MET": 1, "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "IST": 5.5, "JST": 9, "KST": 9,
    "HKT": 8, "SGT": 8, "AWST": 8, "ACST": 9.5, "AEST": 10, "AEDT": 11, "NZST": 12,
    "NZDT": 13, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6,
    "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10, "BRT": -3, "ART": -3,
}
_SECOND_CACHE: dict[str, float] = {}


def _tz_offset_s(tz: str) -> float:
    if tz in _TZ_HOURS:
        return _TZ_HOURS[tz] * 3600
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)?", tz)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return sign * (int(m.group(2)) * 3600 + int(m.group(3) or 0) * 60)
    return 0.0  # unknown abbreviation: read as UTC (relative times stay right)


def parse_ts(text: str) -> float | None:
    """``2024-01-02 03:04:05.678 UTC`` (``%m``, ``%t``, csvlog, jsonlog) → epoch seconds.
    None when ``text`` is not such a timestamp."""
    if len(text) < 19 or text[4] != "-" or text[13] != ":":
        return None
    frac = 0.0
    if len(text) > 19 and text[19] == ".":
        end = 20
        while end < len(text) and text[end].isdigit():
            end += 1
        frac = float(text[19:end])
        key = text[:19] + text[end:]
    else:
        key = text
    base = _SECOND_CACHE.get(key)
    if base is None:
        try:
            y, mo, d = int(key[0:4]), int(key[5:7]), int(key[8:10])
            h, mi, s = int(key[11:13]), int(key[14:16]), int(key[17:19])
            base = float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))
        except ValueError:
            return None
        tz = key[19:].strip()
        if tz:
            base -= _tz_offset_s(tz)
        if len(_SECOND_CACHE) > 100_000:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[key] = base
    return base + frac


def format_ts(epoch: float) -> str:
    """Epoch seconds → ``2024-01-02T03:04:05.678Z``."""
    dt = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


__all__ = ["Prefix", "compile_prefix", "get_prefix", "detect_prefix", "infer_prefix",
           "fields_of", "missing_fields", "set_prefix_advice", "prefix_from_server",
           "parse_ts", "format_ts", "KNOWN_PREFIXES", "LEVELS", "RECOMMENDED_PREFIX"]
