"""The query-log reader: PostgreSQL logs → :class:`~auditor.facts.workload.WorkloadProfile`.

    profile = read_logs([LogSpec("postgresql.log")])               # format and prefix detected
    profile = read_logs([LogSpec("pg.log.gz", line_prefix="%t [%p]: ")])
    QueryLogCollector([LogSpec("postgresql.csv")]).collect()       # the collector form

The server must log statements with their durations (``log_min_duration_statement = 0``,
or ``log_statement = 'all'`` for statements without durations) and, for the connection
checks, ``log_connections``/``log_disconnections``. Formats: ``stderr`` (with the
server's ``log_line_prefix``, given or detected from the first lines), ``csvlog`` and
``jsonlog``; ``.gz``/``.bz2``/``.xz`` are read transparently. Files are read once, in
the order given, as one stream (a rotated log continues its sessions); memory holds one
record, the open sessions and the profile. How statements, sessions and requests are
counted: :mod:`auditor.collectors.querylog.profile`.

Malformed lines are counted per reason in ``WorkloadProfile.skipped`` and skipped.
Errors (both :class:`~auditor.errors.AuditorError`):

- :class:`~auditor.errors.TargetUnreachable`: a file cannot be opened, decompressed or
  decoded, or its ``log_line_prefix`` cannot be recognised;
- :class:`~auditor.errors.ConfigError`: a bad ``format``, or a file none of whose lines
  match the ``line_prefix`` given (the message says which prefix to set).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from auditor.collectors.querylog.formats import (FORMATS, Record, detect_format,
                                                 open_lines, read_csvlog, read_jsonlog,
                                                 read_stderr, sample)
from auditor.collectors.querylog.prefix import LEVELS, detect_prefix, get_prefix
from auditor.collectors.querylog.profile import ProfileBuilder
from auditor.errors import ConfigError, TargetUnreachable
from auditor.facts.workload import WorkloadProfile

__all__ = ["LogSpec", "QueryLogCollector", "read_logs", "iter_records", "DEFAULT_IDLE_GAP_MS"]

DEFAULT_IDLE_GAP_MS = 1000.0  # rules.yaml PG201 idle_gap_ms
_DETECT_LINES = 200
_SET_PREFIX = ("run `SHOW log_line_prefix;` on the server and give that value as the "
               "log's line_prefix")


@dataclass(frozen=True)
class LogSpec:
    """One log file to read. ``format``: ``auto`` (from the content), ``stderr``,
    ``csvlog`` or ``jsonlog``. ``line_prefix``: the server's ``log_line_prefix``
    (stderr only; None: detected from the first lines)."""
    path: str | os.PathLike
    format: str = "auto"
    line_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.format != "auto" and self.format not in FORMATS:
            raise ConfigError(f"log format {self.format!r} is not one of auto, "
                              f"{', '.join(FORMATS)}")


def _as_spec(item: "LogSpec | str | os.PathLike") -> LogSpec:
    return item if isinstance(item, LogSpec) else LogSpec(item)


def _head_of(line: str) -> str:
    """The prefix part of a line (up to its severity word), for messages: never the
    statement text, which may hold secrets."""
    m = re.search(rf"(?:{LEVELS}):", line)
    head = line[:m.start()] if m else line[:40]
    return head[:80]


def _records(spec: LogSpec, skipped: dict[str, int],
             counts: dict[str, int]) -> tuple[str, str | None, Iterator[Record]]:
    path = Path(spec.path)
    text = sample(path)
    fmt = spec.format if spec.format != "auto" else detect_format(path, text)
    lines = open_lines(path, skipped)
    if fmt == "csvlog":
        return fmt, None, read_csvlog(lines, skipped, counts)
    if fmt == "jsonlog":
        return fmt, None, read_jsonlog(lines, skipped, counts)
    prefix = spec.line_prefix
    if prefix is None:
        first = [ln for ln in text.splitlines()[:_DETECT_LINES * 5] if ln.strip()]
        first = [ln for ln in first if not ln.startswith("\t")][:_DETECT_LINES]
        if first:
            prefix = detect_prefix(first)
            if prefix is None:
                lines.close()
                raise TargetUnreachable(
                    f"cannot read query log {path}: its lines do not match any known "
                    f"log_line_prefix (first line starts {_head_of(first[0])!r}); {_SET_PREFIX}"
                )
        else:
            prefix = ""
    return fmt, prefix, read_stderr(lines, get_prefix(prefix), skipped, counts)


def iter_records(specs: Iterable["LogSpec | str | os.PathLike"],
                 skipped: dict[str, int] | None = None) -> Iterator[Record]:
    """The records of ``specs`` in order (no profile): for tools and benchmarks."""
    skipped = {} if skipped is None else skipped
    for spec in map(_as_spec, specs):
        _fmt, _prefix, recs = _records(spec, skipped, {})
        yield from recs


def read_logs(specs: Iterable["LogSpec | str | os.PathLike"], *,
              idle_gap_ms: float = DEFAULT_IDLE_GAP_MS) -> WorkloadProfile:
    """Read ``specs`` (LogSpec values, or paths read with ``format="auto"``) in one
    streaming pass and return their workload profile.

    ``idle_gap_ms``: outside a transaction, a pause longer than this (ms) between two
    statements of a session starts a new request (default 1000, rules.yaml PG201).
    Raises TargetUnreachable or ConfigError (see the module docstring).
    """
    builder = ProfileBuilder(idle_gap_ms=idle_gap_ms)
    profile = builder.profile
    skipped = profile.skipped
    for spec in map(_as_spec, specs):
        counts: dict[str, int] = {}
        before = profile.statements
        fmt, prefix, recs = _records(spec, skipped, counts)
        feed = builder.feed
        for rec in recs:
            feed(rec)
        profile.sources.append(str(spec.path))
        matched, unmatched = counts.get("matched", 0), counts.get("unmatched", 0)
        if fmt == "stderr" and profile.statements == before and unmatched > matched:
            where = f"{unmatched} of {matched + unmatched} lines of {spec.path}"
            if spec.line_prefix is not None:
                raise ConfigError(
                    f"{where} do not match log_line_prefix {spec.line_prefix!r} and no "
                    f"statement was read; {_SET_PREFIX}")
            raise TargetUnreachable(
                f"{where} do not match the detected log_line_prefix {prefix!r} and no "
                f"statement was read; {_SET_PREFIX}")
    return builder.finish()


class QueryLogCollector:
    """Collector for the ``workload`` evidence kind: reads PostgreSQL query logs.

    ``paths``: the logs (LogSpec, or plain paths). ``idle_gap_ms``: see
    :func:`read_logs`. Nothing is opened before :meth:`collect`.
    """
    kind = "workload"

    def __init__(self, paths: "list[LogSpec | str | os.PathLike]", *,
                 idle_gap_ms: float = DEFAULT_IDLE_GAP_MS) -> None:
        self.specs = [_as_spec(p) for p in paths]
        self.idle_gap_ms = idle_gap_ms

    def describe(self) -> str:
        parts = []
        for s in self.specs:
            bits = [s.format]
            if s.line_prefix is not None:
                bits.append(f"log_line_prefix {s.line_prefix!r}")
            parts.append(f"{s.path} ({', '.join(bits)})")
        return "PostgreSQL query logs: " + "; ".join(parts) if parts else "no query logs"

    def collect(self) -> WorkloadProfile:
        """Read the logs; raises TargetUnreachable or ConfigError (see read_logs)."""
        if not self.specs:
            raise ConfigError("no query log given")
        return read_logs(self.specs, idle_gap_ms=self.idle_gap_ms)
