"""One audit run: build collectors from config, collect facts, evaluate, report.

Collectors are created here per run and injected; a collector that fails
leaves its kind ``not verified`` with the reason, and the run goes on.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, ContextManager

from auditor import __version__, engine, registry, rules as rules_mod
from auditor.config import AuditConfig
from auditor.errors import AuditorError
from auditor.facts import KINDS, Facts
from auditor.model import Report, Rule, Severity
from auditor.redact import redact

# progress(kind, description) -> context manager around one collector's work
Progress = Callable[[str, str], ContextManager[Any]]


def _no_progress(kind: str, description: str) -> ContextManager[Any]:
    return nullcontext()


@dataclass
class Catalogue:
    rules: dict[str, Rule]
    registered: dict[str, registry.Registered]


def load_catalogue() -> Catalogue:
    """Discover checks and load rules.yaml. Raises RegistryError/ConfigError."""
    registered = registry.discover()
    return Catalogue(rules_mod.catalogue(registered), registered)


def _params(cat: Catalogue, cfg: AuditConfig, rule_id: str) -> dict[str, Any]:
    """A rule's params: rules.yaml's defaults, then the config's overrides."""
    rule = cat.rules.get(rule_id)
    merged = dict(rule.params) if rule else {}
    setting = cfg.rules.get(rule_id)
    if setting:
        merged.update(setting.params)
    return merged


def _param(cat: Catalogue, cfg: AuditConfig, rule_id: str, name: str, default: Any = None) -> Any:
    return _params(cat, cfg, rule_id).get(name, default)


class UnusableCollector:
    """Stands in for a collector whose construction failed (bad DSN, bad path):
    its kind is reported ``not verified`` with the reason, and the audit goes on."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind, self.reason = kind, reason

    def describe(self) -> str:
        return self.kind

    def collect(self) -> Any:
        raise AuditorError(self.reason)


def build_collectors(cfg: AuditConfig, cat: Catalogue) -> list[Any]:
    """One collector per configured kind of evidence, in collection order."""
    out: list[Any] = []
    _build(out, "postgres", lambda: _postgres(cfg))
    _build(out, "pgss", lambda: _pgss(cfg))
    _build(out, "workload", lambda: _logs(cfg, cat))
    _build(out, "redis", lambda: _redis(cfg))
    _build(out, "http", lambda: _http(cfg, cat))
    _build(out, "source", lambda: _source(cfg))
    return out


def _build(out: list[Any], kind: str, factory: Callable[[], Any]) -> None:
    try:
        col = factory()
    except AuditorError as exc:
        col = UnusableCollector(kind, redact(exc))
    if col is not None:
        out.append(col)


def _postgres(cfg: AuditConfig) -> Any:
    if not (cfg.postgres_dsn or cfg.postgres_snapshot):
        return None
    from auditor.collectors.postgres import PostgresCollector
    return PostgresCollector(cfg.postgres_dsn, snapshot=cfg.postgres_snapshot)


def _pgss(cfg: AuditConfig) -> Any:
    """pg_stat_statements: the CSV export when one is given (only the DSN's database's
    rows, when it can tell them apart), else the live view of the DSN's database
    (read-only, top entries by total time; see PgssCollector)."""
    if cfg.postgres_pg_stat_statements:
        from auditor.collectors.pgss import PgssCollector
        return PgssCollector(csv_path=cfg.postgres_pg_stat_statements,
                             database_dsn=cfg.postgres_dsn)
    if cfg.postgres_dsn:
        from auditor.collectors.pgss import PgssCollector
        return PgssCollector(cfg.postgres_dsn)
    return None


def _logs(cfg: AuditConfig, cat: Catalogue) -> Any:
    if not cfg.logs:
        return None
    from auditor.collectors.querylog import LogSpec, QueryLogCollector
    from auditor.facts.workload import Detection
    # The request detectors run while the log streams, so they need PG201/PG202's params now.
    detection = Detection.from_params(_params(cat, cfg, "PG201"), _params(cat, cfg, "PG202"))
    return QueryLogCollector([LogSpec(l.path, l.format, l.line_prefix) for l in cfg.logs],
                             detection=detection)


def _redis(cfg: AuditConfig) -> Any:
    if not (cfg.redis_url or cfg.redis_snapshot):
        return None
    from auditor.collectors.redis import RedisCollector
    return RedisCollector(cfg.redis_url, snapshot=cfg.redis_snapshot, usage=cfg.redis_usage)


def _http(cfg: AuditConfig, cat: Catalogue) -> Any:
    if not cfg.http_base_urls:
        return None
    from auditor.collectors.http import HttpCollector
    burst = {
        "requests": _param(cat, cfg, "HTTP101", "requests", 30),
        "concurrency": _param(cat, cfg, "HTTP101", "concurrency", 5),
        "path": _param(cat, cfg, "HTTP101", "path", "/"),
        **cfg.http_burst,
    }
    paths = _param(cat, cfg, "HTTP201", "paths", ()) or ()
    paths = (paths,) if isinstance(paths, str) else tuple(paths)
    kwargs = {"health_paths": paths} if paths else {}
    return HttpCollector(cfg.http_base_urls, timeout_s=cfg.http_timeout_s, burst=burst, **kwargs)


def _source(cfg: AuditConfig) -> Any:
    if not cfg.source:
        return None
    from auditor.collectors.source import SourceCollector
    return SourceCollector(cfg.source)


def collect(collectors: list[Any], progress: Progress = _no_progress) -> tuple[Facts, dict[str, str]]:
    """Run every collector; returns (facts, sources). Never raises for a collector's failure."""
    facts = Facts()
    sources: dict[str, str] = {}
    for col in collectors:
        kind = col.kind
        try:
            described = redact(col.describe())
        except Exception:  # noqa: BLE001
            described = kind
        try:
            with progress(kind, described):
                value = col.collect()
        except AuditorError as exc:
            facts.unavailable[kind] = redact(exc)
            sources[kind] = f"not collected: {redact(exc)}"
            continue
        except Exception as exc:  # noqa: BLE001 - a broken collector must not end the audit
            facts.unavailable[kind] = redact(f"the {kind} collector crashed: {type(exc).__name__}: {exc}")
            sources[kind] = f"not collected: {facts.unavailable[kind]}"
            continue
        setattr(facts, kind, value)
        try:  # described again: what was read may add to it (rows left out, ...)
            sources[kind] = redact(col.describe())
        except Exception:  # noqa: BLE001
            sources[kind] = described
    for kind in KINDS:
        sources.setdefault(kind, f"not collected: {facts.reason_missing(kind)}")
    return facts, sources


def run(cfg: AuditConfig, *, fail_on: Severity = Severity.HIGH, catalogue: Catalogue | None = None,
        collectors: list[Any] | None = None, progress: Progress = _no_progress) -> Report:
    """Audit what ``cfg`` describes. Returns the Report (the gate result is inside)."""
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    cat = catalogue or load_catalogue()
    cols = build_collectors(cfg, cat) if collectors is None else collectors
    facts, sources = collect(cols, progress)
    items = engine.evaluate(cat.rules, cat.registered, facts, cfg.milestone, cfg.rules)
    blocking = engine.blocking_findings(items, fail_on)
    return Report(
        milestone=cfg.milestone, fail_on=fail_on, items=items, sources=sources,
        started_at=started.isoformat(timespec="seconds"), duration_s=round(time.monotonic() - t0, 3),
        tool_version=__version__, gate_failed=bool(blocking), blocking=blocking,
    )

