"""auditor.yaml: validation errors name the file, the key and what was expected;
${ENV} secrets are interpolated and never printed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from auditor import config
from auditor.errors import ConfigError
from auditor.redact import redact

RULES = {"PG101", "PG201", "HTTP101"}


def load(tmp_path, text, env=None):
    p = tmp_path / "auditor.yaml"
    p.write_text(text)
    return config.load(p, known_rules=RULES, env=env or {})


def test_template_is_valid(tmp_path):
    cfg = load(tmp_path, config.TEMPLATE, env={"PGPASSWORD": "pw-from-env"})
    assert cfg.milestone == "1k"
    assert cfg.postgres_dsn == "postgresql://app:pw-from-env@127.0.0.1:5432/app"
    assert cfg.http_burst["requests"] == 30
    assert "pw-from-env" not in redact(f"connect to {cfg.postgres_dsn} failed: pw-from-env")


def test_full_config(tmp_path):
    cfg = load(tmp_path, """
users: 4000
postgres: {dsn: "postgresql://u@h/db"}
redis: {url: "redis://h:6379/0", usage: cache}
http: {base_urls: ["http://127.0.0.1:8000"], burst: false, timeout: 2}
logs:
  - a.log
  - {path: /var/log/b.csv, format: csvlog}
source: src
rules:
  PG101: off
  PG201: {severity: medium, params: {min_repeats: 10}}
  HTTP101: low
""")
    assert cfg.milestone == "10k"
    assert cfg.http_burst["enabled"] is False and cfg.http_timeout_s == 2
    assert cfg.logs[0].path == str(tmp_path / "a.log") and cfg.logs[1].format == "csvlog"
    assert cfg.source == str(tmp_path / "src")
    assert cfg.rules["PG101"].enabled is False
    assert cfg.rules["PG201"].params == {"min_repeats": 10}
    assert cfg.rules["HTTP101"].severity == "low"


@pytest.mark.parametrize("text, message", [
    ("postgres: {dns: x}", "unknown key postgres.dns; expected one of: dsn, pg_stat_statements, snapshot"),
    ("milestone: 5k", "milestone: unknown milestone '5k'"),
    ("http: {base_urls: localhost:8000}", "http.base_urls must be a list"),
    ("http: {base_urls: [ftp://x]}", "http.base_urls[0] must be an http:// or https:// URL"),
    ("rules: {XX999: off}", "rules.XX999 is not a known rule id"),
    ("rules: {PG101: severe}", "rules.PG101 must be off, a severity"),
    ("logs: [{path: a.log, format: syslogx}]", "logs[0].format must be one of"),
    ("colour: blue", "unknown key colour"),
    ("users: many", "users must be an integer"),
    ("postgres: {dsn: 'postgresql://u:${NOPE_PW}@h/db'}", "uses ${NOPE_PW}, which is not set"),
    ("http: {burst: {requests: 0}}", "http.burst.requests must be between 1 and 1000"),
    ("milestone: 1k\nusers: 10", "either milestone or users"),
    ("a: [", "not valid YAML at line"),
])
def test_invalid_config_names_file_key_and_expectation(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert message in str(err.value)
    assert "auditor.yaml" in str(err.value)


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="auditor init"):
        config.load(tmp_path / "nope.yaml", known_rules=RULES)


def test_cli_exits_2_on_invalid_config_and_hides_secrets(tmp_path):
    p = tmp_path / "auditor.yaml"
    p.write_text("postgres: {dsn: 'postgresql://app:hunter2@127.0.0.1/db', port: 5}\n")
    res = subprocess.run([sys.executable, "-m", "auditor", "audit", "-c", str(p)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "unknown key postgres.port" in res.stderr and str(p) in res.stderr
    assert "hunter2" not in res.stderr + res.stdout


def test_init_writes_a_config_that_audit_reads(tmp_path):
    res = subprocess.run([sys.executable, "-m", "auditor", "init", "--path", str(tmp_path / "a.yaml")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "milestone: 1k" in (tmp_path / "a.yaml").read_text()
    again = subprocess.run([sys.executable, "-m", "auditor", "init", "--path", str(tmp_path / "a.yaml")],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
