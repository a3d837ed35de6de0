"""Which pg_stat_statements entries are the audited application's: a CSV export holds
every database's entries, and the live view counts the auditor's own catalog reads.

A real server with the extension loaded runs the shop workload in database ``shop`` and
another application's statements in database ``billing``; the auditor is run against
``shop`` several times. The facts must hold shop's statements only, say how many rows of
other databases were left out (or that it could not tell), and never the auditor's own.
"""

from __future__ import annotations

import csv
import socket

import psycopg
import pytest
from conftest import need

from auditor import rules
from auditor.collectors.pgss import (OWN_REASON, PgssCollector, other_database_reason,
                                     read_pgss_csv, read_pgss_live)
from auditor.collectors.postgres import QUERY_TAG, PostgresCollector
from auditor.facts import Facts
from auditor.fingerprint import fingerprint
from checks.slow_query import SlowQuery
from fixtures.pgcluster import LoggingCluster
from fixtures.workloads import shop

PRELOAD = {"shared_preload_libraries": "'pg_stat_statements'",
           "log_min_duration_statement": "-1", "log_connections": "off",
           "log_disconnections": "off"}
BILLING_QUERY = "SELECT count(*) FROM invoices WHERE status = %s"
BILLING_CALLS = 7
AUDITS = 3
# text only the auditor's catalog reads and view reads hold
AUDITOR_TEXT = ("pg_total_relation_size", "pg_stat_all_tables", "pg_stat_statements_info",
                "statement_timeout", "pg_stat_activity", "pg_extension")


def _export(dsn: str, path, select: str = "SELECT * FROM pg_stat_statements") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, open(path, "wb") as fh:
        with conn.cursor().copy(f"COPY ({select}) TO STDOUT WITH CSV HEADER") as copy:
            for data in copy:
                fh.write(data)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Two applications' databases on one server with pg_stat_statements, counted from
    a reset; the auditor then audits ``shop`` AUDITS times (catalog and view). Yields a
    dict: dsn of shop and billing, the workdir, the shop trace."""
    try:
        pg = LoggingCluster(settings=PRELOAD).start()
    except (RuntimeError, OSError) as exc:
        need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")
            conn.execute("CREATE DATABASE billing")
        dsn, billing = pg.dsn("shop"), pg.dsn("billing")
        shop.setup(dsn)
        with psycopg.connect(billing, autocommit=True) as conn:
            conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, status text)")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        trace = shop.run(dsn, "n_plus_one")
        with psycopg.connect(billing, autocommit=True) as conn:
            for i in range(BILLING_CALLS):
                conn.execute("INSERT INTO invoices VALUES (%s, %s)", (i, f"due-{i}"))
                conn.execute(BILLING_QUERY, (f"due-{i}",)).fetchall()
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:  # a third database
            conn.execute("SELECT count(*) FROM pg_database").fetchall()
        for _ in range(AUDITS):
            PostgresCollector(dsn).collect()
            read_pgss_live(dsn)
        yield {"dsn": dsn, "billing": billing, "work": tmp_path_factory.mktemp("pgss-scope"),
               "trace": trace}
    finally:
        pg.stop()


def _view(dsn: str, where: str) -> tuple[int, int]:
    """(entries, distinct databases) of the view matching ``where``, read directly."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(f"SELECT count(*), count(DISTINCT dbid) FROM pg_stat_statements "
                            f"WHERE {where}").fetchone()


NOT_SHOP = "dbid <> (SELECT oid FROM pg_database WHERE datname = 'shop')"
CUSTOMER_LOOKUP = fingerprint(shop.as_logged(shop.CUSTOMER_BY_ID))
BILLING = fingerprint("SELECT count(*) FROM invoices WHERE status = $1")


def test_the_auditors_own_statements_are_not_in_the_live_view_facts(server):
    dsn = server["dsn"]
    # they are in the view: the catalog reads of AUDITS runs, tagged
    own, _ = _view(dsn, f"strpos(query, '{QUERY_TAG}') > 0 AND calls >= {AUDITS}")
    assert own >= 8
    facts = read_pgss_live(dsn)
    assert CUSTOMER_LOOKUP in facts.statements  # the application's are read
    texts = [s.query for s in facts.statements.values()]
    assert not [t for t in texts if QUERY_TAG in t or any(a in t for a in AUDITOR_TEXT)]
    assert facts.skipped[OWN_REASON] >= own
    # so PG203, however low its bar, never judges the auditor
    params = {**rules.load()["PG203"].params, "min_calls": 1, "min_mean_ms": 0,
              "max_findings": 1000}
    judged = [f.evidence["normalized"] for f in SlowQuery().run(Facts(pgss=facts), params)]
    assert any("customers" in q for q in judged)
    assert not [q for q in judged if any(a in q for a in AUDITOR_TEXT)]


def test_the_auditors_own_statements_are_left_out_of_an_export(server):
    path = server["work"] / "all.csv"
    _export(server["dsn"], path)
    assert QUERY_TAG in path.read_text()
    facts = read_pgss_csv(path)
    assert facts.skipped[OWN_REASON] > 0
    assert not [s.query for s in facts.statements.values()
                if any(a in s.query for a in AUDITOR_TEXT)]


def test_an_export_keeps_the_audited_databases_rows_by_dbid(server):
    path = server["work"] / "dbid.csv"
    _export(server["dsn"], path)
    others, other_dbs = _view(server["dsn"], NOT_SHOP)
    assert others >= 3 and other_dbs == 2  # billing's two, postgres's one
    with open(path, newline="") as fh:
        assert len(list(csv.DictReader(fh))) > others  # shop's rows are there too
    col = PgssCollector(csv_path=path, database_dsn=server["dsn"])
    facts = col.collect()
    assert facts.database == "shop"
    assert BILLING not in facts.statements and CUSTOMER_LOOKUP in facts.statements
    assert facts.skipped[other_database_reason("shop")] == others
    (note,) = facts.notes
    assert note.startswith("rows of database 'shop' only (by dbid ")
    assert note.endswith(f": {others} rows of {other_dbs} other databases left out")
    assert note in col.describe()
    # without the filter the billing statement is there: the test can tell
    assert BILLING in read_pgss_csv(path).statements


def test_an_export_with_datname_is_filtered_by_name_without_connecting(server):
    path = server["work"] / "datname.csv"
    _export(server["dsn"], path, "SELECT d.datname, s.* FROM pg_stat_statements s "
                                 "JOIN pg_database d ON d.oid = s.dbid")
    others, other_dbs = _view(server["dsn"], NOT_SHOP)
    # the DSN names shop but nothing listens there: the name alone is enough
    unreachable = f"postgresql://postgres@127.0.0.1:{closed_port()}/shop"
    facts = PgssCollector(csv_path=path, database_dsn=unreachable).collect()
    assert BILLING not in facts.statements and CUSTOMER_LOOKUP in facts.statements
    assert facts.notes == [f"rows of database 'shop' only (by datname): {others} rows of "
                           f"{other_dbs} other databases left out"]


def test_an_export_that_cannot_be_told_apart_says_so(server):
    path = server["work"] / "dbid-only.csv"
    _export(server["dsn"], path)
    # no database named
    facts = PgssCollector(csv_path=path).collect()
    assert BILLING in facts.statements and facts.database is None
    assert facts.notes[0].startswith("the export holds rows of ")
    assert facts.notes[0].endswith("and all are read: the audit names no database "
                                   "(postgres.dsn)")
    # named, but its oid cannot be looked up
    unreachable = f"postgresql://postgres@127.0.0.1:{closed_port()}/shop"
    facts = PgssCollector(csv_path=path, database_dsn=unreachable).collect()
    assert BILLING in facts.statements
    assert "the database's oid could not be looked up: cannot connect" in facts.notes[0]
    # no dbid or datname column at all
    bare = server["work"] / "bare.csv"
    _export(server["dsn"], bare, "SELECT query, calls, rows, total_exec_time "
                                 "FROM pg_stat_statements")
    facts = PgssCollector(csv_path=bare, database_dsn=server["dsn"]).collect()
    assert BILLING in facts.statements
    assert facts.notes == ["the export has no dbid or datname column: its rows may come "
                           "from every database of the server (export it with SELECT * "
                           "FROM pg_stat_statements)"]
