"""Reporters: JSON (round trip, schema), HTML (self-contained, escaped, redacted)
and terminal (groups, icons, summary, no escape codes without colour).

The report is built by hand from model objects: every status and every bucket,
findings with DDL fixes, statement lists, a hostile ``<script>`` in evidence and
a DSN with a password (``hunter2``) that must never reach any output.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from markupsafe import escape
from rich.console import Console

from auditor import engine
from auditor.model import (
    Bucket, Category, ChecklistItem, Finding, Report, Rule, Severity, Status,
)
from auditor.reporters import html as html_reporter
from auditor.reporters import json as json_reporter
from auditor.reporters import terminal

SECRET = "hunter2"
DSN = f"postgresql://app:{SECRET}@db/x"
ANSI = re.compile(r"\x1b\[")


def rule(rid: str, slug: str, title: str, severity: str, milestone: str, category: Category,
         *, manual: bool = False, fix: str = "Fix it.", refs: tuple[str, ...] = ()) -> Rule:
    return Rule(
        id=rid, slug=slug, title=title, severity=Severity(severity), milestone=milestone,
        category=category, why=f"Why {slug} matters as users grow.", fix=fix,
        params={"min_rows": 1000}, manual=manual, references=refs,
    )


R = {
    "PG101": rule("PG101", "missing-index", "Queries filter, join or sort on columns no index leads with",
                  "high", "1k", Category.DATABASE,
                  fix="Create a B-tree index whose leading columns are the equality columns.",
                  refs=("https://www.postgresql.org/docs/current/indexes-intro.html",)),
    "PG102": rule("PG102", "unindexed-foreign-key", "Foreign keys with no index leading with their columns",
                  "medium", "1k", Category.DATABASE),
    "PG201": rule("PG201", "n-plus-one", "N+1 queries inside one request", "high", "1k", Category.DATABASE),
    "PG202": rule("PG202", "redundant-query", "The same query with the same parameters repeated in one request",
                  "medium", "1k", Category.APPLICATION),
    "SRC101": rule("SRC101", "sync-third-party-call", "Synchronous third-party calls on the request path",
                   "high", "1k", Category.APPLICATION),
    "HTTP101": rule("HTTP101", "missing-rate-limit", "No rate limit observed on the HTTP endpoints",
                    "high", "1k", Category.PROTECTION),
    "RDS103": rule("RDS103", "redis-default-user-no-password", "Redis default user has no password",
                   "high", "1k", Category.PROTECTION),
    "OBS101": rule("OBS101", "error-tracking", "Errors are tracked and reported (Sentry, Rollbar, ...)",
                   "medium", "1k", Category.OBSERVABILITY, manual=True,
                   fix="Add an error tracker SDK to the app and alert on new issues."),
    "OBS102": rule("OBS102", "uptime-monitoring", "An external uptime monitor pings the site",
                   "medium", "1k", Category.OBSERVABILITY, manual=True),
    "PG301": rule("PG301", "no-connection-pooling", "No connection pooling in front of PostgreSQL",
                  "high", "10k", Category.DATABASE),
    "RDS101": rule("RDS101", "redis-no-eviction", "Redis cache without a memory limit or with noeviction",
                   "medium", "10k", Category.INFRASTRUCTURE),
    "INF201": rule("INF201", "zero-downtime-deploys", "Deploys do not drop requests",
                   "medium", "10k", Category.INFRASTRUCTURE, manual=True),
    "HTTP201": rule("HTTP201", "missing-health-check", "No health check endpoint for the load balancer",
                    "medium", "100k", Category.INFRASTRUCTURE),
    "RDS102": rule("RDS102", "redis-low-hit-ratio", "Redis cache hit ratio below 80 %",
                   "medium", "100k", Category.APPLICATION),
    "INF301": rule("INF301", "backups-restore-tested", "Database backups exist and a restore has been tested",
                   "high", "100k", Category.INFRASTRUCTURE, manual=True),
    "SHD101": rule("SHD101", "no-sharding-key", "No sharding key chosen for the largest tables",
                   "low", "100k+", Category.DATABASE),
}

DDL_ORDERS = "CREATE INDEX CONCURRENTLY orders_customer_id_created_at_idx\n    ON public.orders (customer_id, created_at);"
DDL_ITEMS = "CREATE INDEX CONCURRENTLY line_items_order_id_idx ON public.line_items (order_id);"

F_ORDERS = Finding(
    rule_id="PG101",
    message="Seq scan on public.orders (48,210 rows) for 1,204 calls filtering on customer_id, created_at",
    fix=DDL_ORDERS, key="public.orders(customer_id,created_at)", location="public.orders",
    evidence={
        "table": "public.orders", "rows": 48210, "calls": 1204, "mean_ms": 18.4,
        "fingerprint": "SELECT * FROM orders WHERE customer_id = $1 AND created_at > $2 ORDER BY created_at",
        "hypothetical_index": {"cost_before": 1893.5, "cost_after": 8.44, "improvement": 0.9955},
    },
)
F_ITEMS = Finding(
    rule_id="PG101", message="Seq scan on public.line_items (210,004 rows) for 3,881 calls filtering on order_id",
    fix=DDL_ITEMS, key="public.line_items(order_id)", location="public.line_items",
    evidence={"table": "public.line_items", "rows": 210004, "calls": 3881,
              "seen_in": f"log read from {DSN}"},
)
F_NPLUS1 = Finding(
    rule_id="PG201", message="GET /orders runs the same SELECT 51 times (N+1): 1 list query + 50 per-row queries",
    fix="Load the customers in one query:\n  Order.objects.select_related('customer')",
    key="GET /orders:SELECT customers by id", location="app/views.py:42", severity=Severity.HIGH,
    evidence={
        "request": "GET /orders", "repeats": 50, "total_ms": 212.7,
        "statements": [
            "SELECT id, customer_id, total FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 50",
            "SELECT id, name, email FROM customers WHERE id = $1",
        ],
        "samples": [{"session": "6650a1.2f", "repeats": 50, "ms": 212.7},
                    {"session": "6650a1.31", "repeats": 48, "ms": 199.0}],
    },
)
F_SCRIPT = Finding(
    rule_id="PG202", message="The same SELECT on settings repeated 12 times in POST /checkout",
    fix="Read the settings row once per request and reuse it.", key="POST /checkout:settings",
    location="app/checkout.py:88", severity=Severity.MEDIUM,
    evidence={"statement": "SELECT value FROM settings WHERE key = '<script>alert(1)</script>'",
              "repeats": 12},
)
F_REDIS = Finding(
    rule_id="RDS103", message="The Redis default user at cache:6379 runs commands without a password",
    fix="requirepass <a long random secret>   # redis.conf", key="cache:6379",
    location="redis://cache:6379/0",
    evidence={"probe": "PING answered PONG without AUTH", "acl": ["user default on nopass ~* &* +@all"]},
)
F_POOL = Finding(
    rule_id="PG301", message="1,840 new connections per minute; 71 % of sessions last under 1 s",
    fix="pool_mode = transaction   # pgbouncer.ini\ndefault_pool_size = 20",
    key="db:5432", location="db:5432",
    evidence={"connections_per_s": 30.7, "short_session_share": 0.71, "max_connections": 100},
)
F_HEALTH = Finding(
    rule_id="HTTP201", message="None of /health, /healthz, /readyz answered 200 on http://app.internal/",
    fix="Serve GET /healthz with 200.", key="http://app.internal/", location="http://app.internal/",
    evidence={"tried": ["/health", "/healthz", "/readyz"], "statuses": [404, 404, 404]},
)


def sample_report(milestone: str = "1k") -> Report:
    """Items in every status and every bucket; buckets and the gate follow the
    target milestone the way the checklist builder assigns them."""

    def item(rid: str, status: Status, findings=(), reason=None, summary=None) -> ChecklistItem:
        failing = R[rid].severity if status is Status.FAIL else None
        bucket = engine.bucket_for(R[rid], milestone, failing)
        return ChecklistItem(rule=R[rid], status=status, bucket=bucket, severity=R[rid].severity,
                             findings=tuple(findings), reason=reason, evidence_summary=summary)

    items = (
        item("PG102", Status.PASS, summary="14 foreign keys on 9 tables, all indexed"),
        item("PG101", Status.FAIL, [F_ORDERS, F_ITEMS]),
        item("PG201", Status.FAIL, [F_NPLUS1]),
        item("PG202", Status.FAIL, [F_SCRIPT]),
        item("SRC101", Status.ERROR, reason="check crashed: KeyError: 'calls' (see --verbose)"),
        item("HTTP101", Status.NOT_VERIFIED, reason="no HTTP base URL given (http.base_urls or --http)"),
        item("RDS103", Status.FAIL, [F_REDIS]),
        item("OBS101", Status.MANUAL),
        item("OBS102", Status.OFF, reason="switched off in auditor.yaml"),
        item("PG301", Status.FAIL, [F_POOL]),
        item("RDS101", Status.PASS, summary="maxmemory 256mb, policy allkeys-lru"),
        item("INF201", Status.MANUAL),
        item("HTTP201", Status.FAIL, [F_HEALTH]),
        item("RDS102", Status.NOT_VERIFIED, reason="only 212 keyspace lookups; 1000 needed to judge a hit ratio"),
        item("INF301", Status.MANUAL),
        item("SHD101", Status.PASS, summary="largest table 210,004 rows"),
    )
    blocking = tuple(f for i in items if i.bucket is Bucket.NOW for f in i.findings
                     if (f.severity or i.severity).weight >= Severity.HIGH.weight)
    return Report(
        milestone=milestone, fail_on=Severity.HIGH, items=items,
        sources={"postgres": DSN, "workload": "fixtures/demo/postgresql.log (12,345 statements)",
                 "redis": "redis://cache:6379/0", "http": "no HTTP base URL given (http.base_urls or --http)",
                 "source": "app/ (214 Python files)"},
        started_at="2025-05-01T09:30:00Z", duration_s=2.412, tool_version="0.1.0",
        gate_failed=bool(blocking), blocking=blocking,
    )


ALL_FINDINGS = (F_ORDERS, F_ITEMS, F_NPLUS1, F_SCRIPT, F_REDIS, F_POOL, F_HEALTH)


# -- JSON ----------------------------------------------------------------------

def test_json_round_trips_and_is_stable(tmp_path):
    report = sample_report()
    path = json_reporter.write(report, tmp_path / "out" / "audit.json")
    text = path.read_text(encoding="utf-8")
    d = json.loads(text)
    assert d["schema"] == "auditor.report/v1"
    assert d["tool"] == {"name": "auditor", "version": "0.1.0"}
    assert d["milestone"] == {"id": "1k", "label": "100-1K users"}
    assert d["gate"]["failed"] is True and len(d["gate"]["blocking"]) == 4
    assert d["summary"]["by_status"] == {"fail": 6, "error": 1, "not verified": 2,
                                         "manual": 3, "pass": 3, "off": 1}
    assert d["summary"]["by_bucket"]["fix now"] == {"items": 9, "fail": 4, "findings": 5}
    assert [i["bucket"] for i in d["items"]] == ["fix now"] * 9 + ["next"] * 3 + ["premature"] * 4
    # worst first inside a category: PG101 (fail, high) before PG102 (pass)
    ids = [i["rule"]["id"] for i in d["items"]]
    assert ids.index("PG101") < ids.index("PG201") < ids.index("PG102")

    again = json_reporter.from_dict(d)
    assert json_reporter.to_dict(again) == d
    # shuffled input gives the same document: ordering does not depend on the caller
    shuffled = Report(**{**report.__dict__, "items": tuple(reversed(report.items))})
    assert json_reporter.dumps(shuffled) == text
    assert again.items[0].findings[0].evidence["hypothetical_index"]["cost_after"] == 8.44
    assert json_reporter.read(path).gate_failed is True


def test_json_is_redacted():
    text = json_reporter.dumps(sample_report())
    assert SECRET not in text
    assert "postgresql://app:***@db/x" in text


def test_json_validates_against_schema():
    import jsonschema  # a test dependency (pyproject: test extra)

    schema = json_reporter.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json_reporter.to_dict(sample_report()), schema,
                        cls=jsonschema.Draft202012Validator)
    empty = Report(milestone="100", fail_on=Severity.CRITICAL, items=(), sources={},
                   started_at="2025-05-01T09:30:00Z", duration_s=0.0, tool_version="0.1.0",
                   gate_failed=False)
    jsonschema.validate(json_reporter.to_dict(empty), schema, cls=jsonschema.Draft202012Validator)


def test_from_dict_rejects_other_documents():
    from auditor.errors import ConfigError
    with pytest.raises(ConfigError, match="auditor.report/v1"):
        json_reporter.from_dict({"schema": "something/v9"})
    d = json_reporter.to_dict(sample_report())
    d["items"][0]["status"] = "exploded"
    with pytest.raises(ConfigError, match=r"items\[0\].status"):
        json_reporter.from_dict(d)


# -- HTML ----------------------------------------------------------------------

def test_html_is_self_contained_complete_escaped_and_redacted(tmp_path):
    path = html_reporter.write(sample_report(), tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    # nothing loaded from the network: no external stylesheet, script, image, font or import
    assert not re.search(r"<(link|script|img|iframe|source|embed|object)\b[^>]*\b(src|href|data)\s*=\s*[\"']?(https?:)?//",
                         page, re.I)
    assert not re.search(r"<link\b", page, re.I)
    assert not re.search(r"url\(\s*[\"']?(https?:)?//|@import", page, re.I)
    assert len(re.findall(r"<script\b", page, re.I)) <= 1  # the one inline filter script
    for f in ALL_FINDINGS:  # as jinja's autoescape writes them
        assert str(escape(f.message)) in page, f.message
        assert str(escape(f.fix)) in page, f.fix
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert SECRET not in page
    # sections a reviewer looks for
    for text in ("Fix now", "Next", "Premature", "Gate failed", "100-1K users", "0.1.0", "<svg"):
        assert text in page
    assert page.index("Fix now") < page.index('id="bucket-next"') < page.index('id="bucket-premature"')
    assert "<details" in page


def test_html_render_from_saved_json(tmp_path):
    d = json_reporter.to_dict(sample_report())
    page = html_reporter.render(json_reporter.from_dict(d))
    assert F_NPLUS1.message in page and SECRET not in page


def test_html_bottom_milestone_says_anything_works():
    page = html_reporter.render(sample_report("100"))
    assert "anything works" in page


# -- terminal ------------------------------------------------------------------

def _terminal_text(report: Report, width: int = 100) -> str:
    console = Console(record=True, width=width, no_color=True, file=io.StringIO(), force_terminal=False)
    terminal.render(report, console)
    return console.export_text()


def test_terminal_groups_icons_and_summary():
    out = _terminal_text(sample_report())
    now, nxt, prem = out.index("FIX NOW"), out.index("NEXT"), out.index("PREMATURE")
    assert now < nxt < prem
    for icon in "✔✘?!☐–":
        assert icon in out
    # findings with their fix; short DDL in full
    flat = " ".join(out.split())  # undo line wrapping
    assert F_ORDERS.message in flat and F_NPLUS1.message in flat and F_POOL.message in flat
    assert "CREATE INDEX CONCURRENTLY orders_customer_id_created_at_idx" in out
    assert "ON public.orders (customer_id, created_at);" in out
    # not verified / error items say why
    assert "no HTTP base URL given" in out and "check crashed: KeyError" in out
    # premature: one line each, no findings or fixes
    premature = out[prem:]
    premature = " ".join(premature.split())
    assert "premature at 1k: revisit at 10K-100K users" in premature
    assert "premature at 1k: revisit at 100K+ users" in premature
    assert F_HEALTH.message not in flat
    # summary and gate
    assert "16 items, 7 findings" in out
    assert "6 fail" in out and "3 pass" in out and "2 not verified" in out
    assert "gate failed: 4 findings at or below 1k with severity >= high" in out
    assert SECRET not in out
    # categories inside a group, in order
    fix_now = out[now:nxt]
    assert fix_now.index("Database") < fix_now.index("Application") < fix_now.index("Protection")


def test_terminal_fits_80_columns():
    out = _terminal_text(sample_report(), width=80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "gate failed" in out


def test_terminal_bottom_milestone_lists_only_protection_issues():
    out = _terminal_text(sample_report("100"))
    assert "anything works" in out
    fix_now = out[out.index("FIX NOW"):out.index("NEXT")]
    assert "RDS103" in fix_now
    assert "PG101" not in fix_now and "PG201" not in fix_now


def test_terminal_gate_passed():
    r = sample_report()
    passed = Report(**{**r.__dict__, "gate_failed": False, "blocking": ()})
    assert "gate passed" in _terminal_text(passed)


def test_terminal_no_color_env_has_no_escape_codes(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    terminal.render(sample_report(), console)
    out = buf.getvalue()
    assert "FIX NOW" in out
    assert not ANSI.search(out)


def test_terminal_non_tty_has_no_escape_codes(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    buf = io.StringIO()  # not a TTY
    console = Console(file=buf, width=100)
    terminal.render(sample_report(), console)
    out = buf.getvalue()
    assert "gate failed" in out
    assert not ANSI.search(out)


def test_terminal_tty_is_coloured(monkeypatch):
    """The counterpart of the two tests above: on a terminal, colour is on."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="standard", width=100)
    terminal.render(sample_report(), console)
    assert ANSI.search(buf.getvalue())


def test_terminal_caps_long_finding_lists_and_prints_markup_literally():
    many = tuple(
        Finding(rule_id="PG101", message=f"Seq scan on public.t{n} [bold]x[/bold]", fix=f"CREATE INDEX ON t{n} (a);",
                key=f"t{n}") for n in range(25)
    )
    r = sample_report()
    items = tuple(ChecklistItem(**{**i.__dict__, "findings": many}) if i.rule.id == "PG101" else i
                  for i in r.items)
    out = _terminal_text(Report(**{**r.__dict__, "items": items}))
    assert "Seq scan on public.t9 [bold]x[/bold]" in out
    assert "public.t10 " not in out
    assert "and 15 more findings" in out
    # every finding is still in the JSON report
    assert len(json_reporter.to_dict(Report(**{**r.__dict__, "items": items}))["items"][0]["findings"]) == 25


def test_terminal_survives_a_narrow_console():
    out = _terminal_text(sample_report(), width=40)
    assert "gate failed" in " ".join(out.split())
