"""HTTP101 missing-rate-limit, judged on facts collected from real loopback servers."""

from __future__ import annotations

import json
from dataclasses import asdict

from auditor import rules
from auditor.collectors.http import HttpCollector
from auditor.facts import Facts
from auditor.model import Finding, Inconclusive, Severity
from checks.rate_limit import MissingRateLimit
from httpservers import HEALTH_ONLY, closed_port_url, serve

PARAMS = rules.load()["HTTP101"].params


def audit(*urls: str, burst: dict | None = None) -> list:
    """Collect as the engine would (burst from HTTP101's params) and run the check."""
    if burst is None:
        burst = {"requests": PARAMS["requests"], "concurrency": PARAMS["concurrency"], "path": PARAMS["path"]}
    facts = HttpCollector(list(urls), health_paths=(), burst=burst).collect()
    return list(MissingRateLimit().run(Facts(http=facts), PARAMS))


def test_rule_params_are_the_collector_defaults():
    assert dict(PARAMS) == {"requests": 30, "concurrency": 5, "path": "/"}


def test_429_with_retry_after_passes():
    with serve(rate_limit_after=10, retry_after="30") as srv:
        assert audit(srv.url) == []


def test_ratelimit_headers_pass_without_any_429():
    with serve(ratelimit_headers="ietf") as srv:
        assert audit(srv.url) == []
    with serve(ratelimit_headers="x") as srv:
        assert audit(srv.url) == []


def test_no_limit_is_a_finding_with_the_evidence():
    with serve() as srv:
        (finding,) = audit(srv.url)
    assert isinstance(finding, Finding)
    assert finding.rule_id == "HTTP101"
    assert "no limit observed up to 30 requests" in finding.message
    assert f"{srv.url}/" in finding.message and finding.location == f"{srv.url}/"
    assert finding.severity is None  # the rule's own: high
    assert finding.evidence["sent"] == 30 and finding.evidence["concurrency"] == 5
    assert finding.evidence["statuses"] == {"200": 30}
    assert "429" in finding.fix and "Retry-After" in finding.fix
    assert finding.key == f"{srv.url}/"  # a baseline key names the URL and carries no counts
    json.dumps(asdict(finding))  # evidence is JSON-serialisable


def test_429_without_retry_after_is_a_lower_severity_finding():
    with serve(rate_limit_after=5, retry_after=None) as srv:
        (finding,) = audit(srv.url)
    assert finding.severity == Severity.MEDIUM
    assert "429 without Retry-After" in finding.message and "back off" in finding.message
    assert finding.evidence["first_429_at"] is not None and finding.evidence["retry_after"] is None


def test_unreachable_target_is_not_judged():
    down = closed_port_url()
    with serve(rate_limit_after=10) as srv:
        results = audit(down, srv.url)
    # the reachable target passes, but the item must not become "pass": one Inconclusive says why
    assert len(results) == 1 and isinstance(results[0], Inconclusive)
    assert down in results[0].reason and "not reachable" in results[0].reason


def test_findings_and_unjudged_targets_are_both_reported():
    down = closed_port_url()
    with serve() as srv:
        results = audit(srv.url, down)
    assert [type(r) for r in results] == [Finding, Inconclusive]


def test_burst_disabled_is_inconclusive():
    with serve() as srv:
        facts = HttpCollector([srv.url], health_paths=(), burst=None).collect()
    (result,) = MissingRateLimit().run(Facts(http=facts), PARAMS)
    assert isinstance(result, Inconclusive) and "burst disabled in config" in result.reason


def test_demo_like_app_without_a_limit_fails():
    """The demo serves a small app with only /health and no rate limit."""
    with serve(health=HEALTH_ONLY) as srv:
        results = audit(srv.url)
    assert len(results) == 1 and isinstance(results[0], Finding)
    assert "no limit observed up to 30 requests" in results[0].message


def test_password_never_reaches_findings_or_reasons():
    password = "rl-pass-9876"
    down = closed_port_url().replace("http://", f"http://ops:{password}@")
    with serve() as srv:
        results = audit(srv.url.replace("http://", f"http://ops:{password}@"), down)
    text = json.dumps([asdict(r) for r in results])
    assert password not in text and "ops:***@" in text
