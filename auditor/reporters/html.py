"""One self-contained HTML file for a design review.

Rendered with jinja2 (autoescape on) from ``report.html.j2``: inline CSS, an
inline SVG bar chart, one small inline script for filtering; no external URL is
loaded, so the file opens offline and can be attached to a ticket. The report is
redacted (through the JSON form) before any string reaches the template.

Templates are looked up in ``auditor/reports`` inside an installed wheel, else in
the repository's ``reports/`` folder (see :func:`auditor.reporters._common.resource_dir`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from auditor import milestones
from auditor.model import Report, Status
from auditor.reporters import _common as c

TEMPLATE = "report.html.j2"

_STATEMENT_START = (
    "select", "insert", "update", "delete", "with", "create", "alter", "drop", "explain",
    "begin", "commit", "set", "show", "copy",
)
_CODE_KEYS = ("statement", "statements", "query", "queries", "sql", "ddl", "plan",
              "fingerprint", "sample", "command", "config", "stack", "traceback")


def _load(name: str) -> str:
    path = c.resource_dir() / name
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise jinja2.TemplateNotFound(name) from None


def _is_statement(value: Any) -> bool:
    """A string that reads better in a code block: multi-line, long, or SQL."""
    if not isinstance(value, str):
        return False
    v = value.strip()
    return "\n" in v or len(v) > 72 or v.split(" ", 1)[0].lower() in _STATEMENT_START


def _is_code_key(key: Any) -> bool:
    k = str(key).lower()
    return any(k == ck or k.endswith("_" + ck) for ck in _CODE_KEYS)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "—"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def _keys(rows: list) -> list[str]:
    """Union of the keys of a list of dicts, in first-seen order."""
    seen: dict[str, None] = {}
    for r in rows:
        if isinstance(r, dict):
            for k in r:
                seen.setdefault(k, None)
    return list(seen)


def _all_mappings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, dict) for v in value)


def _when(iso: str) -> str:
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return iso or "—"
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return f"{t.day} {t:%B %Y, %H:%M} UTC"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["keys_union"] = _keys
    env.filters["first_line"] = c.first_line
    env.tests["statement"] = _is_statement
    env.tests["code_key"] = _is_code_key
    env.tests["table_rows"] = _all_mappings
    return env


def _ladder(report: Report) -> list[dict[str, Any]]:
    target = c._rank_or_top(report.milestone)
    rungs = []
    for r, m in enumerate(milestones.LADDER):
        items = [i for i in report.items if i.rule.milestone == m.id]
        bucket = "now" if r <= target else "next" if r == target + 1 else "premature"
        rungs.append({
            "id": m.id, "label": m.label, "hurts": m.hurts, "target": r == target,
            "bucket": bucket,
            "failing": sum(1 for i in items if i.status is Status.FAIL),
            "findings": sum(len(i.findings) for i in items),
            "rules": len(items),
        })
    return rungs


def _chart(ladder: list[dict[str, Any]]) -> dict[str, Any]:
    """Geometry of the findings-per-milestone bar chart (SVG user units)."""
    width, height, top, bottom, left = 560, 200, 38, 40, 8
    plot_h = height - top - bottom
    slot = (width - 2 * left) / len(ladder)
    bar_w = slot * 0.52
    peak = max([r["findings"] for r in ladder] + [1])
    bars = []
    for n, r in enumerate(ladder):
        h = round(plot_h * r["findings"] / peak, 1) if r["findings"] else 0
        x = left + n * slot + (slot - bar_w) / 2
        bars.append({**r, "x": round(x, 1), "w": round(bar_w, 1), "h": max(h, 1.5),
                     "y": round(top + plot_h - max(h, 1.5), 1), "cx": round(x + bar_w / 2, 1)})
    target = next((n for n, r in enumerate(ladder) if r["target"]), 0)
    return {"width": width, "height": height, "base": top + plot_h, "bars": bars,
            "divider": round(left + (target + 1) * slot, 1) if target + 1 < len(ladder) else None,
            "left": left, "right": width - left}


def context(report: Report) -> dict[str, Any]:
    """Everything the template reads. ``report`` is redacted here first."""
    from auditor.reporters.json import from_dict, to_dict
    data = to_dict(report)
    safe = from_dict(data)
    ladder = _ladder(safe)
    return {
        "r": safe,
        "d": data,
        "groups": c.groups(safe),
        "ladder": ladder,
        "chart": _chart(ladder),
        "gate": c.gate_sentence(safe),
        "gate_detail": c.gate_sentence(safe).split(": ", 1)[-1].replace(">=", "≥"),
        "when": _when(safe.started_at),
        "target_label": c.milestone_label(safe.milestone),
        "next": c.next_milestone(safe.milestone),
        "bottom": c.is_bottom(safe.milestone),
        "bottom_head": c.BOTTOM_HEAD,
        "bottom_body": c.BOTTOM_BODY,
        "counts": {s.value: n for s, n in c.status_counts(safe).items()},
        "icons": {s.value: i for s, i in c.STATUS_ICON.items()},
        "statuses": [s.value for s in c.STATUS_ORDER],
        "label_of": c.milestone_label,
        "finding_severity": c.finding_severity,
    }


def render(report: Report) -> str:
    """The report as one self-contained HTML document (a str)."""
    return _env().get_template(TEMPLATE).render(**context(report))


def write(report: Report, path: str | Path) -> Path:
    """Write :func:`render` output to ``path`` (parents created). Returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(report), encoding="utf-8")
    return p
