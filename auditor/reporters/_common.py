"""Shared by the reporters: display order, grouping by bucket and category,
status/severity vocabulary, the gate sentence, and where packaged resources
(templates, the JSON Schema) live.

Rendering only: nothing here decides a status, a bucket or the gate; those
come from the :class:`~auditor.model.Report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from auditor import milestones
from auditor.model import Bucket, Category, ChecklistItem, Finding, Report, Severity, Status

BUCKET_ORDER: tuple[Bucket, ...] = (Bucket.NOW, Bucket.NEXT, Bucket.PREMATURE)
CATEGORY_ORDER: tuple[Category, ...] = tuple(Category)
# Worst first: what needs reading comes first within a category.
STATUS_ORDER: tuple[Status, ...] = (
    Status.FAIL, Status.ERROR, Status.NOT_VERIFIED, Status.MANUAL, Status.PASS, Status.OFF,
)
SEVERITY_ORDER: tuple[Severity, ...] = tuple(sorted(Severity, key=lambda s: -s.weight))

STATUS_ICON: dict[Status, str] = {
    Status.PASS: "✔", Status.FAIL: "✘", Status.NOT_VERIFIED: "?",
    Status.ERROR: "!", Status.MANUAL: "☐", Status.OFF: "–",
}
BUCKET_TITLE: dict[Bucket, str] = {
    Bucket.NOW: "Fix now", Bucket.NEXT: "Next", Bucket.PREMATURE: "Premature",
}


def _rank_or_top(milestone_id: str) -> int:
    try:
        return milestones.rank(milestone_id)
    except Exception:  # noqa: BLE001 - an unknown id (third-party rule) sorts last
        return len(milestones.IDS)


def item_sort_key(item: ChecklistItem) -> tuple:
    """Canonical order of checklist items, used by every reporter (and so by the JSON):
    bucket (fix now, next, premature), category, status (worst first), severity
    (worst first), the rule's milestone, rule id."""
    return (
        BUCKET_ORDER.index(item.bucket) if item.bucket in BUCKET_ORDER else len(BUCKET_ORDER),
        CATEGORY_ORDER.index(item.rule.category) if item.rule.category in CATEGORY_ORDER else 99,
        STATUS_ORDER.index(item.status) if item.status in STATUS_ORDER else 99,
        -item.severity.weight,
        _rank_or_top(item.rule.milestone),
        item.rule.id,
    )


def sorted_items(items) -> list[ChecklistItem]:
    return sorted(items, key=item_sort_key)


def finding_severity(finding: Finding, item: ChecklistItem) -> Severity:
    """A finding's effective severity: its own, else its item's."""
    return finding.severity or item.severity


def milestone_label(milestone_id: str) -> str:
    try:
        return milestones.get(milestone_id).label
    except Exception:  # noqa: BLE001
        return str(milestone_id)


def next_milestone(milestone_id: str) -> milestones.Milestone | None:
    r = _rank_or_top(milestone_id)
    return milestones.LADDER[r + 1] if r + 1 < len(milestones.LADDER) else None


def is_bottom(milestone_id: str) -> bool:
    """True at the ``100`` rung, where anything works and the report must not nag."""
    return _rank_or_top(milestone_id) == 0


@dataclass
class Group:
    """One of the three sections of a checklist (fix now / next / premature)."""
    bucket: Bucket
    title: str
    blurb: str
    items: list[ChecklistItem] = field(default_factory=list)

    @property
    def by_category(self) -> list[tuple[Category, list[ChecklistItem]]]:
        out: dict[Category, list[ChecklistItem]] = {}
        for item in self.items:  # already in item_sort_key order
            out.setdefault(item.rule.category, []).append(item)
        return list(out.items())

    @property
    def failing(self) -> int:
        return sum(1 for i in self.items if i.status is Status.FAIL)

    @property
    def findings(self) -> int:
        return sum(len(i.findings) for i in self.items)


def groups(report: Report) -> list[Group]:
    """The checklist as the three sections every human-facing reporter shows.

    The report's buckets are used as they are (the engine decides them, so the
    gate, the JSON and every reporter agree); at the ``100`` rung only the blurb
    changes: fix now then holds only protection issues (auditor.engine.bucket_for).
    """
    m = report.milestone
    nxt = next_milestone(m)
    now = Group(Bucket.NOW, "Fix now",
                f"rules at or below {m} ({milestone_label(m)}) that matter at your size")
    if nxt is not None:
        nxt_blurb = f"rules at {nxt.id} ({nxt.label}): plan these before you get there"
    else:
        nxt_blurb = "you are at the top of the ladder: nothing comes next"
    nxt_g = Group(Bucket.NEXT, "Next", nxt_blurb)
    prem = Group(Bucket.PREMATURE, "Premature",
                 f"rules above {nxt.id if nxt else m}: do not spend time here yet")
    by_bucket = {Bucket.NOW: now, Bucket.NEXT: nxt_g, Bucket.PREMATURE: prem}
    if is_bottom(m):
        now.blurb = "protection issues only: an open door is open at any size"
    for item in sorted_items(report.items):
        by_bucket.get(item.bucket, prem).items.append(item)
    return [now, nxt_g, prem]


BOTTOM_HEAD = "At 0-100 users anything works."
BOTTOM_BODY = ("A single server, no cache, no replica is fine. Do not spend time on scaling yet; "
               "only protection issues are listed as fix now.")
BOTTOM_NOTE = f"{BOTTOM_HEAD} {BOTTOM_BODY}"


def status_counts(report: Report) -> dict[Status, int]:
    counts = {s: 0 for s in STATUS_ORDER}
    for item in report.items:
        counts[item.status] = counts.get(item.status, 0) + 1
    return counts


def gate_sentence(report: Report) -> str:
    """``gate failed: 3 findings at or below 1k with severity >= high`` / ``gate passed: ...``."""
    n = len(report.blocking)
    scope = f"at or below {report.milestone} with severity >= {report.fail_on.value}"
    if report.gate_failed:
        if n:
            return f"gate failed: {n} finding{'s' if n != 1 else ''} {scope}"
        return f"gate failed (fail-on {report.fail_on.value} at {report.milestone})"
    return f"gate passed: no findings {scope}"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def resource_dir() -> Traversable:
    """The report templates and schema: ``auditor/reports`` inside an installed
    wheel (force-included from the top-level ``reports/``), else the repository's
    ``reports/`` folder in a source checkout."""
    packaged = resources.files("auditor") / "reports"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "reports"
