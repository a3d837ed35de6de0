"""The query-log reader against real PostgreSQL 15 logs of known workloads.

Every log here is written by a real server at test time (tests/logfixtures.py); the
reader must find exactly what the workload did: its statements, their parameters,
its sessions and requests, its connections, and every logged millisecond.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import needs_corpus

from auditor.collectors.querylog import LogSpec, QueryLogCollector
from auditor.collectors.querylog import read_logs as _read_logs
from auditor.facts.workload import WorkloadProfile
from auditor.fingerprint import fingerprint
from fixtures.make_logs import DEBIAN_PREFIX, PGBADGER_PREFIX
from fixtures.workloads.shop import CUSTOMER_BY_ID, PAGE, REQUESTS, as_logged

pytest_plugins = ["logfixtures"]

FORMATS = ("stderr", "csvlog", "jsonlog")
_DURATION = re.compile(r"duration: (\d+\.\d+) ms")


def read_logs(specs, **kw) -> WorkloadProfile:
    """The reader, keeping every request (by default it keeps only the detectors'
    aggregates): these tests compare the requests with what the workload ran."""
    return _read_logs(specs, keep_requests=True, **kw)


def logged(profile: WorkloadProfile) -> list[list[tuple[str, tuple[str, ...]]]]:
    return [[(st.query, st.params) for st in r.statements] for r in profile.requests]


def executed(trace) -> list[list[tuple[str, tuple[str, ...]]]]:
    return [[(e.sql, e.params) for e in r] for r in trace.requests]


def durations_in(path: Path) -> float:
    """Every duration figure in a stderr log (parse, bind, execute, statement, bare)."""
    return round(sum(float(x) for x in _DURATION.findall(path.read_text())), 3)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scenario", ["n_plus_one", "mn_plus_one", "joined", "redundant",
                                      "connection_per_request", "pooled", "unindexed"])
def test_reads_exactly_what_the_workload_ran(shop_logs, fmt, scenario):
    cap = shop_logs[scenario]
    profile = read_logs([cap.paths[fmt]])
    assert logged(profile) == executed(cap.trace)
    assert profile.statements == len(cap.trace.statements)
    assert len({r.session for r in profile.requests}) == cap.trace.connections
    assert {r.boundary for r in profile.requests} == {"transaction"}
    assert {(r.user, r.database) for r in profile.requests} == {("postgres", "shop")}
    assert profile.skipped == {}
    conns = profile.connections
    assert conns.logged
    assert conns.connections == conns.disconnections == cap.trace.connections
    assert conns.sessions_timed == cap.trace.connections
    assert all(st.duration_ms is not None and st.ts is not None
               for r in profile.requests for st in r.statements)


def test_formats_agree_on_every_duration(shop_logs):
    """stderr, csvlog and jsonlog of the same run give the same statements with the same
    durations, and the total is every duration the stderr log holds (parse and bind
    durations are added to their execute, nothing is lost or counted twice)."""
    cap = shop_logs["mn_plus_one"]
    profiles = {fmt: read_logs([cap.paths[fmt]]) for fmt in FORMATS}
    per_stmt = {fmt: [(st.query, st.params, st.duration_ms, st.ts)
                      for r in p.requests for st in r.statements]
                for fmt, p in profiles.items()}
    assert per_stmt["stderr"] == per_stmt["csvlog"] == per_stmt["jsonlog"]
    expected_ms = durations_in(cap.paths["stderr"])
    assert expected_ms > 0
    for p in profiles.values():
        assert p.total_ms == pytest.approx(expected_ms, abs=1e-6)
        assert sum(f.total_ms for f in p.fingerprints.values()) == pytest.approx(expected_ms)


def test_fingerprint_stats(shop_logs):
    cap = shop_logs["n_plus_one"]
    profile = read_logs([cap.paths["stderr"]])
    fp = fingerprint(as_logged(CUSTOMER_BY_ID))
    stats = profile.fingerprints[fp]
    assert stats.calls == PAGE * REQUESTS
    assert stats.normalized == "SELECT id, name, email FROM customers WHERE id = $1"
    assert stats.example.fingerprint == fp and len(stats.example.params) == 1
    assert stats.max_ms == max(st.duration_ms for r in profile.requests for st in r.statements
                               if st.fingerprint == fp)
    assert stats.example.duration_ms == stats.max_ms  # the slowest execution
    assert sum(f.calls for f in profile.fingerprints.values()) == profile.statements
    assert profile.first_ts <= profile.last_ts


def test_pgbadger_prefix_detected_and_read(pgbadger_logs):
    for cap in pgbadger_logs.values():
        detected = read_logs([cap.path])
        explicit = read_logs([LogSpec(cap.path, "stderr", PGBADGER_PREFIX)])
        assert logged(detected) == logged(explicit)
        flat = [st for r in logged(detected) for st in r]
        assert flat == [st for r in executed(cap.trace) for st in r]
        if cap.scenario != "autocommit":  # (idle gaps below 1 s: see the next test)
            assert logged(detected) == executed(cap.trace)
        assert detected.connections.connections == cap.trace.connections
        assert detected.skipped == {}
    req = read_logs([pgbadger_logs["n_plus_one"].path]).requests[0]
    assert (req.user, req.database) == ("postgres", "shop")


def test_idle_gap_splits_autocommit_requests(pgbadger_logs):
    """Without transactions, a pause longer than idle_gap_ms ends a request (the
    workload pauses 300 ms between its three requests); the last one ends with its
    session. With %t (whole seconds) timestamps the gap is measured to the second."""
    cap = pgbadger_logs["autocommit"]
    one = read_logs([cap.path], idle_gap_ms=5000)
    assert [(r.boundary, len(r.statements)) for r in one.requests] == [("session", 9)]
    assert "BEGIN" not in {st.query for r in one.requests for st in r.statements}


def test_idle_gap_with_millisecond_timestamps(shop_logs):
    cap = shop_logs["autocommit"]
    split = read_logs([cap.path], idle_gap_ms=100)
    assert logged(split) == executed(cap.trace)
    assert [r.boundary for r in split.requests] == ["idle-gap", "idle-gap", "session"]
    whole = read_logs([cap.path])  # default 1000 ms: the 300 ms pauses stay inside
    assert [len(r.statements) for r in whole.requests] == [9]


def test_statement_then_duration_lines(statement_all_logs):
    """log_statement = all: 'statement: ...' / 'execute ...' first, a bare 'duration:'
    line after; each statement counted once, with that duration."""
    for cap in statement_all_logs.values():
        text = cap.path.read_text()
        assert re.search(r"LOG:  duration: \d+\.\d+ ms$", text, re.M)  # bare durations
        profile = read_logs([cap.path])
        assert logged(profile) == executed(cap.trace)
        assert all(st.duration_ms is not None for r in profile.requests for st in r.statements)
        assert profile.total_ms == pytest.approx(durations_in(cap.path))
        # %c in the prefix: sessions are keyed (and named) by the session id
        assert all(re.fullmatch(r"[0-9a-f]+\.[0-9a-f]+", r.session) for r in profile.requests)
        assert len({r.session for r in profile.requests}) == cap.trace.connections


def test_statements_without_durations(no_duration_logs):
    cap = no_duration_logs["mn_plus_one"]
    profile = read_logs([cap.path])
    assert logged(profile) == executed(cap.trace)
    assert {st.duration_ms for r in profile.requests for st in r.statements} == {None}
    assert profile.total_ms == 0


@pytest.mark.parametrize("compression", ["gzip", "bz2"])
def test_compressed_logs(shop_logs, tmp_path, compression):
    import bz2
    import gzip
    cap = shop_logs["n_plus_one"]
    opener = gzip.open if compression == "gzip" else bz2.open
    for fmt in FORMATS:
        dest = tmp_path / f"{cap.paths[fmt].name}.{'gz' if compression == 'gzip' else 'bz2'}"
        with opener(dest, "wb") as fh:
            fh.write(cap.paths[fmt].read_bytes())
        assert logged(read_logs([dest])) == executed(cap.trace)


def test_rotated_files_read_as_one_stream(shop_logs, tmp_path):
    """A log split in two files (rotation) mid-session: requests continue across."""
    cap = shop_logs["mn_plus_one"]
    lines = cap.path.read_text().splitlines(keepends=True)
    cut = next(i for i in range(len(lines) // 2, len(lines)) if not lines[i].startswith("\t"))
    a, b = tmp_path / "postgresql.log.1", tmp_path / "postgresql.log"
    a.write_text("".join(lines[:cut]))
    b.write_text("".join(lines[cut:]))
    assert logged(read_logs([a, b])) == executed(cap.trace)


def test_malformed_lines_are_counted_and_skipped(shop_logs, tmp_path):
    """Hand-made malformed lines (the only hand-typed log content in these tests)."""
    cap = shop_logs["n_plus_one"]
    good = cap.paths["stderr"].read_text().splitlines(keepends=True)
    bad = tmp_path / "mixed.log"
    garbage = ["garbage that is not a log line\n", "\tan orphan continuation line\n",
               "2024-13-99 99:99:99.999 UTC [1] LOG:  not a date\n", "Traceback (most recent call last):\n"]
    bad.write_text(garbage[1] + "".join(good[:10]) + garbage[0] + "".join(good[10:])
                   + garbage[3] + garbage[2])
    profile = read_logs([LogSpec(bad, line_prefix=DEBIAN_PREFIX)])
    assert logged(profile) == executed(cap.trace)
    assert profile.skipped == {"line does not match log_line_prefix": 2,
                               "continuation line without a record before it": 1,
                               "unreadable timestamp": 1}

    js = cap.paths["jsonlog"].read_text().splitlines(keepends=True)
    jbad = tmp_path / "mixed.json"
    jbad.write_text("".join(js[:5]) + js[5][: len(js[5]) // 2] + "\n" + "[1, 2]\n"
                    + '{"timestamp": "2024-01-01 00:00:00 UTC"}\n' + "".join(js[5:]))
    profile = read_logs([jbad])
    assert logged(profile) == executed(cap.trace)
    assert profile.skipped == {"invalid jsonlog line": 2, "jsonlog record without a message": 1}

    cs = cap.paths["csvlog"].read_text().splitlines(keepends=True)
    cbad = tmp_path / "mixed.csv"
    cbad.write_text("".join(cs[:5]) + "a,b,c\n" + "".join(cs[5:]))
    profile = read_logs([LogSpec(cbad, "csvlog")])
    assert logged(profile) == executed(cap.trace)
    assert profile.skipped == {"csvlog row with too few columns": 1}


def test_wrong_explicit_prefix_names_the_setting(shop_logs):
    from auditor.errors import ConfigError
    cap = shop_logs["pooled"]
    with pytest.raises(ConfigError, match=r"log_line_prefix '%t \[%p\]: '.*SHOW log_line_prefix"):
        read_logs([LogSpec(cap.path, line_prefix="%t [%p]: ")])


def test_unrecognisable_prefix_is_an_actionable_error(tmp_path):
    from auditor.errors import TargetUnreachable
    odd = tmp_path / "odd.log"
    odd.write_text("".join(f"<<{i}>> something happened LOG\n" for i in range(20)))
    with pytest.raises(TargetUnreachable, match="no line carries a PostgreSQL severity word"
                                                ".*lc_messages = 'C'"):
        read_logs([odd])


def test_unreadable_files(tmp_path):
    from auditor.errors import TargetUnreachable
    with pytest.raises(TargetUnreachable, match="no such file"):
        read_logs([tmp_path / "missing.log"])
    binary = tmp_path / "image.log"
    binary.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(TargetUnreachable, match="binary data"):
        read_logs([binary])
    corrupt = tmp_path / "broken.log.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate" * 4)
    with pytest.raises(TargetUnreachable, match="corrupt"):
        read_logs([corrupt])
    with pytest.raises(TargetUnreachable):
        read_logs([tmp_path])


def test_collector(shop_logs):
    cap = shop_logs["connection_per_request"]
    col = QueryLogCollector([LogSpec(cap.path, line_prefix=DEBIAN_PREFIX), cap.paths["csvlog"]])
    assert col.kind == "workload"
    assert str(cap.path) in col.describe() and "%m [%p]" in col.describe()
    profile = col.collect()
    assert profile.sources == [str(cap.path), str(cap.paths["csvlog"])]
    # the same run read twice: twice the statements and connections
    assert profile.statements == 2 * len(cap.trace.statements)
    assert profile.connections.connections == 2 * cap.trace.connections
    assert profile.connections.peak_per_second >= 1


# -- the public corpus: other projects' real logs (pgbadger's test suite) ---------------
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pgbadger"
with_corpus = needs_corpus(CORPUS)


@with_corpus
def test_pgbadger_light_log_matches_pgbadger():
    """pgbadger 12.0 counted 629 queries, 8654.84 ms, 7 normalized shapes."""
    p = read_logs([CORPUS / "light.postgres.log.bz2"])
    assert (p.statements, p.total_ms, len(p.fingerprints)) == (629, 8654.84, 7)
    assert p.skipped == {}


@with_corpus
def test_corpus_parameters_over_several_lines():
    p = read_logs([CORPUS / "multiline_param.log"])
    assert p.statements == 5
    params = [st.params for r in p.requests for st in r.statements if st.params]
    assert ("1234", "njchar\nhello", "aaaa") in params


@with_corpus
def test_corpus_csv_statement_without_duration():
    p = read_logs([CORPUS / "csv_statement_without_duration.log"])
    durations = [st.duration_ms for r in p.requests for st in r.statements]
    assert durations == [688786.283, None]  # the second does not inherit the first's


@with_corpus
@pytest.mark.parametrize("name,statements", [("queryid.log", 20), ("stmt_type.log", 12),
                                             ("postgresql_param_range.log", 3),
                                             ("pg-timezones.log", 2), ("begin_end.log", 0)])
def test_corpus_statement_counts(name, statements):
    assert read_logs([CORPUS / name]).statements == statements


@with_corpus
def test_corpus_connections_only():
    p = read_logs([CORPUS / "begin_end.log"])
    assert p.connections.logged and p.connections.connections == p.connections.disconnections > 0
