"""pg_stat_statements as evidence of the audit, with no query log: the shop's unindexed
e-mail lookups, run against a real server with the extension loaded, give PG101's
CREATE INDEX from the live view and from a CSV export of it; PG203 judges the view's
shapes by their mean; a server without the extension leaves the kind not verified with
the reason, and the audit goes on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import need

from auditor import audit, rules
from auditor.collectors.pgss import read_pgss_live
from auditor.config import AuditConfig
from auditor.facts import Facts
from auditor.fingerprint import fingerprint
from auditor.model import Finding, Status
from checks.slow_query import PGSS_NOTE, SlowQuery
from fixtures.pgcluster import LoggingCluster
from fixtures.workloads import shop

ROOT = Path(__file__).resolve().parent.parent
PRELOAD = {"shared_preload_libraries": "'pg_stat_statements'"}
QUIET = {"log_min_duration_statement": "-1", "log_connections": "off",
         "log_disconnections": "off"}  # the audits below are given no log
EMAIL_FIX = "CREATE INDEX CONCURRENTLY customers_email_idx ON public.customers (email);"
SLEEP = "SELECT pg_sleep(%s), %s::int AS slow"
SLEEPS = 6


def _cluster(settings: dict) -> LoggingCluster:
    try:
        return LoggingCluster(settings={**QUIET, **settings}).start()
    except (RuntimeError, OSError) as exc:
        need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "auditor", "audit", *args], capture_output=True,
                          text=True, cwd=cwd, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
                          timeout=120)


def report_of(path: Path) -> tuple[dict, dict]:
    data = json.loads(path.read_text())
    return {i["rule"]["id"]: i for i in data["items"]}, data["sources"]


@pytest.fixture(scope="module")
def shop_pgss(tmp_path_factory):
    """The shop's ``unindexed`` scenario (and a few slow sleeps) on a server with
    pg_stat_statements loaded, counted from a reset. Yields (dsn, workdir, the number of
    e-mail lookups the scenario ran)."""
    pg = _cluster(PRELOAD)
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")
        dsn = pg.dsn("shop")
        shop.setup(dsn)
        shop.prepare(dsn, "unindexed")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        trace = shop.run(dsn, "unindexed")
        lookups = sum(1 for e in trace.statements
                      if e.sql == shop.as_logged(shop.CUSTOMER_BY_EMAIL))
        assert lookups > 0
        with psycopg.connect(dsn, autocommit=True) as conn:
            for i in range(SLEEPS):
                conn.execute(SLEEP, (0.03, i))
        yield dsn, tmp_path_factory.mktemp("pgss-audit"), lookups
    finally:
        pg.stop()


def _email_finding(item: dict) -> dict:
    (f,) = [f for f in item["findings"] if f["location"] == "public.customers"]
    return f


def test_live_view_alone_finds_the_missing_index(shop_pgss):
    dsn, tmp, lookups = shop_pgss
    res = cli("--postgres", dsn, "--json", str(tmp / "live.json"), cwd=tmp)
    assert res.returncode in (0, 1), res.stderr
    items, sources = report_of(tmp / "live.json")
    assert "pg_stat_statements at" in sources["pgss"]
    assert sources["workload"].startswith("not collected: no query log given")
    assert items["PG101"]["status"] == "fail"
    f = _email_finding(items["PG101"])
    assert f["fix"] == EMAIL_FIX
    ev = f["evidence"]
    assert ev["source"] == "pg_stat_statements"
    (fp,) = ev["fingerprints"]
    assert fp["normalized"] == "SELECT id, name, city FROM customers WHERE email = $1"
    assert fp["fingerprint"] == fingerprint(shop.as_logged(shop.CUSTOMER_BY_EMAIL))
    assert fp["calls"] == lookups and fp["total_ms"] > 0
    assert "ms in pg_stat_statements" in f["message"]
    # PG203 looked at the view too: nothing ran 100 times, so nothing is slow
    assert items["PG203"]["status"] == "pass"
    assert "pgss" in items["PG203"]["evidence_summary"]
    # checks that need the log itself still say so
    assert items["PG201"]["status"] == "not verified"
    assert "no query log given" in items["PG201"]["reason"]


def test_csv_export_alone_finds_the_missing_index(shop_pgss):
    dsn, tmp, lookups = shop_pgss
    sub = tmp / "conf"
    sub.mkdir()
    with psycopg.connect(dsn, autocommit=True) as conn, open(sub / "pgss.csv", "wb") as fh:
        with conn.cursor().copy("COPY (SELECT * FROM pg_stat_statements) "
                                "TO STDOUT WITH CSV HEADER") as copy:
            for data in copy:
                fh.write(data)
    # the catalog still comes from the server; the statements from the export, a path
    # relative to the config file
    (sub / "auditor.yaml").write_text(
        f"postgres:\n  dsn: {dsn}\n  pg_stat_statements: pgss.csv\n")
    res = cli("--config", str(sub / "auditor.yaml"), "--json", str(tmp / "csv.json"), cwd=tmp)
    assert res.returncode in (0, 1), res.stderr
    items, sources = report_of(tmp / "csv.json")
    # the export holds only shop's rows: the DSN names shop, its dbid was looked up
    assert sources["pgss"].startswith(f"pg_stat_statements export {sub / 'pgss.csv'} "
                                      "(every row is of database 'shop' (by dbid ")
    f = _email_finding(items["PG101"])
    assert f["fix"] == EMAIL_FIX and f["evidence"]["source"] == "pg_stat_statements"
    assert f["evidence"]["fingerprints"][0]["calls"] == lookups


def test_slow_query_from_the_view_is_judged_by_its_mean(shop_pgss):
    dsn, _, _ = shop_pgss
    params = {**rules.load()["PG203"].params, "min_calls": SLEEPS}
    out = list(SlowQuery().run(Facts(pgss=read_pgss_live(dsn)), params))
    (f,) = out
    assert isinstance(f, Finding) and f.key == fingerprint("SELECT pg_sleep(0.03), 1::int AS slow")
    ev = f.evidence
    assert ev["calls"] == SLEEPS and ev["mean_ms"] >= 30 and ev["p95_ms"] is None
    assert ev["source"] == "pg_stat_statements" and ev["note"] == PGSS_NOTE
    assert ev["normalized"] == "SELECT pg_sleep($1), $2::int AS slow"
    assert "no p95" in f.message and f.severity is None
    assert list(SlowQuery().run(Facts(pgss=read_pgss_live(dsn)),
                                {**params, "min_mean_ms": 1000})) == []


def test_server_without_the_extension_is_not_verified_and_the_audit_goes_on(tmp_path):
    pg = _cluster({})
    try:
        res = cli("--postgres", pg.dsn(), "--json", str(tmp_path / "a.json"), cwd=tmp_path)
        assert res.returncode in (0, 1), res.stderr
        items, sources = report_of(tmp_path / "a.json")
        assert sources["pgss"].startswith("not collected: pg_stat_statements is not installed "
                                          "in database 'postgres'")
        for rid in ("PG101", "PG203"):
            assert items[rid]["status"] == "not verified"
            assert "no query log given" in items[rid]["reason"]
            assert "CREATE EXTENSION pg_stat_statements" in items[rid]["reason"]
        assert items["PG102"]["status"] in ("pass", "fail")  # the catalog was still read

        # installed but not preloaded: the same, with the other fix
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        report = audit.run(AuditConfig(postgres_dsn=pg.dsn()))
        item = {i.rule.id: i for i in report.items}["PG101"]
        assert item.status is Status.NOT_VERIFIED
        assert "installed but not loaded" in item.reason
        assert "shared_preload_libraries" in item.reason
        assert "pg_stat_statements" in report.sources["pgss"]
    finally:
        pg.stop()


# -- which source the checks read: small facts -------------------------------------------
def _pgss_facts(*shapes: tuple[str, int, float]):
    from auditor.facts.pgss import PgStatStatements, StatementTotals
    facts = PgStatStatements(source="pgss.csv")
    for sql, calls, total_ms in shapes:
        fp = fingerprint(sql)
        facts.statements[fp] = StatementTotals(fp, sql, calls=calls, total_ms=total_ms, entries=1)
    facts.entries = facts.entries_total = len(shapes)
    facts.total_ms_all = facts.total_ms
    return facts


def test_the_log_is_preferred_and_pgss_stands_in_without_it():
    from auditor.facts.postgres import PostgresFacts, Table
    from auditor.facts.workload import WorkloadProfile
    from auditor.model import Inconclusive
    from checks.missing_index import MissingIndex
    orders = Table("public", "orders", rows_estimate=50_000, size_bytes=1,
                   columns=("id", "customer_id", "status"))
    pg = PostgresFacts(server_version="16.0", database="shop", target="postgresql://u@h/shop",
                       tables=(orders,), indexes=(), column_stats=())
    pgss = _pgss_facts(("SELECT * FROM orders WHERE customer_id = $1", 40, 80.0))
    (f,) = MissingIndex().run(Facts(postgres=pg, pgss=pgss), {"min_rows": 1000})
    assert f.fix.endswith("public.orders (customer_id);")
    assert f.evidence["source"] == "pg_stat_statements" and f.evidence["calls"] == 40
    # a log, even an empty one, is the source when given: pgss is not mixed in
    out = list(MissingIndex().run(Facts(postgres=pg, pgss=pgss, workload=WorkloadProfile()),
                                  {"min_rows": 1000}))
    assert len(out) == 1 and isinstance(out[0], Inconclusive) and "no statements" in out[0].reason
    out = list(MissingIndex().run(Facts(postgres=pg, pgss=pgss), {"min_rows": 1000, "min_calls": 50}))
    assert out == [Inconclusive("no query shape in pg_stat_statements ran at least 50 times "
                                "(min_calls)")]
    assert [type(o) for o in MissingIndex().run(Facts(postgres=pg, pgss=_pgss_facts()), {})] \
        == [Inconclusive]


def test_slow_query_from_pgss_small_facts():
    pgss = _pgss_facts(("SELECT * FROM big WHERE x = $1", 200, 300_000.0),
                       ("SELECT 1", 5000, 50.0))
    params = dict(rules.load()["PG203"].params)
    (f,) = SlowQuery().run(Facts(pgss=pgss), params)
    assert f.evidence["mean_ms"] == 1500.0 and f.severity == "high"  # the mean reaches 1000 ms
    assert f.evidence["share_of_total"] == pytest.approx(300_000 / 300_050, abs=1e-4)
    assert [type(o).__name__ for o in SlowQuery().run(Facts(pgss=_pgss_facts()), params)] \
        == ["Inconclusive"]
