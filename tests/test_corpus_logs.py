"""Every log in the public corpus (../shared/corpus/pgbadger, from pgbadger's test suite)
is read, with the figures a user would check against pgbadger 12.0 (the corpus README's
reference numbers) and against the raw file itself.

Where we differ from the README, the test's docstring says why, and the raw file was
counted to decide (``grep -c 'duration: .* ms  statement:'`` and friends).
"""

from __future__ import annotations

import bz2
from pathlib import Path

import pytest
from conftest import needs_corpus

from auditor.collectors.querylog import LogSpec, iter_records
from auditor.collectors.querylog import read_logs as _read_logs
from auditor.collectors.querylog.formats import CNPG_OTHER, NO_PREFIX, OTHER_PROGRAM, PGBOUNCER_LINE

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pgbadger"
with_corpus = needs_corpus(CORPUS)


def read_logs(specs, **kw):
    """read_logs keeping every request (the tests compare them with the workload's)."""
    kw.setdefault("keep_requests", True)
    return _read_logs(specs, **kw)


def read(name: str, **kw):
    files: list[dict] = []
    return read_logs([CORPUS / name], files=files, **kw), files[0]


def every_file() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir()) if CORPUS.exists() else []


@with_corpus
def test_every_corpus_file_is_read():
    """Each file is read without an error, its format recognised, and no line of a
    PostgreSQL log is skipped for a reason other than those the tests below explain."""
    formats = {}
    for name in every_file():
        p, info = read(name)
        formats[name] = info["format"]
        assert info["lines_matched"] > 0 or info["format"] == "pgbouncer", name
    assert formats == {
        "begin_end.log": "stderr", "cloudsql.log.gz": "cloudsql", "cnpg.log.gz": "cnpg",
        "csv_statement_without_duration.log": "csvlog", "light.postgres.log.bz2": "stderr",
        "multiline_param.log": "stderr", "pg-syslog.1.bz2": "syslog",
        "pg-timezones.log": "stderr", "pg_rawcsv.log": "stderr",
        "pg_vacuums.json.gz": "jsonlog", "pg_vacuums.log.gz": "stderr",
        "pgbouncer.log.gz": "pgbouncer", "postgresql_param_range.log": "stderr",
        "queryid.log": "stderr", "rds.log.bz2": "stderr", "stmt_type.log": "stderr",
    }


@with_corpus
def test_light_log_matches_pgbadger():
    """pgbadger 12.0: 629 queries, 8654.84 ms, 7 normalized shapes."""
    p, info = read("light.postgres.log.bz2")
    assert (p.statements, p.total_ms, len(p.fingerprints)) == (629, 8654.84, 7)
    assert info["line_prefix"] == "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "
    assert p.skipped == {}


@with_corpus
def test_syslog_matches_pgbadger():
    """pgbadger 12.0: 59,871 queries, 12 shapes, 16s955ms; the raw file holds 59,871
    'duration:' lines summing to 16,955.939 ms, and 6 psql/pgbench connections.
    Its three systemd lines are another program's."""
    p, info = read("pg-syslog.1.bz2")
    assert (p.statements, p.total_ms, len(p.fingerprints)) == (59871, 16955.939, 12)
    assert info["format"] == "syslog"
    assert info["line_prefix"] == "db=%d,user=%u,app=%a,client=%h "
    assert p.connections.connections == p.connections.disconnections == 6
    assert p.skipped == {OTHER_PROGRAM: 3}
    assert {f.calls for f in p.fingerprints.values() if "pgbench_accounts" in f.normalized
            and f.normalized.startswith("SELECT")} == {8552}
    # multi-line statements: rsyslog's #011 is the tab PostgreSQL puts before each line
    psql = [f.example.query for f in p.fingerprints.values()
            if f.normalized.startswith("SELECT d.datname")]
    assert psql and psql[0].split("\n")[:2] == [
        'SELECT d.datname as "Name",',
        '       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",']


@with_corpus
def test_syslog_interleaved_backends(tmp_path):
    """Two backends' multi-line statements with their syslog chunks interleaved (the
    corpus's real lines, reordered) read the same as in order."""
    lines = bz2.open(CORPUS / "pg-syslog.1.bz2", "rt").read().splitlines(keepends=True)[:40]
    a = [ln for ln in lines if "postgres[10819]" in ln]
    b = [ln for ln in lines if "postgres[10822]" in ln]
    assert len(a) == len(b) == 11
    ordered, mixed = tmp_path / "ordered.log", tmp_path / "mixed.log"
    ordered.write_text("".join(a + b))
    mixed.write_text("".join(x for pair in zip(a, b) for x in pair))

    def statements(path):
        p = read_logs([LogSpec(path, "syslog")])
        return sorted((r.session.split("@")[0], st.query, st.duration_ms)
                      for r in p.requests for st in r.statements)
    assert statements(mixed) == statements(ordered)
    assert len(statements(ordered)) == 2 and "\n" in statements(ordered)[0][1]


@with_corpus
def test_rds_log():
    """pgbadger 12.0 counts 114,594 queries and 57 shapes; the raw file holds 114,594
    statement durations summing to 71,472.764 ms. We count 58 shapes: the 58th is the
    empty statement (3 'statement: ' lines with no text, e.g. a client's ping), which
    pgbadger counts as a query but does not list as a shape."""
    p, info = read("rds.log.bz2")
    assert (p.statements, p.total_ms, len(p.fingerprints)) == (114594, 71472.764, 58)
    assert info["line_prefix"] == "%t:%r:%u@%d:[%p]:"
    assert [f.calls for f in p.fingerprints.values() if f.normalized == ""] == [3]
    assert p.skipped == {}
    assert read_logs([LogSpec(CORPUS / "rds.log.bz2", "rds")]).statements == 114594


@with_corpus
def test_cloudsql_log():
    """pgbadger 12.0: 1 query and 398 connections. The one statement is logged by
    log_statement (no duration). The README's 151 (upstream's newer tests) are the
    cloudsqladmin connections to the cloudsqladmin database: 398 in all."""
    p, info = read("cloudsql.log.gz")
    assert info["format"] == "cloudsql"
    assert info["line_prefix"] == "[%p]: [%l-1] db=%d,user=%u "
    assert p.statements == 1 and p.total_ms == 0
    assert [st.query for r in p.requests for st in r.statements] == ["SELECT *  FROM t1"]
    assert p.connections.connections == 398
    cloudsqladmin = sum(1 for r in iter_records([CORPUS / "cloudsql.log.gz"])
                        if r.message.startswith("connection authorized: user=cloudsqladmin "
                                                "database=cloudsqladmin"))
    assert cloudsqladmin == 151
    assert p.skipped == {}


@with_corpus
def test_cnpg_log():
    """400 statements (upstream's newer tests: 400; pgbadger 12.0 with -f jsonlog: 0),
    2370.85 ms. Upstream counts 378 connections: those to database postgres; the log
    also holds 3 to myapp, 1 to template1 and 4 replication connections: 386 in all.
    The file is newest first (as a log viewer exports it); counts do not depend on order.
    47 lines are the operator's own or start-up output, not PostgreSQL records."""
    p, info = read("cnpg.log.gz")
    assert info["format"] == "cnpg"
    assert (p.statements, p.total_ms) == (400, 2370.85)
    assert p.connections.connections == 386
    to_postgres = sum(1 for r in iter_records([CORPUS / "cnpg.log.gz"])
                      if r.message.startswith("connection authorized") and r.db == "postgres")
    assert to_postgres == 378
    assert p.skipped == {CNPG_OTHER: 47}


@with_corpus
def test_vacuum_events_in_both_formats():
    """Upstream: 2094 autovacuum and 1450 autoanalyze events, in the stderr and the
    jsonlog file alike; no statements."""
    for name in ("pg_vacuums.log.gz", "pg_vacuums.json.gz"):
        skipped: dict[str, int] = {}
        msgs = [r.message for r in iter_records([CORPUS / name], skipped)]
        vac = sum(1 for m in msgs if m.startswith(("automatic vacuum", "automatic aggressive vacuum")))
        ana = sum(1 for m in msgs if m.startswith("automatic analyze"))
        assert (vac, ana, skipped) == (2094, 1450, {}), name
        assert read_logs([CORPUS / name]).statements == 0


@with_corpus
@pytest.mark.parametrize("name,statements,total_ms,shapes", [
    ("queryid.log", 20, 13595.422, 14),  # pgbadger: 20, 13s595ms, 14
    ("stmt_type.log", 12, 37.444, 12),  # pgbadger: 12, 37 ms, 12
    ("multiline_param.log", 5, 127.525, 4),  # pgbadger: 5, 127 ms, 4
    ("postgresql_param_range.log", 3, 1659.415, 1),  # raw: 3 execute durations
    ("pg-timezones.log", 2, 0.114, 2),  # raw: 2 (single-space 'LOG: duration:')
    ("begin_end.log", 0, 0.0, 0),
])
def test_small_logs(name, statements, total_ms, shapes):
    """Counts and totals from the raw files (every 'duration:' line with its statement);
    pgbadger 12.0 agrees where it reports (it prints nothing for the last three)."""
    p, _ = read(name)
    assert (p.statements, p.total_ms, len(p.fingerprints)) == (statements, total_ms, shapes)
    assert p.skipped == {}


@with_corpus
def test_parameters_of_execute_unnamed():
    p, info = read("postgresql_param_range.log")
    assert info["line_prefix"].endswith("usr=%u,db=%d,appli=%a ")
    params = [st.params for r in p.requests for st in r.statements]
    assert ("F99278492", "H44277392", "B38147492", "D65357492", "A32557392", "A29970192",
            "A32557492", "[2023-02-23T00:00,2023-02-24T00:00]") in params


@with_corpus
def test_parameters_over_several_lines():
    p, _ = read("multiline_param.log")
    params = [st.params for r in p.requests for st in r.statements if st.params]
    assert ("1234", "njchar\nhello", "aaaa") in params


@with_corpus
def test_csv_statement_without_duration():
    p, _ = read("csv_statement_without_duration.log")
    durations = [st.duration_ms for r in p.requests for st in r.statements]
    assert durations == [688786.283, None]  # the second does not inherit the first's


@with_corpus
def test_begin_end_connections_only():
    p, _ = read("begin_end.log")
    assert p.statements == 0
    assert p.connections.logged and p.connections.connections == p.connections.disconnections == 8


@with_corpus
def test_start_up_failure_lines():
    """pg_ctl's own two lines between server lines are not log records: counted."""
    p, _ = read("pg_rawcsv.log")
    assert p.statements == 0
    assert p.skipped == {NO_PREFIX: 2}


@with_corpus
def test_pgbouncer_log_is_recognised_not_misread():
    """PgBouncer's log: no statements; 63,943 client logins (pgbadger's test counts
    63,943 PgBouncer connections in that hour) over 15 server connections."""
    p, info = read("pgbouncer.log.gz")
    assert p.statements == 0
    assert info["pgbouncer"]["client_logins"] == 63943
    assert info["pgbouncer"]["server_connections"] == 15
    assert p.skipped == {PGBOUNCER_LINE: 127910}
    assert any("PgBouncer" in n for n in info["notes"])
