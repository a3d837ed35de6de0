"""Load and validate the rule catalogue (``rules.yaml``).

Built-in rules live in ``rules.yaml``; a third-party check may carry its own
rule as a class attribute ``rule`` (a mapping with the same keys as a
rules.yaml entry), validated the same way.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from auditor import milestones
from auditor.errors import ConfigError, RegistryError
from auditor.model import Category, Rule, Severity

_ID = re.compile(r"^[A-Z]{2,5}\d{3}$")
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_REQUIRED = ("slug", "title", "severity", "milestone", "category", "why", "fix")
_OPTIONAL = ("params", "manual", "references")


def rules_path() -> Path:
    """Where rules.yaml is: inside the installed package, else at the repository root."""
    packaged = resources.files("auditor") / "rules.yaml"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "rules.yaml"


def parse_rule(rule_id: str, data: Any, where: str) -> Rule:
    """Validate one entry. Raises ConfigError naming ``where``, the rule and the key."""
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"{where}: rule {rule_id}: {msg}")

    if not _ID.match(rule_id):
        raise bad("id must look like PG101 (2-5 capital letters, 3 digits)")
    if not isinstance(data, Mapping):
        raise bad("expected a mapping of rule fields")
    unknown = set(data) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise bad(f"unknown key(s) {', '.join(sorted(unknown))}; expected {', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise bad(f"missing key(s) {', '.join(missing)}")
    for k in ("title", "why", "fix"):
        if not isinstance(data[k], str) or not data[k].strip():
            raise bad(f"{k} must be a non-empty string")
    if not isinstance(data["slug"], str) or not _SLUG.match(data["slug"]):
        raise bad("slug must be kebab-case, e.g. missing-index")
    try:
        severity = Severity(data["severity"])
    except ValueError:
        raise bad(f"severity must be one of {', '.join(s.value for s in Severity)}") from None
    milestone = milestones.get(str(data["milestone"])).id if str(data["milestone"]).lower() in milestones.IDS else None
    if milestone is None:
        raise bad(f"milestone must be one of {', '.join(milestones.IDS)}")
    try:
        category = Category(data["category"])
    except ValueError:
        raise bad(f"category must be one of {', '.join(c.value for c in Category)}") from None
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise bad("params must be a mapping")
    refs = data.get("references") or ()
    if not isinstance(refs, (list, tuple)) or not all(isinstance(r, str) for r in refs):
        raise bad("references must be a list of strings")
    return Rule(
        id=rule_id, slug=data["slug"], title=data["title"].strip(), severity=severity,
        milestone=milestone, category=category, why=" ".join(data["why"].split()),
        fix=data["fix"].strip(), params=dict(params), manual=bool(data.get("manual", False)),
        references=tuple(refs),
    )


def load(path: Path | None = None) -> dict[str, Rule]:
    """Load rules.yaml. Returns {rule_id: Rule} in file order. Raises ConfigError."""
    path = path or rules_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read rule catalogue {path}: {exc}") from exc
    if not isinstance(raw, Mapping) or not isinstance(raw.get("rules"), Mapping):
        raise ConfigError(f"{path}: expected a top-level 'rules:' mapping")
    rules = {str(rid): parse_rule(str(rid), data, str(path)) for rid, data in raw["rules"].items()}
    slugs: dict[str, str] = {}
    for r in rules.values():
        if r.slug in slugs:
            raise ConfigError(f"{path}: slug {r.slug} is used by {slugs[r.slug]} and {r.id}")
        slugs[r.slug] = r.id
    return rules


def catalogue(registered: Mapping[str, Any], path: Path | None = None) -> dict[str, Rule]:
    """Built-in rules plus the rules carried by third-party checks.

    Raises RegistryError when a registered check has no rule, or when a
    non-manual rule has no registered check.
    """
    rules = load(path)
    for rule_id, reg in registered.items():
        meta = getattr(reg.check, "rule", None)
        if rule_id in rules:
            if meta is not None:
                raise RegistryError(f"check {reg.origin} carries rule {rule_id}, which rules.yaml already defines")
            continue
        if meta is None:
            raise RegistryError(f"check {reg.origin} is registered as {rule_id} but no rule describes it")
        rules[rule_id] = parse_rule(rule_id, meta, reg.origin)
    orphans = [r.id for r in rules.values() if not r.manual and r.id not in registered]
    if orphans:
        raise RegistryError(
            f"rule(s) {', '.join(orphans)} have no registered check; reinstall auditor (pip install .)"
        )
    return rules
