"""PG203 slow query on real logs: a shape that sleeps is slow (by its mean and its p95),
a fast shape is not, thresholds and the minimum call count are honoured, and a log
without durations cannot be judged."""

from __future__ import annotations


import psycopg
import pytest
from conftest import need

from auditor import rules
from auditor.collectors.querylog import read_logs
from auditor.facts import Facts
from auditor.fingerprint import fingerprint
from auditor.model import Finding, Inconclusive, Severity
from checks.slow_query import SlowQuery
from fixtures.pgcluster import LoggingCluster

PARAMS = dict(rules.load()["PG203"].params)
SLOW = "SELECT pg_sleep(%s), %s::int AS id"
FAST = "SELECT %s::int + 1"
CALLS = 6


def _cluster_log(tmp, name: str, settings: dict | None = None):
    try:
        pg = LoggingCluster(settings=settings).start()
    except (RuntimeError, OSError) as exc:
        need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            for i in range(CALLS):
                conn.execute(SLOW, (0.03, i))
            for i in range(30):
                conn.execute(FAST, (i,))
        return pg.copy_log(tmp / name)
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def timed_log(tmp_path_factory):
    return _cluster_log(tmp_path_factory.mktemp("slow"), "slow.log")


def run(path, **params) -> list:
    return list(SlowQuery().run(Facts(workload=read_logs([path])), {**PARAMS, **params}))


def test_the_sleeping_shape_is_slow(timed_log):
    (f,) = run(timed_log, min_calls=CALLS)
    assert isinstance(f, Finding) and f.rule_id == "PG203"
    ev = f.evidence
    assert f.key == fingerprint("SELECT pg_sleep(0.03), 1::int AS id")
    assert ev["calls"] == CALLS
    assert ev["mean_ms"] >= 30 and ev["p95_ms"] >= 30 and ev["max_ms"] >= ev["p95_ms"]
    assert ev["total_ms"] == pytest.approx(ev["mean_ms"] * CALLS, abs=0.01)
    assert 0.5 < ev["share_of_total"] <= 1
    assert ev["example"]["duration_ms"] == ev["max_ms"] and len(ev["example"]["params"]) == 2
    assert "mean" in f.message and "EXPLAIN (ANALYZE, BUFFERS)" in f.fix
    assert f.severity is None  # p95 under high_p95_ms: the rule's medium


def test_thresholds_are_honoured(timed_log):
    assert run(timed_log) == []  # 6 calls: under PgHero's 100
    assert run(timed_log, min_calls=CALLS, min_mean_ms=1000, min_p95_ms=1000) == []
    (f,) = run(timed_log, min_calls=CALLS, high_p95_ms=10)
    assert f.severity == Severity.HIGH
    assert len(run(timed_log, min_calls=1, min_mean_ms=0, max_findings=1)) == 1


def test_a_log_without_durations_is_inconclusive(tmp_path):
    log = _cluster_log(tmp_path, "nodur.log", {"log_statement": "'all'",
                                               "log_min_duration_statement": "-1"})
    (out,) = run(log, min_calls=1)
    assert isinstance(out, Inconclusive) and "log_min_duration_statement = 0" in out.reason
