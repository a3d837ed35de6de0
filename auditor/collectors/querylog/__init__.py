"""The query-log reader: PostgreSQL logs → :class:`~auditor.facts.workload.WorkloadProfile`.

    profile = read_logs([LogSpec("postgresql.log")])               # format and prefix detected
    profile = read_logs([LogSpec("pg.log.gz", line_prefix="%t [%p]: ")])
    QueryLogCollector([LogSpec("postgresql.csv")]).collect()       # the collector form

The server must log statements with their durations (``log_min_duration_statement = 0``,
or ``log_statement = 'all'`` for statements without durations) and, for the connection
checks, ``log_connections``/``log_disconnections``. Formats (detected per file, or
given): ``stderr`` with the server's ``log_line_prefix`` (given or detected), Amazon
``rds``, ``syslog``, ``csvlog``, ``jsonlog``, Google ``cloudsql`` and CloudNativePG
(``cnpg``) JSON lines; a PgBouncer log is recognised and counted, not misread (see
:mod:`auditor.collectors.querylog.formats`). ``.gz``/``.bz2``/``.xz``/``.zst`` are read
transparently, ``-`` is standard input (:mod:`auditor.collectors.querylog.inputs`).
Files are read once, in the order given, as one stream (a rotated log continues its
sessions); memory holds one record, the open sessions and the profile. How statements,
sessions and requests are counted: :mod:`auditor.collectors.querylog.profile`.

Malformed lines are counted per reason in ``WorkloadProfile.skipped`` and skipped.
Errors (both :class:`~auditor.errors.AuditorError`):

- :class:`~auditor.errors.TargetUnreachable`: a file cannot be opened, decompressed or
  decoded, or its ``log_line_prefix`` cannot be recognised (the message names what the
  lines lack and the prefix to set);
- :class:`~auditor.errors.ConfigError`: a bad ``format``, or a file none of whose lines
  match the ``line_prefix`` given (the message says which prefix to set).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

from auditor.collectors.querylog.formats import FORMATS, LogFile, Record, open_log
from auditor.collectors.querylog.parallel import Progress, ReadStats, read_profile
from auditor.errors import ConfigError
from auditor.facts.workload import Detection, WorkloadProfile

__all__ = ["LogSpec", "QueryLogCollector", "read_logs", "iter_records", "DEFAULT_IDLE_GAP_MS"]

DEFAULT_IDLE_GAP_MS = 1000.0  # rules.yaml PG201 idle_gap_ms


@dataclass(frozen=True)
class LogSpec:
    """One log file to read (``-``: standard input). ``format``: ``auto`` (from the
    content) or one of :data:`~auditor.collectors.querylog.formats.FORMATS`.
    ``line_prefix``: the server's ``log_line_prefix`` (stderr, rds, syslog, cloudsql;
    None: detected from the first lines)."""
    path: str | os.PathLike
    format: str = "auto"
    line_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.format != "auto" and self.format not in FORMATS:
            raise ConfigError(f"log format {self.format!r} is not one of auto, "
                              f"{', '.join(FORMATS)}")


def _as_spec(item: "LogSpec | str | os.PathLike") -> LogSpec:
    return item if isinstance(item, LogSpec) else LogSpec(item)


def _open(spec: LogSpec, skipped: dict[str, int]) -> LogFile:
    return open_log(spec.path, spec.format, spec.line_prefix, skipped)


def _records(spec: LogSpec, skipped: dict[str, int],
             counts: dict[str, int]) -> tuple[str, str | None, Iterator[Record]]:
    """(format, prefix, records) of one spec; ``counts`` receives matched/unmatched."""
    f = _open(spec, skipped)
    return f.format, f.prefix, _counting(f, counts)


def _counting(f: LogFile, counts: dict[str, int]) -> Iterator[Record]:
    yield from f.records
    counts.update(f.counts)


def iter_records(specs: Iterable["LogSpec | str | os.PathLike"],
                 skipped: dict[str, int] | None = None) -> Iterator[Record]:
    """The records of ``specs`` in order (no profile): for tools and benchmarks."""
    skipped = {} if skipped is None else skipped
    for spec in map(_as_spec, specs):
        yield from _open(spec, skipped).records


def read_logs(specs: Iterable["LogSpec | str | os.PathLike"], *,
              idle_gap_ms: float | None = None, files: list[dict] | None = None,
              detection: Detection | None = None, keep_requests: bool = False,
              jobs: int | None = None, progress: Progress | None = None,
              stats: ReadStats | None = None, **chunking) -> WorkloadProfile:
    """Read ``specs`` (LogSpec values, or paths read with ``format="auto"``) in one
    streaming pass and return their workload profile.

    ``detection``: the thresholds of the detectors that run while the log is read
    (:class:`~auditor.facts.workload.Detection`, from rules.yaml PG201/PG202).
    ``idle_gap_ms``: outside a transaction, a pause longer than this (ms) between two
    statements of a session starts a new request (overrides ``detection``'s, default
    1000, rules.yaml PG201). ``keep_requests``: also keep every request in
    ``WorkloadProfile.requests`` (memory then grows with the log; for tests and small
    tools). ``jobs``: worker processes for files over 32 MB (None: every core; 1: this
    process only). ``progress``: called with (bytes read, bytes in all or None,
    statements). ``stats``: receives a :class:`~auditor.collectors.querylog.parallel.
    ReadStats`. ``files``: if given, receives one :meth:`LogFile.info
    <auditor.collectors.querylog.formats.LogFile.info>` dict per file (format and prefix
    used, lines matched, notes). ``chunking``: ``chunk_bytes``/``min_parallel_bytes``
    (see :func:`~auditor.collectors.querylog.parallel.read_profile`). Raises
    TargetUnreachable or ConfigError (see the module docstring).
    """
    det = detection or Detection()
    if idle_gap_ms is not None:
        det = Detection(**{**det.__dict__, "idle_gap_ms": float(idle_gap_ms)})
    return read_profile(specs, detection=det, keep_requests=keep_requests, jobs=jobs,
                        progress=progress, stats=stats, files=files, **chunking)


class QueryLogCollector:
    """Collector for the ``workload`` evidence kind: reads PostgreSQL query logs.

    ``paths``: the logs (LogSpec, or plain paths). ``detection``: the detectors'
    thresholds, e.g. ``Detection.from_params(pg201_params, pg202_params)``;
    ``idle_gap_ms`` overrides its idle gap. ``jobs``/``progress``: see
    :func:`read_logs`. Nothing is opened before :meth:`collect`.
    """
    kind = "workload"

    def __init__(self, paths: "list[LogSpec | str | os.PathLike]", *,
                 idle_gap_ms: float | None = None, detection: Detection | None = None,
                 jobs: int | None = None, progress: Progress | None = None) -> None:
        self.specs = [_as_spec(p) for p in paths]
        det = detection or Detection()
        if idle_gap_ms is not None:
            det = Detection(**{**det.__dict__, "idle_gap_ms": float(idle_gap_ms)})
        self.detection = det
        self.idle_gap_ms = det.idle_gap_ms
        self.jobs = jobs
        self.progress = progress
        self.stats: ReadStats | None = None

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
        self.stats = ReadStats()
        return read_logs(self.specs, detection=self.detection, jobs=self.jobs,
                         progress=self.progress, stats=self.stats)
