"""The ``auditor`` command line.

Exit codes: 0 gate passed; 1 gate failed (a finding at or below the target
milestone with severity >= --fail-on); 2 usage or config error; 3 internal error.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console

from auditor import __version__, milestones
from auditor.errors import AuditorError, ConfigError, RegistryError
from auditor.model import Report, Severity
from auditor.redact import redact

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

app = typer.Typer(
    name="auditor", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Audit a product's PostgreSQL, logs, Redis, HTTP endpoints and source for what breaks "
         "at the next order of magnitude of users.",
)

from auditor import logs_command  # noqa: E402  (registers `auditor logs`)

logs_command.register(app)


def _stdout() -> Console:
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(code: int, message: str) -> None:
    _stderr().print(f"auditor: error: {redact(message)}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Map errors to exit codes: config/usage 2, everything unexpected 3."""
    try:
        yield
    except typer.Exit:
        raise
    except (ConfigError, RegistryError) as exc:
        _fail(EXIT_USAGE, str(exc))
    except AuditorError as exc:
        _fail(EXIT_USAGE, str(exc))
    except KeyboardInterrupt:
        _fail(EXIT_INTERNAL, "interrupted")
    except Exception as exc:  # noqa: BLE001
        _fail(EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc} "
                             "(please report it with the command you ran)")


def _progress(console: Console):
    """A context-manager factory that shows a spinner per collector on a TTY."""
    from rich.status import Status
    from rich.text import Text

    @contextmanager
    def step(kind: str, description: str) -> Iterator[None]:
        # description holds user input (paths, URLs): plain Text, never parsed as markup
        if console.is_terminal and not os.environ.get("CI"):
            with Status(Text(f"collecting {kind}: {description}"), console=console):
                yield
        else:
            yield
        if console.is_terminal:
            console.print(Text(f"collected {kind}: {description}", style="dim"), highlight=False)
    return step


def _emit(report: Report, json_path: Optional[Path], html_path: Optional[Path], quiet: bool = False) -> int:
    from auditor.reporters import html as html_rep, json as json_rep, terminal
    if not quiet:
        terminal.render(report, _stdout())
    err = _stderr()
    if json_path:
        json_rep.write(report, json_path)
        err.print(f"wrote {json_path}", markup=False)
    if html_path:
        html_rep.write(report, html_path)
        err.print(f"wrote {html_path}", markup=False)
    return EXIT_GATE if report.gate_failed else EXIT_OK


def _severity(value: str) -> Severity:
    try:
        return Severity(value.lower())
    except ValueError:
        raise ConfigError(f"--fail-on must be one of {', '.join(s.value for s in Severity)}, got {value!r}") from None


@app.command()
def audit(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file (default: ./auditor.yaml if present)."),
    postgres: Optional[str] = typer.Option(None, "--postgres", help="PostgreSQL DSN (overrides postgres.dsn)."),
    redis: Optional[str] = typer.Option(None, "--redis", help="Redis URL (overrides redis.url)."),
    http: Optional[List[str]] = typer.Option(None, "--http", help="HTTP base URL; repeat for several (overrides http.base_urls)."),
    log: Optional[List[str]] = typer.Option(None, "--log", help="PostgreSQL log file; repeat for several (overrides logs)."),
    log_prefix: Optional[str] = typer.Option(None, "--log-prefix", help="log_line_prefix of the --log files."),
    source: Optional[str] = typer.Option(None, "--source", help="Application source tree (overrides source)."),
    milestone: Optional[str] = typer.Option(None, "--milestone", "-m", help=f"Target milestone: {', '.join(milestones.IDS)}."),
    users: Optional[int] = typer.Option(None, "--users", help="Expected users; picks the milestone."),
    fail_on: str = typer.Option("high", "--fail-on", help="Lowest severity that fails the gate."),
    no_burst: bool = typer.Option(False, "--no-burst", help="Do not send the rate-limit burst."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the JSON report here."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write the HTML report here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No checklist on the terminal."),
) -> None:
    """Audit your own systems, as described by auditor.yaml and flags."""
    with _errors():
        from auditor import audit as audit_mod, config as config_mod
        from auditor.config import AuditConfig, LogSource
        severity = _severity(fail_on)
        cat = audit_mod.load_catalogue()
        if config is None and config_mod.DEFAULT_PATH.exists():
            config = config_mod.DEFAULT_PATH
        cfg = config_mod.load(config, known_rules=set(cat.rules)) if config else AuditConfig()
        if postgres:
            cfg.postgres_dsn, cfg.postgres_snapshot = postgres, None
        if redis:
            cfg.redis_url, cfg.redis_snapshot = redis, None
        if http:
            cfg.http_base_urls = list(http)
        if log:
            cfg.logs = [LogSource(p, "auto", log_prefix) for p in log]
        if source:
            cfg.source = source
        if milestone and users is not None:
            raise ConfigError("give either --milestone or --users, not both")
        if milestone:
            cfg.milestone = milestones.get(milestone).id
        if users is not None:
            cfg.milestone = milestones.for_users(users).id
        if no_burst:
            cfg.http_burst = {**cfg.http_burst, "enabled": False}
        if not (cfg.postgres_dsn or cfg.postgres_snapshot or cfg.postgres_pg_stat_statements
                or cfg.logs or cfg.redis_url
                or cfg.redis_snapshot or cfg.http_base_urls or cfg.source):
            raise ConfigError("nothing to audit: give --config (see `auditor init`) or at least one of "
                              "--postgres, --log, --redis, --http, --source; or try `auditor demo`")
        report = audit_mod.run(cfg, fail_on=severity, catalogue=cat, progress=_progress(_stderr()))
        raise typer.Exit(_emit(report, json_out, html_out, quiet))


@app.command()
def demo(
    json_out: Path = typer.Option(Path("auditor-report.json"), "--json", help="Where to write the JSON report."),
    html_out: Path = typer.Option(Path("auditor-report.html"), "--html", help="Where to write the HTML report."),
    milestone: str = typer.Option("1k", "--milestone", "-m", help="Target milestone for the demo."),
    fail_on: str = typer.Option("high", "--fail-on", help="Lowest severity that fails the gate."),
) -> None:
    """Audit the bundled demo system (no server of your own needed)."""
    with _errors():
        from auditor import demo as demo_mod
        report = demo_mod.run(milestone=milestones.get(milestone).id, fail_on=_severity(fail_on),
                              progress=_progress(_stderr()))
        raise typer.Exit(_emit(report, json_out, html_out))


@app.command()
def init(
    path: Path = typer.Option(Path("auditor.yaml"), "--path", help="Where to write the config."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented auditor.yaml to start from."""
    with _errors():
        from auditor.config import TEMPLATE
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists; use --force to overwrite it")
        path.write_text(TEMPLATE, encoding="utf-8")
        _stderr().print(f"wrote {path}; edit it, then run: auditor audit", markup=False)


@app.command()
def rules(markdown: bool = typer.Option(False, "--markdown", help="Print the catalogue as a Markdown table.")) -> None:
    """List the rule catalogue."""
    with _errors():
        from auditor import audit as audit_mod
        cat = audit_mod.load_catalogue()
        if markdown:
            typer.echo(rules_markdown(cat.rules.values()))
            return
        from rich.table import Table
        t = Table("id", "slug", "milestone", "severity", "category", "title")
        for r in cat.rules.values():
            t.add_row(r.id, r.slug + (" (manual)" if r.manual else ""), r.milestone, r.severity.value,
                      r.category.value, r.title)
        _stdout().print(t)


def rules_markdown(rules) -> str:
    lines = ["| id | slug | milestone | severity | category | title | why it matters |",
             "|---|---|---|---|---|---|---|"]
    for r in rules:
        why = r.why.replace("|", "\\|")
        lines.append(f"| {r.id} | `{r.slug}`{' (manual)' if r.manual else ''} | {r.milestone} | "
                     f"{r.severity.value} | {r.category.value} | {r.title} | {why} |")
    return "\n".join(lines)


@app.command()
def report(
    report_json: Path = typer.Argument(..., help="A JSON report written by --json."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write the HTML report here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No checklist on the terminal."),
) -> None:
    """Re-render a saved JSON report (terminal and/or HTML); exits by its gate."""
    with _errors():
        from auditor.reporters import json as json_rep
        raise typer.Exit(_emit(json_rep.read(report_json), None, html_out, quiet))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"auditor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                        help="Print the version and exit.")) -> None:
    pass


def main() -> None:
    """Console-script entry point. Click's own usage errors already exit 2."""
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001
        print(f"auditor: internal error: {redact(exc)}", file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
