"""Whole audits through the CLI against real (and deliberately unreachable) targets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "auditor", "audit", *args], capture_output=True,
                          text=True, cwd=cwd, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"}, timeout=120)


def items_of(path: Path) -> dict:
    return {i["rule"]["id"]: i for i in json.loads(path.read_text())["items"]}


def test_unreachable_postgres_and_redis_are_not_verified_and_secret_stays_hidden(tmp_path):
    port = closed_port()
    res = run("--postgres", f"postgresql://app:s3cr3t-pw@127.0.0.1:{port}/app",
              "--redis", f"redis://:r3dis-pw@127.0.0.1:{port}/0",
              "--source", str(ROOT / "fixtures" / "demo" / "app"),
              "--json", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html"), cwd=tmp_path)
    assert res.returncode == 1, res.stderr  # the source scan still finds blocking sync calls
    items = items_of(tmp_path / "a.json")
    for rid in ("PG102", "RDS101", "RDS103"):
        assert items[rid]["status"] == "not verified"
        assert str(port) in items[rid]["reason"]
    assert items["PG101"]["status"] == "not verified"  # no log and no database
    assert items["SRC101"]["status"] == "fail"
    everything = res.stdout + res.stderr + (tmp_path / "a.json").read_text() + (tmp_path / "a.html").read_text()
    assert "s3cr3t-pw" not in everything and "r3dis-pw" not in everything


def test_gate_passes_when_nothing_blocking_is_found(tmp_path):
    port = closed_port()
    res = run("--redis", f"redis://127.0.0.1:{port}/0", "--json", str(tmp_path / "a.json"), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "gate passed" in res.stdout.lower()


def test_missing_log_file_is_reported_and_the_audit_goes_on(tmp_path):
    res = run("--log", str(tmp_path / "missing.log"), "--source", str(ROOT / "fixtures" / "demo" / "app"),
              "--json", str(tmp_path / "a.json"), cwd=tmp_path)
    assert res.returncode == 1
    items = items_of(tmp_path / "a.json")
    assert items["PG201"]["status"] == "not verified" and "missing.log" in items["PG201"]["reason"]
    assert items["SRC101"]["status"] == "fail"


def test_nothing_to_audit_is_a_usage_error(tmp_path):
    res = run(cwd=tmp_path)
    assert res.returncode == 2 and "auditor demo" in res.stderr


def test_password_of_a_reachable_postgres_appears_in_no_output(tmp_path, pg_admin_dsn):
    # trust auth ignores the password, so the audit connects and reports on the real server
    dsn = pg_admin_dsn.replace("postgresql://postgres@", "postgresql://postgres:Tr0ub4dor-x@")
    res = run("--postgres", dsn, "--json", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html"),
              cwd=tmp_path)
    assert res.returncode in (0, 1), res.stderr
    items = items_of(tmp_path / "a.json")
    assert items["PG102"]["status"] in ("pass", "fail")  # the catalog was really read
    everything = res.stdout + res.stderr + (tmp_path / "a.json").read_text() + (tmp_path / "a.html").read_text()
    assert "Tr0ub4dor-x" not in everything
    assert "postgres:***@" in everything
