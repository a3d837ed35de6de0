"""The HTTP prober against real loopback servers: what it sends, what it records."""

from __future__ import annotations

import pytest

from auditor.collectors.http import USER_AGENT, HttpCollector
from auditor.errors import ConfigError, TargetUnreachable
from auditor.facts.http import HttpFacts
from httpservers import HEALTH_ONLY, SPLIT_PROBES, closed_port_url, serve

NO_BURST = None


def test_probes_each_health_path_once_and_identifies_itself():
    with serve(health=HEALTH_ONLY) as srv:
        facts = HttpCollector([srv.url], burst=NO_BURST).collect()
    (target,) = facts.targets
    assert target.reachable and target.error is None
    statuses = {p.path: p.status for p in target.health}
    assert statuses == {
        "/health": 200, "/healthz": 404, "/livez": 404, "/readyz": 404, "/ready": 404,
        "/status": 404, "/ping": 404, "/actuator/health": 404,
    }
    health = target.health[0]
    assert health.url == f"{srv.url}/health" and health.body_excerpt == '{"status": "ok"}'
    assert health.elapsed_ms is not None and health.elapsed_ms >= 0
    assert all(srv.stats.hits[p] == 1 for p in statuses)
    assert srv.stats.user_agents == {USER_AGENT}
    assert USER_AGENT.startswith("auditor/")
    # the burst was off: nothing was sent to /
    assert target.burst is None and target.burst_disabled_reason == "burst disabled in config"
    assert srv.stats.hits["/"] == 0


def test_base_url_path_prefix_is_kept():
    with serve(health={"/app/healthz": 200}) as srv:
        facts = HttpCollector([srv.url + "/app/"], health_paths=["/healthz"], burst=NO_BURST).collect()
    (probe,) = facts.targets[0].health
    assert probe.url == f"{srv.url}/app/healthz" and probe.status == 200


def test_burst_without_limit_sends_exactly_the_configured_count_with_bounded_concurrency():
    with serve(delay_s=0.02) as srv:
        facts = HttpCollector([srv.url], health_paths=()).collect()
    burst = facts.targets[0].burst
    assert burst is not None
    assert srv.stats.hits["/"] == 30 == burst.sent == burst.requested
    assert burst.statuses == {200: 30}
    assert burst.first_429_at is None and burst.retry_after is None
    assert burst.stopped_reason == "completed" and burst.errors == 0
    assert burst.concurrency == 5
    # at most 5 in flight at once, and the requests did overlap
    assert 2 <= srv.stats.max_in_flight <= 5


def test_burst_never_sends_more_than_configured():
    with serve(delay_s=0.01) as srv:
        facts = HttpCollector([srv.url], health_paths=(), burst={"requests": 7, "concurrency": 3}).collect()
    assert srv.stats.hits["/"] == 7 == facts.targets[0].burst.sent
    assert srv.stats.max_in_flight <= 3


def test_burst_stops_at_the_first_429():
    limit, concurrency = 10, 5
    with serve(rate_limit_after=limit, retry_after="7", delay_s=0.01) as srv:
        facts = HttpCollector([srv.url], health_paths=()).collect()
    burst = facts.targets[0].burst
    received = srv.stats.hits["/"]
    # the 429 came at request limit+1; only requests already in flight may follow it
    assert received <= limit + concurrency
    assert received < 30
    assert burst.sent == received
    assert burst.stopped_reason == "429"
    assert burst.statuses[200] == limit and burst.statuses[429] == received - limit
    assert burst.first_429_at is not None and burst.first_429_at <= received
    assert burst.retry_after == "7"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("ietf", {"ratelimit", "ratelimit-policy"}),
        ("x", {"x-ratelimit-limit", "x-ratelimit-remaining"}),
    ],
)
def test_ratelimit_headers_are_recorded_lower_cased(mode, expected):
    with serve(ratelimit_headers=mode) as srv:
        facts = HttpCollector([srv.url], health_paths=(), burst={"requests": 3}).collect()
    headers = facts.targets[0].burst.ratelimit_headers
    assert set(headers) == expected
    if mode == "ietf":
        assert headers["ratelimit-policy"] == '"default";q=100;w=60'


def test_one_unreachable_target_among_several_is_recorded_not_raised():
    down = closed_port_url()
    with serve(health=SPLIT_PROBES) as srv:
        facts = HttpCollector([down, srv.url], burst={"requests": 3}).collect()
    bad, good = facts.targets
    assert not bad.reachable and bad.health == () and bad.burst is None
    assert bad.base_url == down
    assert "cannot connect to " + down in bad.error and "check that the app is running" in bad.error
    assert good.reachable and good.burst.sent == 3


def test_every_target_unreachable_raises_an_actionable_error():
    down = closed_port_url()
    with pytest.raises(TargetUnreachable) as err:
        HttpCollector([down]).collect()
    assert down in str(err.value) and "cannot connect" in str(err.value)


def test_slow_health_path_times_out_with_a_bounded_wait():
    with serve(health=HEALTH_ONLY, slow={"/health": 2.0}) as srv:
        facts = HttpCollector([srv.url], timeout_s=0.3, health_paths=["/health"], burst=NO_BURST).collect()
    (probe,) = facts.targets[0].health
    assert probe.status is None
    assert probe.error == f"no response from {srv.url}/health within 0.3 s"


def test_redirect_is_followed_and_recorded():
    with serve(health={"/login": 200}, redirects={"/health": "/login"}) as srv:
        facts = HttpCollector([srv.url], health_paths=["/health"], burst=NO_BURST).collect()
    (probe,) = facts.targets[0].health
    assert probe.status == 200 and probe.redirected_to == "/login"


def test_redirect_loop_is_cut_after_two_hops():
    with serve(redirects={"/health": "/a", "/a": "/b", "/b": "/c", "/c": "/health"}) as srv:
        facts = HttpCollector([srv.url], health_paths=["/health"], burst=NO_BURST).collect()
    (probe,) = facts.targets[0].health
    assert probe.status is None and "redirected more than 2 times" in probe.error
    assert srv.stats.total <= 1 + 3  # the control probe, then /health and two redirects


def test_control_probe_reveals_a_catch_all_route():
    with serve(catch_all=True) as srv:
        facts = HttpCollector([srv.url], health_paths=["/health"], burst=NO_BURST).collect()
    target = facts.targets[0]
    assert target.control is not None and target.control.ok
    assert target.control.path.startswith("/auditor-nonexistent-")


def test_password_in_base_url_is_used_but_never_shown():
    password = "s3cr3t-pw-42"
    with serve(health=HEALTH_ONLY, rate_limit_after=2, retry_after=None) as srv:
        url = srv.url.replace("http://", f"http://alice:{password}@")
        collector = HttpCollector([url, f"http://bob:{password}@{closed_port_url()[7:]}"])
        facts = collector.collect()
        description = collector.describe()
    assert srv.stats.authorization  # the credentials were sent as basic auth
    assert password not in repr(facts) and password not in description
    assert facts.targets[0].base_url == srv.url.replace("http://", "http://alice:***@")
    assert "bob:***@" in facts.targets[1].error
    with pytest.raises(TargetUnreachable) as err:
        HttpCollector([f"http://carol:{password}@{closed_port_url()[7:]}"]).collect()
    assert password not in str(err.value) and "carol:***@" in str(err.value)


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (["ftp://example.com"], {}, "must look like http://host:port"),
        (["http://u:hunter22@"], {}, "hunter22"),  # no host: the error still hides the password
        ([], {}, "no HTTP base URL"),
        (["http://127.0.0.1:1"], {"burst": {"requests": 100000}}, "from 1 to 1000"),
        (["http://127.0.0.1:1"], {"burst": {"concurency": 3}}, "unknown key(s) concurency"),
        (["http://127.0.0.1:1"], {"health_paths": ["health"]}, "must start with '/'"),
        (["http://127.0.0.1:1"], {"timeout_s": 0}, "positive number of seconds"),
    ],
)
def test_bad_configuration_is_a_config_error(args, kwargs, expected):
    with pytest.raises(ConfigError) as err:
        HttpCollector(args, **kwargs)
    if expected == "hunter22":
        assert "hunter22" not in str(err.value) and "u:***@" in str(err.value)
    else:
        assert expected in str(err.value)


def test_burst_turned_off_with_enabled_false():
    with serve() as srv:
        facts = HttpCollector([srv.url], health_paths=(), burst={"enabled": False}).collect()
    assert isinstance(facts, HttpFacts)
    assert facts.targets[0].burst is None and srv.stats.hits["/"] == 0


def test_a_server_that_trickles_its_body_cannot_stretch_a_probe_past_the_timeout():
    """httpx's timeout is per socket read: a body sent one byte every 0.1 s would keep a
    probe going for minutes. The collector stops reading at the request's deadline."""
    import threading
    import time as _time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2000")
            self.end_headers()
            try:
                for _ in range(2000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    _time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        started = _time.monotonic()
        facts = HttpCollector([f"http://127.0.0.1:{srv.server_port}"], timeout_s=0.5,
                              health_paths=("/health", "/ready"), burst={"enabled": False}).collect()
        took = _time.monotonic() - started
    finally:
        srv.shutdown()
    assert facts.targets[0].reachable
    assert took < 5, f"3 probes of 0.5 s took {took:.1f} s"  # unbounded, it would be minutes
