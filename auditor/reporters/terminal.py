"""The checklist in a terminal, with rich.

Layout: a header (target milestone, sources), then three sections, "Fix now",
"Next" and "Premature", each grouped by category. A fix-now or next item shows
a status icon, rule id, title and severity, then one line per finding (its
message, location and fix: the fix's first line, or the whole of a short DDL).
Premature items get one line each: the point is to say "not yet". A summary
line (counts by status) and the gate sentence close the output.

Colour follows the console: rich turns it off for NO_COLOR and non-TTY output.
With NO_COLOR set we also drop bold/dim, so the output carries no escape codes
at all. Every string is redacted before it is printed.
"""

from __future__ import annotations

from rich.console import Console, Group as RGroup
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from auditor.model import ChecklistItem, Finding, Report, Severity, Status
from auditor.reporters import _common as c

STATUS_STYLE: dict[Status, str] = {
    Status.PASS: "green", Status.FAIL: "bold red", Status.NOT_VERIFIED: "yellow",
    Status.ERROR: "bold magenta", Status.MANUAL: "cyan", Status.OFF: "dim",
}
SEVERITY_STYLE: dict[Severity, str] = {
    Severity.CRITICAL: "bold red", Severity.HIGH: "red", Severity.MEDIUM: "yellow",
    Severity.LOW: "blue", Severity.INFO: "dim",
}
BUCKET_STYLE = {"Fix now": "bold white on red", "Next": "bold black on yellow",
                "Premature": "bold white on grey37"}

MAX_FINDINGS = 10  # per item; the rest are counted, the HTML/JSON report has them all
SHORT_FIX_LINES = 6  # a fix this short (e.g. a few DDL statements) is shown in full
SHORT_FIX_CHARS = 480


class _Styler:
    """Style names, or nothing at all when the console has NO_COLOR."""

    def __init__(self, console: Console) -> None:
        self.plain = bool(console.no_color)

    def __call__(self, style: str) -> str:
        return "" if self.plain else style


def _fix_lines(fix: str) -> list[str]:
    lines = [ln.rstrip() for ln in fix.strip().splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) <= SHORT_FIX_LINES and sum(len(ln) for ln in lines) <= SHORT_FIX_CHARS:
        return lines
    more = len(lines) - 1
    if more == 0:  # one long paragraph: show it whole, it wraps
        return lines
    return [lines[0] + f"  … (+{more} more line{'s' if more != 1 else ''} in the HTML/JSON report)"]


def _finding_block(f: Finding, item: ChecklistItem, s: _Styler) -> Table:
    """A bullet with a hanging indent: the message, then ``at`` and ``fix`` rows."""
    sev = c.finding_severity(f, item)
    msg = Text(f.message)
    if f.severity is not None and f.severity is not item.severity:
        msg.append(f"  {sev.value}", style=s(SEVERITY_STYLE[sev]))
    detail = Table.grid(padding=(0, 1))
    detail.add_column(no_wrap=True)
    detail.add_column(overflow="fold")
    if f.location:
        detail.add_row(Text("at", style=s("dim")), Text(f.location, style=s("cyan")))
    lines = _fix_lines(f.fix) if f.fix.strip() else []
    if lines:
        detail.add_row(Text("fix", style=s("bold green")), Text("\n".join(lines)))
    outer = Table.grid(padding=(0, 1))
    outer.add_column(width=1, no_wrap=True)
    outer.add_column(overflow="fold")
    outer.add_row(Text("•", style=s("dim")), RGroup(msg, detail) if detail.row_count else msg)
    return outer


def _item_row(item: ChecklistItem, s: _Styler) -> tuple[Text, Text, RGroup]:
    icon = Text(c.STATUS_ICON.get(item.status, "?"), style=s(STATUS_STYLE.get(item.status, "")))
    rid = Text(item.rule.id, style=s("bold"))
    title = Text(item.rule.title)
    title.append("  ")
    title.append(item.severity.value, style=s(SEVERITY_STYLE[item.severity]))
    if item.status is not Status.FAIL:
        title.append(f"  {item.status.value}", style=s(STATUS_STYLE.get(item.status, "")))
    body: list = [title]
    if item.status in (Status.NOT_VERIFIED, Status.ERROR, Status.OFF) and item.reason:
        body.append(Text(item.reason, style=s("italic") if item.status is not Status.ERROR else s("magenta")))
    elif item.status is Status.PASS and item.evidence_summary:
        body.append(Text(item.evidence_summary, style=s("dim")))
    elif item.status is Status.MANUAL:
        body.append(Text("check by hand: " + c.first_line(item.rule.fix), style=s("dim")))
        if item.reason:
            body.append(Text(item.reason, style=s("italic")))
    for f in item.findings[:MAX_FINDINGS]:
        body.append(_finding_block(f, item, s))
    hidden = len(item.findings) - MAX_FINDINGS
    if hidden > 0:
        body.append(Text(f"… and {hidden} more finding{'s' if hidden != 1 else ''} "
                         "(see the HTML or JSON report)", style=s("dim")))
    return icon, rid, RGroup(*body)


def _grid(id_width: int) -> Table:
    g = Table.grid(padding=(0, 1))
    g.add_column(width=1, no_wrap=True)
    g.add_column(width=id_width, no_wrap=True)
    g.add_column(overflow="fold")
    return g


def _premature(group: c.Group, report: Report, console: Console, s: _Styler, id_width: int) -> None:
    for cat, items in group.by_category:
        console.print(Padding(Text(cat.value, style=s("bold underline")), (0, 0, 0, 1), expand=False))
        g = _grid(id_width)
        for item in items:
            note = Text(item.rule.title, style=s("dim"))
            note.append("  ")
            note.append(f"premature at {report.milestone}: revisit at "
                        f"{c.milestone_label(item.rule.milestone)}", style=s("italic"))
            g.add_row(Text(c.STATUS_ICON.get(item.status, "?"), style=s("dim")),
                      Text(item.rule.id, style=s("dim")), note)
        console.print(Padding(g, (0, 0, 0, 2), expand=False))


def render(report: Report, console: Console) -> None:
    """Print the checklist for ``report`` on ``console`` (see the module docstring).

    Construct the console normally (``Console()``) so that NO_COLOR, TERM=dumb
    and non-TTY output are honoured; width 80 and up reads well.
    """
    # Render from a redacted copy: no string reaches the console unredacted.
    from auditor.reporters.json import from_dict, to_dict
    report = from_dict(to_dict(report))
    s = _Styler(console)
    id_width = max([len(i.rule.id) for i in report.items] + [5])

    head = Text("auditor ", style=s("bold"))
    head.append(report.tool_version or "")
    head.append("  target ", style=s("dim"))
    head.append(report.milestone, style=s("bold"))
    head.append(f" ({c.milestone_label(report.milestone)})")
    head.append("  fail-on ", style=s("dim"))
    head.append(report.fail_on.value)
    console.print(head)
    if report.sources:
        src = Table.grid(padding=(0, 1))
        src.add_column(style=s("dim"), no_wrap=True)
        src.add_column(overflow="fold")
        for kind, what in sorted(report.sources.items()):
            src.add_row(kind, Text(what))
        console.print(Padding(src, (0, 0, 0, 1), expand=False))
    if c.is_bottom(report.milestone):
        console.print()
        console.print(Text(c.BOTTOM_NOTE, style=s("bold green")))

    for group in c.groups(report):
        console.print()
        title = Text(f" {group.title.upper()} ", style=s(BUCKET_STYLE[group.title]))
        title.append("  ")
        title.append(group.blurb, style=s("dim"))
        console.print(title)
        if not group.items:
            msg = "nothing to fix at this size" if group.title == "Fix now" else "nothing here"
            console.print(Padding(Text(msg, style=s("dim")), (0, 0, 0, 2), expand=False))
            continue
        if group.title == "Premature":
            _premature(group, report, console, s, id_width)
            continue
        for cat, items in group.by_category:
            console.print(Padding(Text(cat.value, style=s("bold underline")), (0, 0, 0, 1), expand=False))
            g = _grid(id_width)
            for item in items:
                g.add_row(*_item_row(item, s))
            console.print(Padding(g, (0, 0, 0, 2), expand=False))

    console.print()
    counts = c.status_counts(report)
    nfind = sum(len(i.findings) for i in report.items)
    console.print(Text(f"{len(report.items)} items, {nfind} finding{'s' if nfind != 1 else ''}",
                       style=s("bold")))
    summary = Text()
    first = True
    for st in c.STATUS_ORDER:
        if counts.get(st):
            if not first:
                summary.append(" · ", style=s("dim"))
            summary.append(f"{c.STATUS_ICON[st]} {counts[st]} {st.value}", style=s(STATUS_STYLE[st]))
            first = False
    console.print(summary)
    gate = c.gate_sentence(report)
    console.print(Text(gate, style=s("bold red" if report.gate_failed else "bold green")))
