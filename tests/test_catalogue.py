"""rules.yaml and the registered checks describe each other exactly, and a bad
catalogue entry is rejected on load with the rule and the key named."""

from __future__ import annotations

import pytest

from auditor import milestones, registry, rules
from auditor.errors import ConfigError, RegistryError
from auditor.registry import Registered


def test_every_check_has_its_rule_and_every_rule_its_check_or_is_manual():
    found = registry.discover()
    catalogue = rules.load()
    assert set(found) <= set(catalogue), "a registered check has no rule in rules.yaml"
    for rule in catalogue.values():
        assert rule.manual or rule.id in found, f"{rule.id} has no check and is not manual"
        assert not (rule.manual and rule.id in found), f"{rule.id} is manual but has a check"
    rules.catalogue(found)  # the same consistency, enforced at run time


def test_every_rule_is_complete():
    for rule in rules.load().values():
        assert rule.milestone in milestones.IDS
        assert len(rule.why) > 40 and rule.fix and rule.title


def test_a_check_without_a_rule_is_refused(tmp_path):
    class Orphan:
        rule_id, requires, requires_one_of = "ZZZ999", (), ()

        def run(self, facts, params):
            return ()

    with pytest.raises(RegistryError, match="ZZZ999.*no rule describes it"):
        rules.catalogue({**registry.discover(), "ZZZ999": Registered("ZZZ999", Orphan(), "x (y:z)")})


def test_a_rule_without_a_check_is_refused(tmp_path):
    found = registry.discover()
    del found["PG201"]
    with pytest.raises(RegistryError, match="PG201"):
        rules.catalogue(found)


@pytest.mark.parametrize("body, message", [
    ("severity: severe", "severity must be one of"),
    ("milestone: 5k", "milestone must be one of"),
    ("category: Misc", "category must be one of"),
    ("colour: red", "unknown key(s) colour"),
])
def test_invalid_rule_entries_name_rule_and_key(tmp_path, body, message):
    base = {"slug": "x-y", "title": "t", "severity": "high", "milestone": "1k",
            "category": "Database", "why": "w", "fix": "f"}
    key, value = body.split(": ")
    p = tmp_path / "rules.yaml"
    import yaml
    p.write_text(yaml.safe_dump({"rules": {"ABC123": {**base, key: value}}}))
    with pytest.raises(ConfigError) as err:
        rules.load(p)
    assert "ABC123" in str(err.value) and message in str(err.value)
