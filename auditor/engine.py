"""Run checks over facts and turn their results into the checklist and the gate.

Status is honest (DESIGN.md): ``pass`` only when the check's evidence was
collected and the check ran and found nothing; missing evidence gives
``not verified`` with the reason; a crashing check gives ``error``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from auditor import milestones
from auditor.facts import Facts
from auditor.model import (
    Bucket, Category, ChecklistItem, Finding, Inconclusive, Rule, Severity, Status,
)
from auditor.redact import redact
from auditor.registry import Registered


@dataclass(frozen=True)
class RuleSetting:
    """What config says of one rule: ``off``, a severity, and/or params."""
    enabled: bool = True
    severity: Severity | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


def bucket_for(rule: Rule, target: str, failing_severity: Severity | None = None) -> Bucket:
    """fix now: rule milestone at or below target; next: one rung above; premature: above that.

    One exception, at the bottom rung (``100``: "anything works, do not nag"): a
    failing Protection rule of severity high or above is fix now, because an open
    door is open at any size. ``failing_severity`` is the worst severity of the
    rule's findings (None when it has none).
    """
    if (failing_severity is not None and milestones.rank(target) == 0
            and rule.category is Category.PROTECTION and failing_severity.weight >= Severity.HIGH.weight):
        return Bucket.NOW
    gap = milestones.rank(rule.milestone) - milestones.rank(target)
    if gap <= 0:
        return Bucket.NOW
    return Bucket.NEXT if gap == 1 else Bucket.PREMATURE


def _missing_evidence(check: Any, facts: Facts) -> str | None:
    missing = [k for k in getattr(check, "requires", ()) if facts.get(k) is None]
    if missing:
        return "; ".join(facts.reason_missing(k) for k in missing)
    one_of = tuple(getattr(check, "requires_one_of", ()) or ())
    if one_of and all(facts.get(k) is None for k in one_of):
        return "; ".join(facts.reason_missing(k) for k in one_of)
    return None


def _run_check(check: Any, facts: Facts, params: Mapping[str, Any]) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    inconclusive: list[str] = []
    for out in check.run(facts, params) or ():
        if isinstance(out, Finding):
            findings.append(out)
        elif isinstance(out, Inconclusive):
            inconclusive.append(out.reason)
        else:
            raise TypeError(f"check yielded {type(out).__name__}, expected Finding or Inconclusive")
    return findings, inconclusive


def evaluate_rule(rule: Rule, reg: Registered | None, facts: Facts, target: str,
                  setting: RuleSetting | None = None) -> ChecklistItem:
    """Evaluate one rule. Never raises for a check's own failure (that is ``error``)."""
    setting = setting or RuleSetting()
    bucket = bucket_for(rule, target)
    severity = setting.severity or rule.severity
    if not setting.enabled:
        return ChecklistItem(rule, Status.OFF, bucket, severity, reason="switched off in config")
    if rule.manual:
        return ChecklistItem(rule, Status.MANUAL, bucket, severity,
                             reason="no evidence can settle this; confirm it by hand")
    if reg is None:  # pragma: no cover - rules.catalogue() rejects this earlier
        return ChecklistItem(rule, Status.ERROR, bucket, severity, reason="no check is registered for this rule")
    why_missing = _missing_evidence(reg.check, facts)
    if why_missing:
        return ChecklistItem(rule, Status.NOT_VERIFIED, bucket, severity, reason=why_missing)
    params = {**rule.params, **setting.params}
    try:
        findings, inconclusive = _run_check(reg.check, facts, params)
        findings = [f if f.severity is None else _with_severity(f, Severity(f.severity)) for f in findings]
    except Exception as exc:  # noqa: BLE001 - a crashing check must not stop the audit
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"
        return ChecklistItem(rule, Status.ERROR, bucket, severity,
                             reason=redact(f"check {reg.origin} crashed at {where}: {type(exc).__name__}: {exc}"))
    if findings:
        if setting.severity is not None:  # the user's word wins over the check's
            findings = [_with_severity(f, setting.severity) for f in findings]
        else:
            findings = [f if f.severity else _with_severity(f, rule.severity) for f in findings]
        worst = max((f.severity for f in findings), key=lambda s: s.weight)
        return ChecklistItem(rule, Status.FAIL, bucket_for(rule, target, worst), worst, findings=tuple(findings),
                             reason="; ".join(inconclusive) or None)
    if inconclusive:
        return ChecklistItem(rule, Status.NOT_VERIFIED, bucket, severity, reason="; ".join(inconclusive))
    kinds = [k for k in (*reg.check.requires, *getattr(reg.check, "requires_one_of", ())) if facts.get(k) is not None]
    return ChecklistItem(rule, Status.PASS, bucket, severity,
                         evidence_summary="checked against: " + ", ".join(dict.fromkeys(kinds)))


def _with_severity(f: Finding, severity: Severity) -> Finding:
    from dataclasses import replace
    return replace(f, severity=severity)


def evaluate(rules: Mapping[str, Rule], registered: Mapping[str, Registered], facts: Facts,
             target: str, settings: Mapping[str, RuleSetting] | None = None) -> tuple[ChecklistItem, ...]:
    """Evaluate every rule of the catalogue, in catalogue order."""
    settings = settings or {}
    return tuple(evaluate_rule(rule, registered.get(rid), facts, target, settings.get(rid))
                 for rid, rule in rules.items())


def blocking_findings(items: Iterable[ChecklistItem], fail_on: Severity) -> tuple[Finding, ...]:
    """Findings that fail the gate: in the fix-now bucket with severity >= ``fail_on``."""
    return tuple(f for it in items if it.status is Status.FAIL and it.bucket is Bucket.NOW
                 for f in it.findings if (f.severity or it.severity).weight >= fail_on.weight)
