"""``auditor logs FILE...``: the workload summary of PostgreSQL query logs, alone.

    auditor logs postgresql.log                       # format and prefix detected
    auditor logs rds.log.bz2 --format rds --json
    zcat pg.log.gz | auditor logs - --prefix '%t [%p]: '
    auditor logs pg.log --postgres postgresql://...   # prefix from SHOW log_line_prefix

It prints: statements, total and mean duration (ms), distinct fingerprints, sessions
(those that ran statements), connections (with the busiest second), the top
fingerprints by total time and by calls (normalized SQL, calls, total ms, mean ms, p95
ms when the profile has it), lines skipped with the reason for each kind, and what each
file was read as (format, log_line_prefix, notes). ``--json`` prints the same as one
JSON object (:func:`summarize`). Exit codes: 0, 2 for a file that cannot be read (the
message says why and what to set), 3 for an internal error.

Wiring (auditor/cli.py): ``logs_command.register(app)``.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from auditor.collectors.querylog.prefix import format_ts
from auditor.facts.workload import WorkloadProfile
from auditor.redact import redact_obj
from auditor.redact_sql import mask_examples

__all__ = ["summarize", "render", "run", "register", "SUMMARY_VERSION"]

SUMMARY_VERSION = 1
DEFAULT_TOP = 10


def _sessions(profile: WorkloadProfile) -> int:
    """Sessions that ran statements (a count the profile keeps, else from requests)."""
    n = getattr(profile, "sessions", None)
    if isinstance(n, int):
        return n
    return len({r.session for r in getattr(profile, "requests", ())})


def _ts(epoch: float | None) -> str | None:
    return format_ts(epoch) if epoch is not None else None


def _fp_row(st: Any) -> dict:
    p95 = getattr(st, "p95_ms", None)
    return {"fingerprint": st.fingerprint, "normalized": st.normalized,  # masked in summarize
            "calls": st.calls, "total_ms": round(st.total_ms, 3),
            "mean_ms": round(st.mean_ms, 3), "max_ms": round(st.max_ms, 3),
            "p95_ms": round(p95, 3) if isinstance(p95, (int, float)) else None}


def summarize(profile: WorkloadProfile, files: list[dict] | None = None, *,
              top: int = DEFAULT_TOP) -> dict:
    """The summary as a JSON-ready dict (durations in ms, times ISO 8601 UTC):
    ``statements``, ``total_ms``, ``mean_ms``, ``fingerprints``, ``sessions``,
    ``connections`` {connections, disconnections, peak_per_second, per_second},
    ``first_ts``/``last_ts``, ``top_by_total_time`` and ``top_by_calls`` (lists of
    {fingerprint, normalized, calls, total_ms, mean_ms, max_ms, p95_ms}), ``skipped``
    {reason: lines} with ``skipped_lines``, ``files`` (format, prefix, notes per file)
    and ``notes``. Secrets are masked (auditor.redact_sql.mask_examples: literals a
    statement the normaliser leaves whole binds to secret-named columns; then
    auditor.redact.redact_obj)."""
    fps = list(profile.fingerprints.values())
    by_time = sorted(fps, key=lambda s: (-s.total_ms, -s.calls, s.normalized))[:top]
    by_calls = sorted(fps, key=lambda s: (-s.calls, -s.total_ms, s.normalized))[:top]
    timed = sum(1 for s in fps if s.total_ms) if fps else 0
    conns = profile.connections
    notes: list[str] = []
    for f in files or ():
        notes.extend(f"{f['path']}: {n}" for n in f.get("notes", ()))
    if profile.statements == 0:
        from auditor.facts.workload import NO_STATEMENTS
        notes.append(NO_STATEMENTS)
    elif profile.total_ms == 0 and not timed:
        notes.append("no statement has a duration: log them with "
                     "log_min_duration_statement = 0 (log_statement = 'all' logs no durations)")
    return redact_obj(mask_examples({
        "version": SUMMARY_VERSION,
        "statements": profile.statements,
        "total_ms": round(profile.total_ms, 3),
        "mean_ms": round(profile.total_ms / profile.statements, 3) if profile.statements else 0.0,
        "fingerprints": len(fps),
        "sessions": _sessions(profile),
        "connections": {
            "logged": conns.logged, "connections": conns.connections,
            "disconnections": conns.disconnections, "peak_per_second": conns.peak_per_second,
            "per_second": round(conns.per_second, 3),
        },
        "first_ts": _ts(profile.first_ts), "last_ts": _ts(profile.last_ts),
        "top_by_total_time": [_fp_row(s) for s in by_time],
        "top_by_calls": [_fp_row(s) for s in by_calls],
        "skipped": dict(sorted(profile.skipped.items(), key=lambda kv: -kv[1])),
        "skipped_lines": sum(profile.skipped.values()),
        "files": list(files or ()),
        "notes": notes,
    }))


def _sql_line(text: str, width: int = 160) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def render(summary: dict, console) -> None:
    """Print ``summary`` (from :func:`summarize`) on a rich Console."""
    from rich.table import Table
    s = summary
    out = console.print
    for f in s["files"]:
        bits = [f["format"]]
        if f.get("line_prefix") is not None:
            bits.append(f"log_line_prefix {f['line_prefix']!r}")
        out(f"{f['path']}: {', '.join(bits)}", markup=False, highlight=False, soft_wrap=True)
        pgb = f.get("pgbouncer")
        if pgb:
            out(f"  PgBouncer: {pgb['client_logins']:,} client logins over "
                f"{pgb['server_connections']:,} server connections", markup=False)
    c = s["connections"]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column(justify="right")
    facts.add_row("statements", f"{s['statements']:,}")
    facts.add_row("total duration", f"{s['total_ms']:,.3f} ms")
    facts.add_row("mean duration", f"{s['mean_ms']:,.3f} ms")
    facts.add_row("distinct fingerprints", f"{s['fingerprints']:,}")
    facts.add_row("sessions", f"{s['sessions']:,}")
    facts.add_row("connections", (f"{c['connections']:,} (busiest second: {c['peak_per_second']:,})"
                                  if c["logged"] else "not logged (log_connections = off)"))
    if s["first_ts"]:
        facts.add_row("span", f"{s['first_ts']} .. {s['last_ts']}")
    out(facts)
    show_p95 = any(r["p95_ms"] is not None for r in s["top_by_total_time"] + s["top_by_calls"])
    cols = ["calls", "total ms", "mean ms"] + (["p95 ms"] if show_p95 else [])
    for title, key in (("Top fingerprints by total time", "top_by_total_time"),
                       ("Top fingerprints by calls", "top_by_calls")):
        rows = s[key]
        if not rows:
            continue
        out("")
        out(title, style="bold", markup=False, highlight=False)
        # one line per fingerprint (the terminal wraps; grep and copy keep working)
        out("".join(f"{c:>12}" for c in cols) + "  normalized SQL", markup=False,
            highlight=False, soft_wrap=True, style="dim")
        for r in rows:
            cells = [f"{r['calls']:,}", f"{r['total_ms']:,.3f}", f"{r['mean_ms']:,.3f}"]
            if show_p95:
                cells.append(f"{r['p95_ms']:,.3f}" if r["p95_ms"] is not None else "")
            out("".join(f"{c:>12}" for c in cells) + "  " + _sql_line(r["normalized"]),
                markup=False, highlight=False, soft_wrap=True)
    out("")
    if s["skipped"]:
        out(f"Lines skipped ({s['skipped_lines']:,})", style="bold", markup=False,
            highlight=False)
        for reason, n in s["skipped"].items():
            out(f"{n:>12,}  {reason}", markup=False, highlight=False, soft_wrap=True)
    else:
        out("lines skipped: none", markup=False)
    for n in s["notes"]:
        out(f"note: {n}", markup=False, highlight=False, soft_wrap=True)


def run(paths: list[str], *, fmt: str = "auto", prefix: str | None = None,
        as_json: bool = False, top: int = DEFAULT_TOP, dsn: str | None = None,
        jobs: int | None = None, console=None) -> int:
    """Read ``paths`` and print the summary (text, or JSON with ``as_json``) on
    ``console`` (stdout). ``dsn``: read the prefix from that server when none is given.
    ``jobs``: worker processes for large plain files (default: all cores). A progress
    bar (bytes, statements/s) is drawn on stderr when it is a TTY.
    Returns 0; raises ConfigError / TargetUnreachable for the CLI to report."""
    from rich.console import Console

    from auditor.collectors.querylog import LogSpec, read_logs
    from auditor.collectors.querylog.parallel import progress_bar
    from auditor.errors import ConfigError
    if not paths:
        raise ConfigError("give at least one log file (or - for standard input)")
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if prefix is None and dsn:
        from auditor.collectors.querylog.prefix import prefix_from_server
        prefix = prefix_from_server(dsn)
    files: list[dict] = []
    with progress_bar() as progress:
        profile = read_logs([LogSpec(p, fmt, prefix) for p in paths], files=files,
                            jobs=jobs, progress=progress)
    summary = summarize(profile, files, top=top)
    console = console or Console(highlight=False)
    if as_json:
        console.file.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    else:
        render(summary, console)
    return 0


def register(app) -> None:
    """Add the ``logs`` command to the Typer ``app`` (auditor.cli)."""
    import typer

    from auditor.collectors.querylog.formats import FORMATS

    @app.command("logs")
    def logs(
        files: List[str] = typer.Argument(..., help="PostgreSQL log files (.gz/.bz2/.xz/.zst "
                                                    "too); - reads standard input."),
        fmt: str = typer.Option("auto", "--format", "-f",
                                help=f"Log format: auto, {', '.join(FORMATS)}."),
        prefix: Optional[str] = typer.Option(None, "--prefix",
                                             help="The server's log_line_prefix (default: "
                                                  "detected)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        top: int = typer.Option(DEFAULT_TOP, "--top", help="Fingerprints in each top list."),
        postgres: Optional[str] = typer.Option(None, "--postgres",
                                               help="Read log_line_prefix from this server "
                                                    "(SHOW log_line_prefix)."),
        jobs: Optional[int] = typer.Option(None, "--jobs", "-j",
                                           help="Worker processes for large plain files "
                                                "(default: all cores)."),
    ) -> None:
        """Summarise PostgreSQL query logs: statements, durations, fingerprints, sessions."""
        from auditor.cli import _errors
        with _errors():
            raise typer.Exit(run(files, fmt=fmt, prefix=prefix, as_json=as_json, top=top,
                                 dsn=postgres, jobs=jobs))
