"""PG301 ConnectionPooling: real logs of the shop workload (connection per request vs
one pooled connection), and live saturation on a private cluster (max_connections 50)."""

from __future__ import annotations

import time

import psycopg
import pytest

from auditor.collectors.postgres import PostgresCollector
from auditor.collectors.querylog import read_logs
from auditor.facts import Facts
from auditor.facts.postgres import Connections, PostgresFacts
from auditor.facts.workload import ConnectionStats, WorkloadProfile
from auditor.model import Finding, Inconclusive, Severity
from checks.connection_pooling import ConnectionPooling
from fixtures.pgcluster import LoggingCluster

PARAMS = {"max_used_ratio": 0.5, "max_connections_per_s": 1, "short_session_ms": 1000,
          "short_session_share": 0.5}


def _run(*, postgres=None, workload=None, **params) -> list:
    return list(ConnectionPooling().run(Facts(postgres=postgres, workload=workload), {**PARAMS, **params}))


@pytest.fixture(scope="module")
def shop_logs(tmp_path_factory):
    from fixtures.make_logs import ShopLogs
    tmp = tmp_path_factory.mktemp("pg301")
    with ShopLogs() as shop:
        yield {sc: read_logs([shop.capture(sc, tmp / f"{sc}.log").path])
               for sc in ("connection_per_request", "pooled")}


def test_connection_per_request_log_is_a_finding(shop_logs):
    wl = shop_logs["connection_per_request"]
    (f,) = _run(workload=wl)
    assert isinstance(f, Finding) and f.rule_id == "PG301"
    assert f.key == "log:connection-per-request"
    ev = f.evidence
    assert ev["connections"] == 30 and ev["disconnections"] == 30
    assert ev["short_sessions"] == 30 and ev["short_session_share"] == 1.0
    assert ev["connections_per_s"] > 1
    assert ev["statements_per_connection"] == 4.0  # BEGIN, two queries, COMMIT
    assert "connection per request" in f.message and "PgBouncer" in f.fix


def test_pooled_log_passes(shop_logs):
    wl = shop_logs["pooled"]
    assert wl.connections.logged and wl.connections.connections == 1
    assert _run(workload=wl) == []


def test_log_without_connection_lines_is_inconclusive(tmp_path):
    from fixtures.make_logs import ShopLogs
    with ShopLogs(settings={"log_connections": "off", "log_disconnections": "off"}) as shop:
        wl = read_logs([shop.capture("connection_per_request", tmp_path / "quiet.log").path])
    assert wl.fingerprints and not wl.connections.logged
    assert _run(workload=wl) == [Inconclusive(
        "the log has no connection lines: set log_connections=on and log_disconnections=on")]


def test_a_recognised_pooler_turns_churn_off(shop_logs):
    wl = shop_logs["connection_per_request"]
    behind = PostgresFacts("15", "shop", "postgresql://app@db:6432/shop", pooler="pgbouncer",
                           pooler_evidence="the DSN's port is 6432, PgBouncer's default",
                           connections=Connections(max_connections=100, superuser_reserved=3, total=4, idle=4))
    assert _run(postgres=behind, workload=wl) == []
    # "proxy" is only a port mismatch (a Docker mapping looks the same): churn still counts
    proxy = PostgresFacts("15", "shop", "postgresql://app@db:5433/shop", pooler="proxy",
                          connections=Connections(max_connections=100, superuser_reserved=3, total=4, idle=4))
    (f,) = _run(postgres=proxy, workload=wl)
    assert f.key == "log:connection-per-request"


def _open(dsn: str, n: int, app: str) -> list[psycopg.Connection]:
    """``n`` idle connections, once the backends of earlier tests have exited."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                           "AND pid <> pg_backend_pid()").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
    return [psycopg.connect(dsn, application_name=app, autocommit=True) for _ in range(n)]


@pytest.fixture(scope="module")
def cluster():
    with LoggingCluster(settings={"max_connections": "50"}) as pg:
        yield pg


def test_live_saturation_with_30_idle_connections(cluster):
    held = _open(cluster.dsn("postgres"), 30, "shop-web")
    try:
        pg = PostgresCollector(cluster.dsn("postgres")).collect()
    finally:
        for c in held:
            c.close()
    assert pg.connections.max_connections == 50
    assert pg.connections.by_application["shop-web"] == 30
    (f,) = _run(postgres=pg)
    assert f.key == f"{pg.target}:connection-saturation"
    assert f.severity == Severity.MEDIUM  # 60 %: above 50 %, below 80 %
    ev = f.evidence
    assert ev["connections"] == 30 and ev["idle"] == 30 and ev["used_ratio"] == 0.6
    assert ev["by_application"] == {"shop-web": 30}
    assert "30 of max_connections 50 (60%" in f.message


def test_live_idle_connections_without_pooler(cluster):
    held = _open(cluster.dsn("postgres"), 16, "shop-worker")
    try:
        pg = PostgresCollector(cluster.dsn("postgres")).collect()
    finally:
        for c in held:
            c.close()
    (f,) = _run(postgres=pg)  # 32 % of max_connections: under 50 %, but idle >= 30 %
    assert f.key == f"{pg.target}:idle-connections" and f.severity == Severity.MEDIUM
    assert f.evidence["idle"] == 16


def test_live_high_saturation_and_quiet_server(cluster):
    held = _open(cluster.dsn("postgres"), 42, "shop-web")
    try:
        pg = PostgresCollector(cluster.dsn("postgres")).collect()
    finally:
        for c in held:
            c.close()
    (f,) = _run(postgres=pg)
    assert f.severity == Severity.HIGH and f.evidence["used_ratio"] == 0.84

    _open(cluster.dsn("postgres"), 0, "")  # wait until the 42 backends have exited
    quiet = PostgresCollector(cluster.dsn("postgres")).collect()
    (out,) = _run(postgres=quiet)
    assert isinstance(out, Inconclusive) and "too few to judge" in out.reason


def test_saturation_is_reported_behind_a_pooler():
    pg = PostgresFacts("15", "shop", "postgresql://app@db:6432/shop", pooler="pgbouncer",
                       connections=Connections(max_connections=100, superuser_reserved=3, total=90,
                                               active=10, idle=80))
    (f,) = _run(postgres=pg)
    assert f.severity == Severity.HIGH and "even behind pgbouncer" in f.message
    assert "pgbouncer's server pool size" in f.fix


def test_short_sessions_alone_and_thresholds():
    # 12 connections over 60 s (0.2/s: slow), all sessions 50 ms: connection per request
    cs = ConnectionStats(logged=True, connections=12, disconnections=12, session_ms=[50.0] * 12,
                         first_ts=0.0, last_ts=60.0, peak_per_second=1)
    (f,) = _run(workload=WorkloadProfile(connections=cs, statements=48))
    assert "sessions lasted under 1000 ms" in f.message and "per second" not in f.message
    # long sessions, slow arrivals: pass
    cs2 = ConnectionStats(logged=True, connections=12, disconnections=12, session_ms=[60_000.0] * 12,
                          first_ts=0.0, last_ts=600.0)
    assert _run(workload=WorkloadProfile(connections=cs2)) == []
    # fewer than min_connections and no requests: too little to judge, never a pass
    cs3 = ConnectionStats(logged=True, connections=3, disconnections=3, session_ms=[5.0] * 3,
                          first_ts=0.0, last_ts=0.5)
    (out,) = _run(workload=WorkloadProfile(connections=cs3))
    assert isinstance(out, Inconclusive) and "only 3 connection(s)" in out.reason


def test_nothing_to_judge_is_inconclusive():
    pg = PostgresFacts("15", "db", "postgresql://u@h/db", connections=None,
                       notes=("activity: not read (permission denied for view pg_stat_activity)",))
    (out,) = _run(postgres=pg, workload=WorkloadProfile())
    assert isinstance(out, Inconclusive)
    assert "pg_stat_activity could not be read" in out.reason
    assert "the log has no connection lines" in out.reason


def test_a_log_with_a_couple_of_connections_is_not_a_pass():
    """Two logged connections and no requests say nothing about churn: not verified."""
    cs = ConnectionStats(logged=True, connections=2, disconnections=2, session_ms=[30_000.0, 40_000.0],
                         first_ts=0.0, last_ts=120.0)
    (out,) = _run(workload=WorkloadProfile(connections=cs))
    assert isinstance(out, Inconclusive)
    assert "only 2 connection(s) and 0 request(s)" in out.reason
