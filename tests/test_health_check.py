"""HTTP201 missing-health-check, judged on facts collected from real loopback servers."""

from __future__ import annotations

import json
from dataclasses import asdict

from auditor import rules
from auditor.collectors.http import DEFAULT_HEALTH_PATHS, HttpCollector
from auditor.facts import Facts
from auditor.model import Finding, Inconclusive, Severity
from checks.health_check import MissingHealthCheck
from httpservers import HEALTH_ONLY, SPLIT_PROBES, closed_port_url, serve

PARAMS = rules.load()["HTTP201"].params


def audit(*urls: str, params=PARAMS, timeout_s: float = 5.0) -> list:
    """Collect as the engine would (paths from HTTP201's params) and run the check."""
    facts = HttpCollector(list(urls), timeout_s=timeout_s, health_paths=params["paths"], burst=None).collect()
    return list(MissingHealthCheck().run(Facts(http=facts), params))


def test_rule_paths_are_the_collector_defaults():
    assert tuple(PARAMS["paths"]) == DEFAULT_HEALTH_PATHS and PARAMS["timeout_s"] == 2.0


def test_separate_liveness_and_readiness_pass():
    with serve(health=SPLIT_PROBES) as srv:
        assert audit(srv.url) == []
    with serve(health={"/healthz": 200, "/ready": 200}) as srv:
        assert audit(srv.url) == []


def test_no_health_endpoint_is_a_finding_listing_every_path():
    with serve() as srv:
        (finding,) = audit(srv.url)
    assert isinstance(finding, Finding) and finding.rule_id == "HTTP201"
    assert finding.severity is None  # the rule's own: medium
    assert finding.message.startswith(f"no health check endpoint on {srv.url}")
    assert "/health: 404" in finding.message and "/actuator/health: 404" in finding.message
    assert set(finding.evidence["probes"]) == set(DEFAULT_HEALTH_PATHS)
    assert finding.evidence["probes"]["/readyz"]["status"] == 404
    assert finding.location == srv.url
    json.dumps(asdict(finding))


def test_only_health_means_liveness_and_readiness_are_not_separate():
    """The demo app: only /health answers. A low finding that names the path."""
    with serve(health=HEALTH_ONLY) as srv:
        (finding,) = audit(srv.url)
    assert finding.severity == Severity.LOW
    assert "liveness and readiness are not separate" in finding.message
    assert "only /health answered" in finding.message
    assert "readiness" in finding.message and "/readyz" in finding.fix


def test_only_readiness_is_not_separate_either():
    with serve(health={"/readyz": 200}) as srv:
        (finding,) = audit(srv.url)
    assert finding.severity == Severity.LOW and "only /readyz answered" in finding.message
    assert "no separate liveness path" in finding.message


def test_unhealthy_answer_is_reported_as_such():
    with serve(health={"/livez": 200, "/readyz": 503}) as srv:
        (finding,) = audit(srv.url)
    assert finding.severity == Severity.LOW and "only /livez answered" in finding.message
    assert finding.evidence["probes"]["/readyz"]["status"] == 503


def test_a_2xx_slower_than_timeout_s_does_not_count():
    params = {**PARAMS, "timeout_s": 0.1}
    with serve(health=SPLIT_PROBES, slow={"/livez": 0.3, "/readyz": 0.3}) as srv:
        (finding,) = audit(srv.url, params=params)
    assert finding.severity is None
    assert "/livez: 200 after" in finding.message and "over 100 ms" in finding.message


def test_a_health_path_timing_out_is_not_a_pass():
    params = {**PARAMS, "paths": ["/health"], "timeout_s": 0.2}
    with serve(health=HEALTH_ONLY, slow={"/health": 2.0}) as srv:
        (finding,) = audit(srv.url, params=params, timeout_s=0.2)
    assert "no response from" in finding.message and finding.evidence["probes"]["/health"]["status"] is None


def test_redirect_to_a_login_page_is_not_a_health_check():
    with serve(health={"/login": 200}, redirects={"/health": "/login", "/readyz": "/login"}) as srv:
        (finding,) = audit(srv.url, params={**PARAMS, "paths": ["/health", "/readyz"]})
    assert "after a redirect to /login" in finding.message


def test_trailing_slash_redirect_still_counts():
    with serve(health={"/livez/": 200, "/readyz/": 200}, redirects={"/livez": "/livez/", "/readyz": "/readyz/"}) as srv:
        assert audit(srv.url, params={**PARAMS, "paths": ["/livez", "/readyz"]}) == []


def test_catch_all_route_is_inconclusive_not_pass():
    with serve(catch_all=True) as srv:
        (result,) = audit(srv.url)
    assert isinstance(result, Inconclusive) and "catch-all" in result.reason


def test_real_endpoints_behind_a_catch_all_still_pass():
    with serve(catch_all=True, health=SPLIT_PROBES) as srv:
        assert audit(srv.url) == []


def test_unreachable_target_is_not_judged():
    down = closed_port_url()
    with serve(health=SPLIT_PROBES) as srv:
        results = audit(srv.url, down)
    assert len(results) == 1 and isinstance(results[0], Inconclusive)
    assert down in results[0].reason


def test_password_never_reaches_findings():
    password = "hc-pass-5555"
    with serve() as srv:
        results = audit(srv.url.replace("http://", f"http://ops:{password}@"))
    text = json.dumps([asdict(r) for r in results])
    assert password not in text and "ops:***@" in text
