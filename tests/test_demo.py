"""`auditor demo` as a newcomer runs it: from the installed console script, in an
empty directory, with no server of their own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SEVEN = {
    "PG101": "missing index",
    "PG201": "N+1 queries",
    "PG301": "connection pooling",
    "HTTP101": "rate limit",
    "SRC101": "synchronous third-party call",
    "HTTP201": "health check",
}
REDIS = {"RDS101", "RDS102", "RDS103"}


def auditor_exe() -> str:
    exe = Path(sys.executable).parent / "auditor"
    return str(exe) if exe.exists() else shutil.which("auditor")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["NO_COLOR"] = "1"
    res = subprocess.run([auditor_exe(), "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return cwd, res


def test_demo_exits_1_and_writes_both_reports(demo_run):
    cwd, res = demo_run
    assert res.returncode == 1, res.stderr[-2000:]
    assert (cwd / "auditor-report.json").stat().st_size > 1000
    html = (cwd / "auditor-report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html")


def test_demo_shows_a_finding_from_each_of_the_seven_checks(demo_run):
    cwd, res = demo_run
    items = {i["rule"]["id"]: i for i in json.loads((cwd / "auditor-report.json").read_text())["items"]}
    for rule_id, what in SEVEN.items():
        assert items[rule_id]["status"] == "fail", (what, items[rule_id].get("reason"))
        assert items[rule_id]["findings"], what
        assert rule_id in res.stdout
    assert any(items[r]["status"] == "fail" for r in REDIS), "no Redis finding"
    assert "CREATE INDEX CONCURRENTLY" in json.dumps(items["PG101"]["findings"])


def test_demo_checklist_is_sequenced(demo_run):
    _, res = demo_run
    out = res.stdout.lower()
    assert out.index("fix now") < out.index("next") < out.index("premature")
    assert "\x1b[" not in res.stdout  # NO_COLOR and not a TTY
