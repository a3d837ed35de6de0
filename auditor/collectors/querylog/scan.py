"""The compiled stderr scanner (``auditor/_speedups.c``) from Python.

The C module reads stderr log text blocks into records with the same rules as
:func:`auditor.collectors.querylog.formats.read_stderr`, and matches the
``log_line_prefix`` with a small backtracking matcher over the same atoms as the
regular expression :func:`auditor.collectors.querylog.prefix.compile_prefix` builds,
tried in the same order. :func:`program_of` translates a prefix into that matcher's
program, escape by escape, from the very patterns in ``prefix._ESCAPES``: an escape
whose pattern the matcher does not know makes :func:`scanner_for` return None, and
the caller reads the log with the regular expression instead (never a different
result, only a slower one).

The extension is built when the package is installed (``hatch_build.py``; it needs a
C compiler and the Python headers). Without it, or with ``AUDITOR_PURE_PYTHON=1`` in
the environment, everything runs in Python: same results, in about 1.8 times the
time on a large log (bench/README.md).
"""

from __future__ import annotations

import os
from typing import Callable

from auditor.collectors.querylog.inputs import MAX_LINE_CHARS
from auditor.collectors.querylog.prefix import _ESCAPES, LEVELS, Prefix, parse_ts

try:  # built by hatch_build.py at install time; optional
    from auditor import _speedups as _scan
except ImportError:  # pragma: no cover - depends on the install
    _scan = None

__all__ = ["available", "program_of", "scanner_for", "SLOTS"]

#: the capture slots of the C matcher, in its order (the regex's group names)
SLOTS = ("ts", "epoch", "pid", "session", "user", "db", "app", "host")

# prefix._ESCAPES pattern -> the C matcher's atom
_ATOMS = {
    r".*?": "ANY",
    r"[^\s(]*?(?:\(\d*\))?": "HOST_R",
    r"\d+": "DIGITS1",
    r"\d*": "DIGITS0",
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: [A-Za-z0-9+-]+)?": "TS_S",
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+(?: [A-Za-z0-9+-]+)?": "TS_MS",
    r"\d+(?:\.\d+)?": "EPOCH",
    r"[0-9A-Z]{5}": "SQLSTATE",
    r"[0-9a-f]+\.[0-9a-f]+": "SESSION",
    r"[\d/-]*": "VXID",
    r"-?\d+": "QID",
}


def available() -> bool:
    """Whether the compiled scanner is installed and not turned off
    (``AUDITOR_PURE_PYTHON=1``)."""
    return _scan is not None and os.environ.get("AUDITOR_PURE_PYTHON", "") in ("", "0")


class _Unsupported(Exception):
    pass


def _ops(text: str, seen: set[str], out: list[tuple]) -> None:
    """Append the program of ``text`` (a prefix without ``%q``) to ``out``: the same
    walk as ``prefix._escape_pattern``."""
    lit: list[str] = []

    def flush() -> None:
        if lit:
            out.append((_scan.LIT, "".join(lit), -1, 0))
            lit.clear()

    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%" or i + 1 >= len(text):
            lit.append(ch)
            i += 1
            continue
        j = i + 1
        k = j + 1 if text[j] == "-" else j
        while k < len(text) and text[k].isdecimal():  # re's \d
            k += 1
        pad = k > j + (1 if text[j] == "-" else 0)  # re.match(r"-?\d+") matched
        if pad:
            j = k
        esc = text[j] if j < len(text) else ""
        if esc == "%":
            lit.append("%")
        elif esc in _ESCAPES:
            name, pat = _ESCAPES[esc]
            atom = _ATOMS.get(pat)
            if atom is None:
                raise _Unsupported(pat)
            slot = -1
            if name and name not in seen:
                seen.add(name)
                slot = SLOTS.index(name)
            flush()
            if pad:
                out.append((_scan.SPACES, None, -1, 0))
            out.append((getattr(_scan, atom), None, slot, 0))
            if pad:
                out.append((_scan.SPACES, None, -1, 0))
        i = j + 1
    flush()


def program_of(text: str) -> list[tuple] | None:
    """The C matcher's program for the ``log_line_prefix`` ``text``: a list of
    ``(op, literal or None, slot or -1, jump)``; None when the scanner is not
    installed or the prefix uses a pattern it does not know."""
    if _scan is None:
        return None
    seen: set[str] = set()
    out: list[tuple] = []
    head, sep, tail = text.partition("%q")
    try:
        _ops(head, seen, out)
        if sep:
            at = len(out)
            out.append(None)  # the OPT op, once its jump is known
            _ops(tail, seen, out)
            out.append((_scan.OPT_END, None, -1, 0))
            out[at] = (_scan.OPT, None, -1, len(out))
    except _Unsupported:
        return None
    return out


def scanner_for(prefix: Prefix, skipped: dict[str, int], reasons: tuple[str, ...],
                parse: Callable[[str], "float | None"] = parse_ts,
                max_chars: int = MAX_LINE_CHARS):
    """A new ``Scanner`` for ``prefix`` that counts skipped lines in ``skipped`` under
    ``reasons`` (no prefix, orphan continuation, bad timestamp, record longer than
    ``max_chars``); None when the compiled scanner is unavailable or cannot match this
    prefix exactly."""
    if not available():
        return None
    program = program_of(prefix.text)
    if program is None:
        return None
    return _scan.Scanner(program, tuple(LEVELS.split("|")), parse, skipped, tuple(reasons),
                         max_chars)
