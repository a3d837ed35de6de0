"""The canonical machine form of a report: ``auditor.report/v1``.

Shape (JSON Schema in ``reports/schema/report-v1.json``)::

    {
      "schema": "auditor.report/v1",
      "tool": {"name": "auditor", "version": "0.1.0"},
      "milestone": {"id": "1k", "label": "100-1K users"},
      "fail_on": "high",
      "started_at": "2025-01-01T00:00:00+00:00",   # ISO 8601, UTC
      "duration_s": 1.5,                       # seconds
      "gate": {"failed": true, "blocking": [<finding>, ...]},
      "summary": {"items": 12, "findings": 4,
                  "by_status": {"pass": 3, "fail": 2, ...},       # every status, 0 included
                  "by_bucket": {"fix now": {"items": 5, "fail": 2, "findings": 3}, ...}},
      "sources": {"postgres": "postgresql://app:***@db/x", ...},
      "items": [{"rule": {...}, "status": "fail", "bucket": "fix now", "severity": "high",
                 "reason": null, "evidence_summary": null, "findings": [<finding>, ...]}, ...]
    }

Items come in a stable order (bucket, category, status, severity, milestone,
rule id; see :func:`auditor.reporters._common.item_sort_key`); findings keep
the order their check gave them (checks are deterministic). The findings'
statement examples go through :func:`auditor.redact_sql.mask_examples` (values
bound to secret-named columns, such as a password in an INSERT, are masked there
and wherever the findings quote them), then every string, keys included, through
:func:`auditor.redact.redact_obj`. This is the one place the terminal and HTML
reporters take their strings from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from auditor import milestones
from auditor.errors import ConfigError
from auditor.model import (
    Bucket, Category, ChecklistItem, Finding, Report, Rule, Severity, Status,
)
from auditor.redact import redact_obj
from auditor.redact_sql import mask_examples
from auditor.reporters._common import (
    BUCKET_ORDER, STATUS_ORDER, milestone_label, resource_dir, sorted_items,
)

SCHEMA_ID = "auditor.report/v1"
TOOL_NAME = "auditor"


def _jsonable(value: Any) -> Any:
    """Evidence is meant to be JSON-like already; make sure of it (tuples -> lists,
    anything else -> str) so that one odd check cannot break the report."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in seq]
    return str(value)


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "slug": rule.slug,
        "title": rule.title,
        "severity": rule.severity.value,
        "milestone": rule.milestone,
        "category": rule.category.value,
        "why": rule.why,
        "fix": rule.fix,
        "manual": rule.manual,
        "references": list(rule.references),
        "params": _jsonable(dict(rule.params)),
    }


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "rule_id": f.rule_id,
        "message": f.message,
        "fix": f.fix,
        "key": f.key,
        "location": f.location,
        "severity": f.severity.value if f.severity is not None else None,
        "evidence": _jsonable(dict(f.evidence)),
    }


def _item(item: ChecklistItem) -> dict[str, Any]:
    return {
        "rule": _rule(item.rule),
        "status": item.status.value,
        "bucket": item.bucket.value,
        "severity": item.severity.value,
        "reason": item.reason,
        "evidence_summary": item.evidence_summary,
        "findings": [_finding(f) for f in item.findings],
    }


def _summary(items: list[ChecklistItem]) -> dict[str, Any]:
    by_status = {s.value: 0 for s in STATUS_ORDER}
    by_bucket = {b.value: {"items": 0, "fail": 0, "findings": 0} for b in BUCKET_ORDER}
    for item in items:
        by_status[item.status.value] = by_status.get(item.status.value, 0) + 1
        b = by_bucket.setdefault(item.bucket.value, {"items": 0, "fail": 0, "findings": 0})
        b["items"] += 1
        b["fail"] += item.status is Status.FAIL
        b["findings"] += len(item.findings)
    return {
        "items": len(items),
        "findings": sum(len(i.findings) for i in items),
        "by_status": by_status,
        "by_bucket": by_bucket,
    }


def to_dict(report: Report) -> dict[str, Any]:
    """The report as a JSON-ready dict in the ``auditor.report/v1`` shape, redacted
    (secrets masked; see the module docstring)."""
    items = sorted_items(report.items)
    item_dicts = [_item(i) for i in items]
    blocking = [_finding(f) for f in report.blocking]
    # one pass over every finding: a value masked in one example is masked in all
    findings, blocking = mask_examples(([i["findings"] for i in item_dicts], blocking))
    for item, masked in zip(item_dicts, findings):
        item["findings"] = masked
    d = {
        "schema": SCHEMA_ID,
        "tool": {"name": TOOL_NAME, "version": report.tool_version},
        "milestone": {"id": report.milestone, "label": milestone_label(report.milestone)},
        "fail_on": report.fail_on.value,
        "started_at": report.started_at,
        "duration_s": round(float(report.duration_s), 3),
        "gate": {"failed": bool(report.gate_failed), "blocking": blocking},
        "summary": _summary(items),
        "sources": {str(k): str(v) for k, v in sorted(report.sources.items())},
        "items": item_dicts,
    }
    return redact_obj(d)


def dumps(report: Report) -> str:
    """The report as JSON text (2-space indent, UTF-8 characters kept, trailing newline)."""
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False) + "\n"


def write(report: Report, path: str | Path) -> Path:
    """Write the report as JSON to ``path`` (parents created). Returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dumps(report), encoding="utf-8")
    return p


# -- reading back -------------------------------------------------------------

def _enum(cls, value: Any, where: str):
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(v.value) for v in cls)
        raise ConfigError(f"{where}: {value!r} is not one of {allowed}") from None


def _req(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected an object")
    if key not in d:
        raise ConfigError(f"{where}: missing {key!r}")
    return d[key]


def _rule_from(d: Mapping[str, Any], where: str) -> Rule:
    return Rule(
        id=str(_req(d, "id", where)),
        slug=str(_req(d, "slug", where)),
        title=str(_req(d, "title", where)),
        severity=_enum(Severity, _req(d, "severity", where), f"{where}.severity"),
        milestone=str(_req(d, "milestone", where)),
        category=_enum(Category, _req(d, "category", where), f"{where}.category"),
        why=str(_req(d, "why", where)),
        fix=str(_req(d, "fix", where)),
        params=dict(d.get("params") or {}),
        manual=bool(d.get("manual", False)),
        references=tuple(d.get("references") or ()),
    )


def _finding_from(d: Mapping[str, Any], where: str) -> Finding:
    sev = d.get("severity") if isinstance(d, Mapping) else None
    return Finding(
        rule_id=str(_req(d, "rule_id", where)),
        message=str(_req(d, "message", where)),
        fix=str(_req(d, "fix", where)),
        key=str(_req(d, "key", where)),
        location=d.get("location"),
        severity=_enum(Severity, sev, f"{where}.severity") if sev is not None else None,
        evidence=dict(d.get("evidence") or {}),
    )


def from_dict(d: Mapping[str, Any]) -> Report:
    """Rebuild a :class:`Report` from :func:`to_dict` output (e.g. a saved ``audit.json``).

    Raises ConfigError naming the offending field when ``d`` is not an
    ``auditor.report/v1`` document. Derived fields (``summary``, the milestone
    label) are recomputed, not read.
    """
    if not isinstance(d, Mapping):
        raise ConfigError("report: expected a JSON object")
    schema = d.get("schema")
    if schema != SCHEMA_ID:
        raise ConfigError(
            f"report: schema is {schema!r}; this auditor reads {SCHEMA_ID!r} "
            "(was the file written by `auditor audit --json`?)"
        )
    ms = _req(d, "milestone", "report")
    milestone = milestones.get(_req(ms, "id", "report.milestone") if isinstance(ms, Mapping) else ms).id
    gate = _req(d, "gate", "report")
    items = []
    for n, raw in enumerate(_req(d, "items", "report")):
        where = f"report.items[{n}]"
        items.append(ChecklistItem(
            rule=_rule_from(_req(raw, "rule", where), f"{where}.rule"),
            status=_enum(Status, _req(raw, "status", where), f"{where}.status"),
            bucket=_enum(Bucket, _req(raw, "bucket", where), f"{where}.bucket"),
            severity=_enum(Severity, _req(raw, "severity", where), f"{where}.severity"),
            findings=tuple(_finding_from(f, f"{where}.findings[{k}]")
                           for k, f in enumerate(raw.get("findings") or ())),
            reason=raw.get("reason"),
            evidence_summary=raw.get("evidence_summary"),
        ))
    tool = d.get("tool") or {}
    return Report(
        milestone=milestone,
        fail_on=_enum(Severity, _req(d, "fail_on", "report"), "report.fail_on"),
        items=tuple(items),
        sources=dict(d.get("sources") or {}),
        started_at=str(d.get("started_at") or ""),
        duration_s=float(d.get("duration_s") or 0.0),
        tool_version=str(tool.get("version", "")) if isinstance(tool, Mapping) else "",
        gate_failed=bool(_req(gate, "failed", "report.gate")),
        blocking=tuple(_finding_from(f, f"report.gate.blocking[{k}]")
                       for k, f in enumerate(gate.get("blocking") or ())),
    )


def read(path: str | Path) -> Report:
    """Load a saved JSON report. Raises ConfigError if it is unreadable or not v1."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read report {p}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p} is not JSON: {exc.msg} at line {exc.lineno}") from None
    return from_dict(data)


def schema() -> dict[str, Any]:
    """The JSON Schema of ``auditor.report/v1`` (``reports/schema/report-v1.json``)."""
    return json.loads((resource_dir() / "schema" / "report-v1.json").read_text(encoding="utf-8"))
