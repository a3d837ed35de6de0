"""Checks are discovered through the `auditor.checks` entry points: a third-party
package installed with pip reaches the report; a duplicate rule id is a hard error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditor import audit, registry
from auditor.config import AuditConfig
from auditor.errors import RegistryError

PLUGINS = Path(__file__).parent / "plugins"
SAMPLE_SOURCE = Path(__file__).resolve().parent.parent / "fixtures" / "demo" / "app"


def pip_install_target(pkg: Path, target: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(target), str(pkg)], check=True, capture_output=True)
    return target


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory) -> Path:
    return pip_install_target(PLUGINS / "example_check", tmp_path_factory.mktemp("site-example"))


@pytest.fixture(scope="module")
def duplicate_plugin(tmp_path_factory) -> Path:
    return pip_install_target(PLUGINS / "duplicate_check", tmp_path_factory.mktemp("site-dup"))


def test_builtin_checks_register_through_entry_points():
    found = registry.discover()
    assert {"PG101", "PG201", "PG301", "HTTP101", "HTTP201", "SRC101", "RDS101"} <= set(found)
    assert all(r.origin.startswith("auditor ") for r in found.values())


def test_third_party_check_finding_reaches_report(example_plugin, monkeypatch):
    monkeypatch.syspath_prepend(str(example_plugin))
    cat = audit.load_catalogue()
    assert cat.rules["EXM101"].slug == "example-source-size"
    report = audit.run(AuditConfig(source=str(SAMPLE_SOURCE)), catalogue=cat)
    item = next(i for i in report.items if i.rule.id == "EXM101")
    assert item.status == "fail"
    assert "example plugin saw" in item.findings[0].message


def test_third_party_check_through_the_cli(example_plugin, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(example_plugin)}
    out = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "auditor", "audit", "--source", str(SAMPLE_SOURCE),
                          "--json", str(out), "--quiet"], env=env, capture_output=True, text=True)
    assert res.returncode in (0, 1), res.stderr
    import json
    items = {i["rule"]["id"]: i for i in json.loads(out.read_text())["items"]}
    assert items["EXM101"]["status"] == "fail"


def test_duplicate_rule_id_is_a_hard_error(duplicate_plugin, monkeypatch):
    monkeypatch.syspath_prepend(str(duplicate_plugin))
    with pytest.raises(RegistryError, match="PG101 is registered twice"):
        registry.discover()


def test_duplicate_rule_id_exits_2_from_the_cli(duplicate_plugin):
    env = {**os.environ, "PYTHONPATH": str(duplicate_plugin)}
    res = subprocess.run([sys.executable, "-m", "auditor", "rules"], env=env, capture_output=True, text=True)
    assert res.returncode == 2
    assert "registered twice" in res.stderr
