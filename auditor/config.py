"""Read ``auditor.yaml``, interpolate ``${ENV_VAR}``, validate, and merge CLI flags.

Every problem raises ConfigError with the file, the key and what was expected
(exit code 2). Values taken from environment variables whose names mark them as
secrets (``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``, ``*KEY*``, ...) are registered
as secrets, so they are masked in every output; passwords inside DSNs and URLs are
masked whatever variable they came from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from auditor import milestones
from auditor.collectors.querylog.formats import FORMATS as _LOG_FORMATS
from auditor.engine import RuleSetting
from auditor.errors import ConfigError
from auditor.model import Severity
from auditor.redact import redact, register_secret

DEFAULT_PATH = Path("auditor.yaml")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# ${VAR} values registered as secrets (masked everywhere): those whose name says so.
# A DSN or URL read from any variable still has its password masked by auditor.redact.
_SECRET_NAME = re.compile(r"(?i)PASS|PWD|TOKEN|SECRET|KEY|AUTH|CREDENTIAL")
LOG_FORMATS = ("auto", *_LOG_FORMATS)
REDIS_USAGES = ("auto", "cache", "store")


@dataclass(frozen=True)
class LogSource:
    path: str
    format: str = "auto"
    line_prefix: str | None = None


@dataclass
class AuditConfig:
    """The resolved configuration of one audit."""
    postgres_dsn: str | None = None
    postgres_snapshot: str | None = None
    postgres_pg_stat_statements: str | None = None  # a CSV export of the view
    redis_url: str | None = None
    redis_snapshot: str | None = None
    redis_usage: str = "auto"
    http_base_urls: list[str] = field(default_factory=list)
    http_timeout_s: float = 5.0
    http_burst: dict[str, Any] = field(default_factory=lambda: {"enabled": True})
    logs: list[LogSource] = field(default_factory=list)
    source: str | None = None
    milestone: str = "1k"
    users: int | None = None
    rules: dict[str, RuleSetting] = field(default_factory=dict)
    path: str | None = None  # the file it came from


# key -> (type description, validator) per section; a tiny schema walker keeps errors precise.
_TOP = {"postgres", "redis", "http", "logs", "source", "milestone", "users", "rules"}
_SECTIONS = {
    "postgres": {"dsn": str, "snapshot": str, "pg_stat_statements": str},
    "redis": {"url": str, "snapshot": str, "usage": str},
    "http": {"base_urls": list, "timeout": (int, float), "burst": (dict, bool)},
}
_BURST = {"enabled": bool, "requests": int, "concurrency": int, "path": str}
_TYPE_NAMES = {str: "a string", list: "a list", dict: "a mapping", bool: "true or false",
               int: "an integer", float: "a number"}


def _tname(t: Any) -> str:
    if isinstance(t, tuple):
        return " or ".join(_TYPE_NAMES[x] for x in t)
    return _TYPE_NAMES[t]


def interpolate(value: Any, where: str, env: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of ``value``."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                if _SECRET_NAME.search(name):
                    register_secret(env[name])
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{where} uses ${{{name}}}, which is not set in the environment; "
                              f"export {name}=... or write ${{{name}:-default}}")
        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, f"{where}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    return value


def _check_type(file: str, key: str, value: Any, expected: Any) -> None:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        raise ConfigError(f"{file}: {key} must be {_tname(expected)}, got {type(value).__name__} {value!r}")


def _unknown(file: str, where: str, keys: set[str], allowed: set[str]) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise ConfigError(f"{file}: unknown key {where}{extra[0]!s}; expected one of: {', '.join(sorted(allowed))}")


def parse(raw: Any, file: str, *, known_rules: set[str], env: Mapping[str, str] | None = None) -> AuditConfig:
    """Validate a loaded YAML document into an AuditConfig. Raises ConfigError."""
    env = os.environ if env is None else env
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping of settings at the top level, got {type(raw).__name__}")
    _unknown(file, "", set(raw), _TOP)
    raw = interpolate(raw, file, env)
    cfg = AuditConfig(path=file)

    for section, spec in _SECTIONS.items():
        if section not in raw or raw[section] is None:
            continue
        body = raw[section]
        _check_type(file, section, body, dict)
        _unknown(file, f"{section}.", set(body), set(spec))
        for k, v in body.items():
            _check_type(file, f"{section}.{k}", v, spec[k])
    pg = raw.get("postgres") or {}
    cfg.postgres_dsn, cfg.postgres_snapshot = pg.get("dsn"), pg.get("snapshot")
    cfg.postgres_pg_stat_statements = pg.get("pg_stat_statements")
    rd = raw.get("redis") or {}
    cfg.redis_url, cfg.redis_snapshot = rd.get("url"), rd.get("snapshot")
    usage = rd.get("usage", "auto")
    if usage not in REDIS_USAGES:
        raise ConfigError(f"{file}: redis.usage must be one of {', '.join(REDIS_USAGES)}, got {usage!r}")
    cfg.redis_usage = usage

    http = raw.get("http") or {}
    urls = http.get("base_urls", [])
    for i, u in enumerate(urls):
        if not isinstance(u, str) or not re.match(r"^https?://", u):
            shown = redact(re.sub(r"^[^/@\s]*@", "***@", u)) if isinstance(u, str) else type(u).__name__
            raise ConfigError(f"{file}: http.base_urls[{i}] must be an http:// or https:// URL, got {shown!r}")
    cfg.http_base_urls = list(urls)
    if "timeout" in http:
        if http["timeout"] <= 0:
            raise ConfigError(f"{file}: http.timeout must be > 0 seconds")
        cfg.http_timeout_s = float(http["timeout"])
    burst = http.get("burst", True)
    if isinstance(burst, bool):
        burst = {"enabled": burst}
    _unknown(file, "http.burst.", set(burst), set(_BURST))
    for k, v in burst.items():
        _check_type(file, f"http.burst.{k}", v, _BURST[k])
    for k in ("requests", "concurrency"):
        if k in burst and not 1 <= burst[k] <= 1000:
            raise ConfigError(f"{file}: http.burst.{k} must be between 1 and 1000, got {burst[k]}")
    cfg.http_burst = {"enabled": True, **burst}

    logs = raw.get("logs") or []
    if isinstance(logs, str):
        logs = [logs]
    _check_type(file, "logs", logs, list)
    for i, item in enumerate(logs):
        if isinstance(item, str):
            cfg.logs.append(LogSource(item))
            continue
        _check_type(file, f"logs[{i}]", item, dict)
        _unknown(file, f"logs[{i}].", set(item), {"path", "format", "line_prefix"})
        if "path" not in item:
            raise ConfigError(f"{file}: logs[{i}] needs a path")
        fmt = item.get("format", "auto")
        if fmt not in LOG_FORMATS:
            raise ConfigError(f"{file}: logs[{i}].format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
        for k in ("path", "line_prefix"):
            if k in item and item[k] is not None:
                _check_type(file, f"logs[{i}].{k}", item[k], str)
        cfg.logs.append(LogSource(item["path"], fmt, item.get("line_prefix")))

    if raw.get("source") is not None:
        _check_type(file, "source", raw["source"], str)
        cfg.source = raw["source"]
    if "milestone" in raw and "users" in raw:
        raise ConfigError(f"{file}: give either milestone or users, not both")
    if "milestone" in raw:
        try:
            cfg.milestone = milestones.get(str(raw["milestone"])).id
        except ConfigError as exc:
            raise ConfigError(f"{file}: milestone: {exc}") from None
    if "users" in raw:
        _check_type(file, "users", raw["users"], int)
        cfg.users = raw["users"]
        cfg.milestone = milestones.for_users(raw["users"]).id

    cfg.rules = parse_rule_settings(raw.get("rules") or {}, file, known_rules)
    return cfg


def parse_rule_settings(rules: Any, file: str, known_rules: set[str]) -> dict[str, RuleSetting]:
    _check_type(file, "rules", rules, dict)
    out: dict[str, RuleSetting] = {}
    sev_names = ", ".join(s.value for s in Severity)
    for rid, val in rules.items():
        rid = str(rid)
        if rid not in known_rules:
            raise ConfigError(f"{file}: rules.{rid} is not a known rule id; see `auditor rules` for the list")
        where = f"{file}: rules.{rid}"
        if val is False or val == "off":
            out[rid] = RuleSetting(enabled=False)
        elif isinstance(val, str):
            try:
                out[rid] = RuleSetting(severity=Severity(val))
            except ValueError:
                raise ConfigError(f"{where} must be off, a severity ({sev_names}) or a mapping") from None
        elif isinstance(val, dict):
            _unknown(file, f"rules.{rid}.", set(val), {"severity", "params", "enabled"})
            sev = None
            if "severity" in val:
                try:
                    sev = Severity(val["severity"])
                except ValueError:
                    raise ConfigError(f"{where}.severity must be one of {sev_names}") from None
            params = val.get("params") or {}
            _check_type(file, f"rules.{rid}.params", params, dict)
            enabled = val.get("enabled", True)
            _check_type(file, f"rules.{rid}.enabled", enabled, bool)
            out[rid] = RuleSetting(enabled=enabled, severity=sev, params=params)
        else:
            raise ConfigError(f"{where} must be off, a severity ({sev_names}) or a mapping")
    return out


def load(path: str | Path, *, known_rules: set[str], env: Mapping[str, str] | None = None) -> AuditConfig:
    """Read and validate a config file. Relative paths inside it resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; run `auditor init` to write one") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    cfg = parse(raw, str(path), known_rules=known_rules, env=env)
    base = path.resolve().parent
    def rel(p: str | None) -> str | None:
        return None if p is None or p == "-" or Path(p).is_absolute() else str(base / p)
    cfg.logs = [LogSource(rel(l.path) or l.path, l.format, l.line_prefix) for l in cfg.logs]
    cfg.source = rel(cfg.source) or cfg.source
    cfg.postgres_snapshot = rel(cfg.postgres_snapshot) or cfg.postgres_snapshot
    cfg.postgres_pg_stat_statements = (rel(cfg.postgres_pg_stat_statements)
                                       or cfg.postgres_pg_stat_statements)
    cfg.redis_snapshot = rel(cfg.redis_snapshot) or cfg.redis_snapshot
    return cfg


TEMPLATE = """\
# auditor.yaml - what `auditor audit` looks at. Every section is optional:
# a kind of evidence you leave out shows up as "not verified" in the checklist.
# ${VAR} and ${VAR:-default} are read from the environment; use them for secrets.

# Where you are on the ladder: 100, 1k, 10k, 100k, 100k+ (or `users: 2500`).
milestone: 1k

postgres:
  # Read-only session with statement and lock timeouts; a password here is never printed.
  dsn: postgresql://app:${PGPASSWORD:-}@127.0.0.1:5432/app
  # pg_stat_statements is read from the DSN's live view when the extension is loaded;
  # or give a CSV export of it (psql: \\copy (SELECT * FROM pg_stat_statements)
  # TO 'pgss.csv' CSV HEADER), which then takes the live view's place.
  # pg_stat_statements: pgss.csv

redis:
  url: redis://127.0.0.1:6379/0
  usage: auto            # cache | store | auto (judged from the keys' TTLs)

http:
  base_urls:
    - http://127.0.0.1:8000
  timeout: 5             # seconds per request
  burst:                 # the rate-limit probe; `burst: false` turns it off
    requests: 30
    concurrency: 5
    path: /

# PostgreSQL query logs (stderr, csvlog or jsonlog; .gz and .bz2 too). Log with
# log_min_duration_statement = 0, log_connections = on, log_disconnections = on.
logs:
  - path: /var/log/postgresql/postgresql-15-main.log
    format: auto         # auto | stderr | rds | syslog | csvlog | jsonlog | cloudsql | cnpg
    # line_prefix: '%m [%p] %q%u@%d '

# The application's Python source (Flask, FastAPI, Django).
source: .

# Per-rule settings: off, a severity, or {severity, params}.
rules:
  # PG201: {params: {min_repeats: 10}}
  # HTTP201: off
"""
