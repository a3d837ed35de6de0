"""Value types shared by every layer: rules, findings, checklist items, reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def weight(self) -> int:
        """4 for critical down to 0 for info; higher is worse."""
        return _SEVERITY_WEIGHT[self]


_SEVERITY_WEIGHT = {
    Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.INFO: 0,
}


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_VERIFIED = "not verified"
    ERROR = "error"
    MANUAL = "manual"
    OFF = "off"  # switched off in config


class Category(StrEnum):
    DATABASE = "Database"
    APPLICATION = "Application"
    INFRASTRUCTURE = "Infrastructure"
    OBSERVABILITY = "Observability"
    PROTECTION = "Protection"


class Bucket(StrEnum):
    """Where an item sits relative to the target milestone (DESIGN.md: the skill is sequencing)."""
    NOW = "fix now"
    NEXT = "next"
    PREMATURE = "premature"


@dataclass(frozen=True)
class Rule:
    """One entry of rules.yaml."""
    id: str  # stable, e.g. "PG101"
    slug: str  # e.g. "missing-index"
    title: str
    severity: Severity
    milestone: str  # a ladder id
    category: Category
    why: str
    fix: str
    params: Mapping[str, Any] = field(default_factory=dict)
    manual: bool = False
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One problem a check found, with its evidence and its fix.

    ``key`` identifies the finding across runs (for baselines): it must not
    contain counts or timings, only the object the finding is about.
    ``evidence`` is JSON-serialisable (str, int, float, bool, None, lists, dicts).
    """
    rule_id: str
    message: str  # one line a user reads
    fix: str  # DDL, config line or code change for this instance
    key: str
    location: str | None = None  # "public.orders", "app/views.py:42", "http://host/"
    severity: Severity | None = None  # None: the rule's (possibly configured) severity
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inconclusive:
    """Yielded by a check that looked at its evidence but could not judge it
    (e.g. too little Redis traffic for a hit ratio). Without findings, the item
    becomes ``not verified`` with ``reason``; never ``pass``."""
    reason: str


@dataclass(frozen=True)
class ChecklistItem:
    rule: Rule
    status: Status
    bucket: Bucket
    severity: Severity  # effective severity (config may override the rule's)
    findings: tuple[Finding, ...] = ()
    reason: str | None = None  # why not verified / error / off
    evidence_summary: str | None = None  # what was looked at, for a pass


@dataclass(frozen=True)
class Report:
    """The canonical result of one audit (serialised by auditor.reporters.json)."""
    milestone: str
    fail_on: Severity
    items: tuple[ChecklistItem, ...]
    sources: Mapping[str, str]  # evidence kind -> what was read (redacted), or why not
    started_at: str  # ISO 8601, UTC
    duration_s: float
    tool_version: str
    gate_failed: bool
    blocking: tuple[Finding, ...] = ()
