"""Requests and the streaming detectors on real logs: sqlcommenter tags cut requests on a
pooled connection, write loops are N+1 too, MN+1 needs 3 repetitions, and the bounded
aggregates (duration histograms, session lengths) agree with the exact figures.

The workloads here run against a private logging cluster (fixtures/pgcluster.py);
nothing is hand-typed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import psycopg
import pytest
from conftest import need

from auditor import rules
from auditor.collectors.querylog import QueryLogCollector, read_logs
from auditor.facts import Facts
from auditor.facts.workload import Detection
from auditor.fingerprint import fingerprint
from checks.n_plus_one import NPlusOne
from fixtures.pgcluster import LoggingCluster

PREFIX = "%m [%p] %q%u@%d "
ROWS = 8
BY_ID = "SELECT id, name FROM items WHERE id = %s"
ADD = "INSERT INTO events (item_id, what) VALUES (%s, %s)"
NOTE = "UPDATE items SET seen = seen + 1 WHERE id = %s"


def traceparent(i: int) -> str:
    return f"00-{i:032x}-{i:016x}-01"


@dataclass
class Logs:
    tagged: object
    untagged: object
    writes: object
    mn: object


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Logs:
    tmp = tmp_path_factory.mktemp("requests")
    try:
        pg = LoggingCluster(line_prefix=PREFIX).start()
    except (RuntimeError, OSError) as exc:
        need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, seen int DEFAULT 0)")
            conn.execute("CREATE TABLE events (id serial PRIMARY KEY, item_id int, what text)")
            conn.execute("INSERT INTO items (id, name) SELECT i, 'item ' || i "
                         "FROM generate_series(1, 100) i")

        def run(name: str, work) -> object:
            pg.flush_log()
            start = pg.log_path.stat().st_size
            work()
            pg.flush_log(0.5)
            with open(pg.log_path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
            path = tmp / f"{name}.log"
            path.write_bytes(data)
            return path

        def pooled(tagged: bool):
            # one long-lived autocommit connection (a pool of one) serving three web
            # requests back to back, each loading ROWS items one by one
            with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                for r in range(3):
                    tag = f" /*traceparent='{traceparent(r + 1)}'*/" if tagged else ""
                    for i in range(ROWS):
                        conn.execute(BY_ID + tag, (r * 10 + i + 1,))

        def writes():
            with psycopg.connect(pg.dsn()) as conn:  # one transaction: one request
                for i in range(ROWS):
                    conn.execute(ADD, (i + 1, "viewed"))

        def mn():
            with psycopg.connect(pg.dsn()) as conn:
                for i in range(3):  # three iterations of a two-statement loop body
                    conn.execute(BY_ID, (i + 1,))
                    conn.execute(NOTE, (i + 1,))
            with psycopg.connect(pg.dsn()) as conn:
                for i in range(2):  # two: below the MN+1 threshold
                    conn.execute(BY_ID, (i + 50,))
                    conn.execute(NOTE, (i + 50,))

        return Logs(tagged=run("tagged", lambda: pooled(True)),
                    untagged=run("untagged", lambda: pooled(False)),
                    writes=run("writes", writes), mn=run("mn", mn))
    finally:
        pg.stop()


def n_plus_one(path, **params) -> list:
    base = dict(rules.load()["PG201"].params)
    return list(NPlusOne().run(Facts(workload=read_logs([path])), {**base, **params}))


def test_sqlcommenter_tags_cut_requests_on_a_pooled_connection(logs):
    tagged = read_logs([logs.tagged], keep_requests=True)
    assert [(r.boundary, len(r.statements)) for r in tagged.requests] == [("tag", ROWS)] * 3
    (f,) = n_plus_one(logs.tagged)
    assert f.evidence["requests"] == 3 and f.evidence["count_max"] == ROWS
    # the same traffic without tags is one request: the three requests' loops merge
    untagged = read_logs([logs.untagged], keep_requests=True)
    assert [len(r.statements) for r in untagged.requests] == [3 * ROWS]
    (g,) = n_plus_one(logs.untagged)
    assert g.evidence["requests"] == 1 and g.evidence["count_max"] == 3 * ROWS
    # the tag comment does not change the shape
    fp = fingerprint(BY_ID.replace("%s", "1"))
    assert f.evidence["fingerprints"] == [fp] == g.evidence["fingerprints"]
    assert tagged.fingerprints[fp].calls == 3 * ROWS


def test_a_loop_of_inserts_is_an_n_plus_one_write(logs):
    (f,) = n_plus_one(logs.writes)
    assert f.evidence["kind"] == "write"
    assert f.evidence["count_max"] == ROWS
    assert f.evidence["normalized"] == ["INSERT INTO events (item_id, what) VALUES ($1, $2)"]
    assert "N+1 writes" in f.message
    assert "multi-row INSERT" in f.fix and "bulk_create" in f.fix
    assert "select_related" not in f.fix  # no read advice for a write loop
    assert [tuple(s["params"]) for s in f.evidence["example"]["statements"]] == \
        [(str(i), "viewed") for i in (1, 2, 3)]


def test_mn_plus_one_needs_three_repetitions(logs):
    (f,) = n_plus_one(logs.mn)
    ev = f.evidence
    assert ev["kind"] == "mixed" and len(ev["fingerprints"]) == 2
    assert ev["count_max"] == 3 and ev["requests"] == 1  # the 2-iteration request is not one
    assert "MN+1 (2 queries per row)" in f.message
    assert n_plus_one(logs.mn, min_pattern_repeats=4) == []


def test_detection_thresholds_come_from_the_collector(logs):
    strict = QueryLogCollector([logs.mn], detection=Detection.from_params(
        {"min_pattern_repeats": 4})).collect()
    assert strict.loops == []
    assert strict.detection.min_pattern_repeats == 4
    # and the check can only raise them, not lower them
    default = QueryLogCollector([logs.mn]).collect()
    assert len(default.loops) == 1


def test_duration_histograms_agree_with_the_exact_figures(logs):
    p = read_logs([logs.untagged, logs.tagged, logs.writes, logs.mn], keep_requests=True)
    for fp, stats in p.fingerprints.items():
        durations = sorted(st.duration_ms for r in p.requests for st in r.statements
                           if st.fingerprint == fp)
        assert stats.calls == len(durations)
        assert stats.durations.count == len(durations)
        assert stats.max_ms == max(durations)
        exact = durations[max(0, -(-len(durations) * 95 // 100) - 1)]  # nearest rank
        assert stats.p95_ms == pytest.approx(exact, rel=0.13)  # one bucket: 12 %
    conns = p.connections
    assert conns.sessions_timed == conns.disconnections > 0
    assert conns.sessions_shorter_than(10 ** 6) == conns.sessions_timed  # all under 1000 s
    assert conns.median_session_ms is not None


def test_the_histogram_is_exact_at_powers_of_ten():
    from auditor.facts.workload import LogHistogram
    values = [0.0, 0.5, 0.999, 1.0, 9.99, 10.0, 250.0, 999.999, 1000.0, 1000.001, 60_000.0]
    h = LogHistogram.of_ms(values)
    for edge in (1, 10, 100, 1000, 10_000):
        assert h.count_below_ms(edge) == sum(1 for v in values if v < edge)
    assert h.quantile_ms(0.5) == pytest.approx(statistics.median(values), rel=0.13)
    assert h.quantile_ms(1.0) == 60_000.0 and h.quantile_ms(0.0) == 0.0
