"""pg_stat_statements as a second source of evidence, read from a real server's view
(and from its CSV export) after a known workload, and checked against the query log
of the same run: the same statements, counted the same, per fingerprint."""

from __future__ import annotations


import psycopg
import pytest
from conftest import need

from auditor.collectors.pgss import (HIDDEN_REASON, PgssCollector, read_pgss_csv,
                                     read_pgss_live)
from auditor.collectors.querylog import read_logs
from auditor.errors import ConfigError, TargetUnreachable
from auditor.fingerprint import fingerprint
from fixtures.make_logs import ShopLogs
from fixtures.pgcluster import LoggingCluster
from fixtures.workloads.shop import CUSTOMER_BY_ID, PAGE, REQUESTS, as_logged

PRELOAD = {"shared_preload_libraries": "'pg_stat_statements'"}


def _unavailable(exc: Exception) -> None:
    need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)


@pytest.fixture(scope="module")
def pgss_run(tmp_path_factory):
    """A shop workload on a server with pg_stat_statements: its log, the view read live
    (whole, and top 2), its CSV export, and what a role without pg_read_all_stats sees."""
    out = tmp_path_factory.mktemp("pgss")
    logs = ShopLogs(settings=PRELOAD)
    try:
        logs.__enter__()
    except (RuntimeError, OSError) as exc:
        _unavailable(exc)
    try:
        with psycopg.connect(logs.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE ROLE reader LOGIN")
            conn.execute("GRANT SELECT ON customers TO reader")
            conn.execute("SELECT pg_stat_statements_reset()")
        caps = [logs.capture(sc, out / f"{sc}.log")
                for sc in ("n_plus_one", "connection_per_request")]
        with psycopg.connect(logs.cluster.dsn("shop", user="reader"), autocommit=True) as c:
            for i in range(3):
                c.execute("SELECT name FROM customers WHERE id = %s", (i + 1,)).fetchall()
        live = read_pgss_live(logs.dsn)
        top2 = read_pgss_live(logs.dsn, limit=2)
        as_reader = read_pgss_live(logs.cluster.dsn("shop", user="reader"))
        export = out / "pgss.csv"
        with psycopg.connect(logs.dsn, autocommit=True) as conn, open(export, "wb") as fh:
            with conn.cursor().copy("COPY (SELECT * FROM pg_stat_statements) "
                                    "TO STDOUT WITH CSV HEADER") as copy:
                for data in copy:
                    fh.write(data)
        return {"caps": caps, "live": live, "top2": top2, "reader": as_reader,
                "csv": read_pgss_csv(export), "export": export, "dsn": logs.dsn}
    finally:
        logs.__exit__(None, None, None)


def test_counts_per_fingerprint_agree_with_the_log(pgss_run):
    """Every statement shape the log shows has the same number of calls in
    pg_stat_statements (BEGIN and COMMIT included), and the N+1 lookup is there with
    one row per call."""
    profile = read_logs([c.path for c in pgss_run["caps"]])
    live = pgss_run["live"]
    assert profile.fingerprints
    for fp, stats in profile.fingerprints.items():
        assert fp in live.statements, stats.normalized
        assert live.statements[fp].calls == stats.calls, stats.normalized
    lookup = live.statements[fingerprint(as_logged(CUSTOMER_BY_ID))]
    assert lookup.calls == PAGE * REQUESTS and lookup.rows == lookup.calls
    assert lookup.query == "SELECT id, name, email FROM customers WHERE id = $1"
    assert lookup.total_ms > 0 and lookup.mean_ms == pytest.approx(lookup.total_ms / lookup.calls)
    assert live.database == "shop" and live.limit == 500 and live.stats_since is not None
    assert live.entries == live.entries_total  # nothing cut at 500


def test_csv_export_reads_the_same(pgss_run):
    """The workload's shapes, from the export, as from the view (the auditor's own reads,
    made between the two, are left out)."""
    profile = read_logs([c.path for c in pgss_run["caps"]])
    live, csv = pgss_run["live"], pgss_run["csv"]
    for fp in profile.fingerprints:
        assert (csv.statements[fp].calls, csv.statements[fp].rows) == \
            (live.statements[fp].calls, live.statements[fp].rows)
    lookup = fingerprint(as_logged(CUSTOMER_BY_ID))
    assert csv.statements[lookup].calls == PAGE * REQUESTS
    assert csv.source == str(pgss_run["export"]) and csv.limit is None


def test_top_n_is_bounded_and_says_what_it_cut(pgss_run):
    top2, live = pgss_run["top2"], pgss_run["live"]
    # (read after the whole view: the auditor's own first read is in the counts too)
    assert top2.entries == 2 and top2.entries_total >= live.entries_total > 2
    assert top2.total_ms_all >= live.total_ms_all
    assert top2.total_ms_all > sum(s.total_ms for s in top2.statements.values())
    best = sorted(live.statements.values(), key=lambda s: -s.total_ms)[:1]
    assert best[0].fingerprint in top2.statements
    assert [s.fingerprint for s in live.top(3)] == [s.fingerprint for s in
                                                   sorted(live.statements.values(),
                                                          key=lambda s: -s.total_ms)[:3]]


def test_role_without_read_all_stats_sees_its_own(pgss_run):
    """Another role's statements show as <insufficient privilege>: counted, not read."""
    mine = pgss_run["reader"]
    assert mine.skipped.get(HIDDEN_REASON, 0) > 0
    assert [s.calls for s in mine.statements.values()
            if s.query == "SELECT name FROM customers WHERE id = $1"] == [3]
    assert fingerprint(as_logged(CUSTOMER_BY_ID)) not in mine.statements


def test_not_installed_and_not_preloaded_are_clear_errors():
    try:
        pg = LoggingCluster().start()
    except (RuntimeError, OSError) as exc:
        _unavailable(exc)
    try:
        with pytest.raises(TargetUnreachable, match="not installed in database 'postgres'"
                                                    ".*CREATE EXTENSION pg_stat_statements"):
            read_pgss_live(pg.dsn())
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        with pytest.raises(TargetUnreachable, match="installed but not loaded.*"
                                                    "shared_preload_libraries"):
            read_pgss_live(pg.dsn())
    finally:
        pg.stop()


def test_csv_without_the_columns_is_a_clear_error(tmp_path, pgss_run):
    bad = tmp_path / "cut.csv"  # the export's header without its calls column
    header = pgss_run["export"].read_text().splitlines()[0].split(",")
    bad.write_text(",".join(h for h in header if h != "calls") + "\n")
    with pytest.raises(TargetUnreachable, match="lacks the column.*calls.*CSV HEADER"):
        read_pgss_csv(bad)
    with pytest.raises(TargetUnreachable, match="cannot read pg_stat_statements export"):
        read_pgss_csv(tmp_path / "missing.csv")


def test_collector(pgss_run):
    col = PgssCollector(csv_path=pgss_run["export"])
    assert col.kind == "pgss" and "export" in col.describe()
    assert col.collect().statements == pgss_run["csv"].statements
    live = PgssCollector(pgss_run["dsn"].replace("postgres@", "postgres:s3cret@"), limit=50)
    assert "s3cret" not in live.describe() and "top 50" in live.describe()
    with pytest.raises(ConfigError):
        PgssCollector()
    with pytest.raises(ConfigError):
        PgssCollector("postgresql://x", csv_path="y.csv")
    with pytest.raises(ConfigError, match="at least 1"):
        read_pgss_live(pgss_run["dsn"], limit=0)
