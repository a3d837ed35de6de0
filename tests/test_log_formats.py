"""Log formats, prefixes and damaged inputs, against logs a real PostgreSQL writes at
test time (fixtures/pgcluster.py, fixtures/make_logs.py).

What a user checks: every statement the workload ran is read with its exact text,
parameters and duration, whatever the log_line_prefix, format or compression; a prefix
that cannot work is an error that says what is missing and what to set; a damaged file
is an error or counted skips, never a crash and never a silent "0 statements".
The only hand-made content here is deliberately damaged data (cut, binary), said where.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import sys
import zlib
from pathlib import Path

import psycopg
import pytest
from conftest import need
import zstandard

from auditor.collectors.querylog import LogSpec
from auditor.collectors.querylog import read_logs as _read_logs
from auditor.collectors.querylog.formats import NOT_UTF8, RDS_PREFIX, TRUNCATED, open_log
from auditor.collectors.querylog.prefix import (RECOMMENDED_PREFIX, compile_prefix,
                                                fields_of, prefix_from_server)
from auditor.errors import ConfigError, TargetUnreachable
from fixtures.make_logs import DEBIAN_PREFIX, ShopLogs
from fixtures.pgcluster import LoggingCluster

pytest_plugins = ["logfixtures"]

# Every escape PostgreSQL documents, in one prefix (%q: the rest only for sessions).
ALL_ESCAPES = "%m|%n|%t|%s [%p|%P] %c %l %v %x %e %b|%i|%Q %q%u@%d %a %r %h "
_DURATION = re.compile(r"duration: (\d+\.\d+) ms")


def _unavailable(exc: Exception) -> None:
    need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)


def logged(profile):
    return [[(st.query, st.params) for st in r.statements] for r in profile.requests]


def executed(trace):
    return [[(e.sql, e.params) for e in r] for r in trace.requests]


def flat(profile):
    return [(st.query, st.params) for r in profile.requests for st in r.statements]


def read_logs(specs, **kw):
    """read_logs keeping every request (the tests compare them with the workload's)."""
    kw.setdefault("keep_requests", True)
    return _read_logs(specs, **kw)


# -- fixtures: real logs ----------------------------------------------------------------
@pytest.fixture(scope="module")
def escape_logs(tmp_path_factory):
    """Shop scenarios logged with ALL_ESCAPES; also what SHOW log_line_prefix said."""
    out = tmp_path_factory.mktemp("all-escapes")
    logs = ShopLogs(line_prefix=ALL_ESCAPES)
    try:
        logs.__enter__()
    except (RuntimeError, OSError) as exc:
        _unavailable(exc)
    try:
        caps = {sc: logs.capture(sc, out / f"{sc}.log")
                for sc in ("mn_plus_one", "connection_per_request")}
        caps["server_prefix"] = prefix_from_server(logs.cluster.dsn("postgres"))
        return caps
    finally:
        logs.__exit__(None, None, None)


@pytest.fixture(scope="module")
def rds_logs(tmp_path_factory):
    out = tmp_path_factory.mktemp("rds")
    logs = ShopLogs(line_prefix=RDS_PREFIX)
    try:
        logs.__enter__()
    except (RuntimeError, OSError) as exc:
        _unavailable(exc)
    try:
        return logs.capture("n_plus_one", out / "rds.log")
    finally:
        logs.__exit__(None, None, None)


def _cluster(**kw) -> LoggingCluster:
    pg = LoggingCluster(**kw)
    try:
        pg.start()
    except (RuntimeError, OSError) as exc:
        _unavailable(exc)
    return pg


# A statement over several lines, and parameter values with newlines, a tab, a quote
# and NULL: PostgreSQL logs them over several lines (stderr adds a tab to each).
MULTILINE_SQL = ("SELECT id,\n       title\n  FROM notes\n WHERE body = %s\n"
                 "    OR title = %s\n    OR title IS NOT DISTINCT FROM %s")
MULTILINE_PARAMS = ("first line\nsecond line\n\tindented third", "O'Brien", None)


@pytest.fixture(scope="module")
def multiline_logs(tmp_path_factory):
    """One server writing stderr, csvlog and jsonlog at once for a workload of multi-line
    statements and multi-line parameters, extended and simple protocol."""
    pg = _cluster(line_prefix="%m [%p] %q%u@%d %a ",
                  settings={"log_destination": "'stderr,csvlog,jsonlog'"})
    out = tmp_path_factory.mktemp("multiline")
    try:
        with psycopg.connect(pg.dsn(), autocommit=True,
                             application_name="multiline-test") as conn:
            conn.execute("CREATE TABLE notes (id int PRIMARY KEY, title text, body text)")
            conn.execute("INSERT INTO notes VALUES (1, %s, %s)",
                         ("O'Brien", MULTILINE_PARAMS[0]))
            for _ in range(3):
                conn.execute(MULTILINE_SQL, MULTILINE_PARAMS).fetchall()
            conn.execute("SELECT 1 AS one,\n       2 AS two", prepare=False)
        pg.flush_log(0.8)
        paths = {}
        for fmt, ext in (("stderr", "log"), ("csvlog", "csv"), ("jsonlog", "json")):
            src = pg.logdir / f"postgresql.{ext}"
            paths[fmt] = out / src.name
            paths[fmt].write_bytes(src.read_bytes())
        return paths
    finally:
        pg.stop()


# -- every escape, the server's own prefix ------------------------------------------------
def test_every_escape_is_read_exactly(escape_logs):
    """A prefix with all of PostgreSQL's escapes: detected from the lines, and given."""
    assert escape_logs["server_prefix"] == ALL_ESCAPES  # prefix_from_server: SHOW
    assert fields_of(ALL_ESCAPES) >= {"ts", "epoch", "pid", "session", "user", "db",
                                      "app", "host"}
    for sc in ("mn_plus_one", "connection_per_request"):
        cap = escape_logs[sc]
        given = read_logs([LogSpec(cap.path, line_prefix=escape_logs["server_prefix"])])
        assert logged(given) == executed(cap.trace)
        assert given.skipped == {}
        assert len({r.session for r in given.requests}) == cap.trace.connections
        # sessions are keyed by %c: the session id PostgreSQL printed
        assert all(re.fullmatch(r"[0-9a-f]+\.[0-9a-f]+", r.session) for r in given.requests)
        assert {(r.user, r.database) for r in given.requests} == {("postgres", "shop")}
        assert given.connections.connections == cap.trace.connections
        total = round(sum(float(x) for x in _DURATION.findall(cap.path.read_text())), 3)
        assert given.total_ms == pytest.approx(total)
        files: list[dict] = []
        detected = read_logs([cap.path], files=files)
        assert flat(detected) == flat(given)
        assert files[0]["format"] == "stderr" and files[0]["notes"] == []


def test_rds_prefix_real_log(rds_logs):
    cap = rds_logs
    for spec in (LogSpec(cap.path), LogSpec(cap.path, "rds")):
        files: list[dict] = []
        p = read_logs([spec], files=files)
        assert logged(p) == executed(cap.trace)
        assert files[0]["line_prefix"] == RDS_PREFIX
        assert p.skipped == {}


# -- multi-line statements and parameters, three formats ------------------------------------
def test_multiline_statements_and_parameters_in_every_format(multiline_logs):
    want_sql = ("SELECT id,\n       title\n  FROM notes\n WHERE body = $1\n"
                "    OR title = $2\n    OR title IS NOT DISTINCT FROM $3")
    want_params = ("first line\nsecond line\n\tindented third", "O'Brien", "NULL")
    seen = {}
    for fmt, path in multiline_logs.items():
        p = read_logs([path])
        stmts = [(st.query, st.params, st.duration_ms) for r in p.requests
                 for st in r.statements]
        multi = [(q, prm) for q, prm, _d in stmts if q == want_sql]
        assert multi == [(want_sql, want_params)] * 3, fmt
        assert ("SELECT 1 AS one,\n       2 AS two", ()) in [(q, prm) for q, prm, _ in stmts]
        assert all(d is not None for _q, _p, d in stmts)
        seen[fmt] = [(q, prm, d) for q, prm, d in stmts]
        assert p.skipped == {}, fmt
    assert seen["stderr"] == seen["csvlog"] == seen["jsonlog"]


# -- prefixes that cannot work --------------------------------------------------------------
def _workload_log(tmp_path: Path, line_prefix: str, name: str,
                  apps: tuple[str, str] = ("app one", "app two")) -> Path:
    """Two sessions (with the given application names), three statements each."""
    pg = _cluster(line_prefix=line_prefix)
    try:
        conns = [psycopg.connect(pg.dsn(), autocommit=True, application_name=a) for a in apps]
        for i in range(3):
            for c in conns:
                c.execute("SELECT %s::int + 1", (i,)).fetchall()
        for c in conns:
            c.close()
        return pg.copy_log(tmp_path / name)
    finally:
        pg.stop()


def _calls(p, normalized: str) -> list[int]:
    return [f.calls for f in p.fingerprints.values() if f.normalized == normalized]


def test_prefix_without_pid_is_read_with_a_note(tmp_path):
    """'%m ' matches every line but cannot tell sessions apart: the statements are read,
    and the file's notes say what is missing and the prefix to set."""
    path = _workload_log(tmp_path, "%m ", "no-pid.log")
    files: list[dict] = []
    p = read_logs([path], files=files)
    assert _calls(p, "SELECT $1::int + $2") == [6]
    notes = " ".join(files[0]["notes"])
    assert "no pid (%p) or session id (%c), so sessions cannot be told apart" in notes
    assert f"log_line_prefix = '{RECOMMENDED_PREFIX}'" in notes


def test_unusual_prefix_is_detected_and_its_gaps_named(tmp_path):
    """'<%l> ' (a line number only) is inferred from the lines; the notes say it carries
    no pid and no timestamp."""
    path = _workload_log(tmp_path, "<%l> ", "line-numbers.log")
    files: list[dict] = []
    p = read_logs([path], files=files)
    assert _calls(p, "SELECT $1::int + $2") == [6]
    assert files[0]["line_prefix"] == "<%l> "
    notes = " ".join(files[0]["notes"])
    assert "no pid (%p)" in notes and "no timestamp (%m or %t)" in notes


def test_unknown_prefix_names_what_is_missing(tmp_path):
    """'%a: ' with application names of different shapes matches no known or inferable
    prefix: the error says what the lines lack and which log_line_prefix to set."""
    path = _workload_log(tmp_path, "%a: ", "apps.log", apps=("billing job", "api (v2)"))
    with pytest.raises(TargetUnreachable) as err:
        read_logs([path])
    msg = str(err.value)
    assert "do not match any known log_line_prefix" in msg
    assert "no pid (%p) or session id (%c), so sessions cannot be told apart" in msg
    assert "no timestamp (%m or %t)" in msg
    assert f"log_line_prefix = '{RECOMMENDED_PREFIX}'" in msg
    assert "SHOW log_line_prefix" in msg
    # given explicitly, it is read
    p = read_logs([LogSpec(path, line_prefix="%a: ")])
    assert _calls(p, "SELECT $1::int + $2") == [6]


def test_wrong_given_prefix_suggests_the_one_that_matches(shop_logs):
    cap = shop_logs["pooled"]
    with pytest.raises(ConfigError) as err:
        read_logs([LogSpec(cap.path, line_prefix="%t [%p]: ")])
    assert f"the lines look like log_line_prefix {DEBIAN_PREFIX!r}" in str(err.value)


def test_compile_prefix_pads_and_literal_percent():
    """Padding (%-10u, %5p) and %% as PostgreSQL prints them (the only hand-made lines
    here besides damaged data: a padded prefix no fixture server uses)."""
    rx = compile_prefix("%% %-10u|%5p ").regex
    m = rx.match("% bob       |  123 LOG:  statement: SELECT 1")
    assert m and m["user"].strip() == "bob" and m["pid"] == "123"


# -- sampled logs ---------------------------------------------------------------------------
def test_sampled_transactions_are_read_whole(tmp_path):
    """log_transaction_sample_rate = 0.5 with no other statement logging: the sampled
    transactions are logged whole (with durations) and read as whole requests."""
    logs = ShopLogs(line_prefix=DEBIAN_PREFIX,
                    settings={"log_min_duration_statement": "-1",
                              "log_transaction_sample_rate": "0.5"})
    try:
        logs.__enter__()
    except (RuntimeError, OSError) as exc:
        _unavailable(exc)
    try:
        cap = logs.capture("connection_per_request", tmp_path / "sampled.log")
    finally:
        logs.__exit__(None, None, None)
    p = read_logs([cap.path])
    # (the fixture's marker session, in database postgres, is sampled too: left out)
    got = [[(st.query, st.params) for st in r.statements]
           for r in p.requests if r.database == "shop"]
    want = executed(cap.trace)
    assert 0 < len(got) < len(want)  # 30 transactions at 0.5: neither none nor all
    it = iter(want)
    assert all(req in it for req in got)  # each one a whole transaction, in order
    assert all(st.duration_ms is not None for r in p.requests for st in r.statements)
    assert p.connections.connections == cap.trace.connections  # connections all logged


# -- compression and standard input ----------------------------------------------------------
def _compress(kind: str, data: bytes) -> bytes:
    if kind == "gz":
        return gzip.compress(data)
    if kind == "bz2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zst"])
def test_compressed_logs_by_content(shop_logs, tmp_path, kind):
    """Recognised by magic bytes: the name says nothing."""
    cap = shop_logs["mn_plus_one"]
    for fmt in ("stderr", "csvlog", "jsonlog"):
        dest = tmp_path / f"{fmt}.bin"
        dest.write_bytes(_compress(kind, cap.paths[fmt].read_bytes()))
        assert logged(read_logs([dest])) == executed(cap.trace), (kind, fmt)


def test_zstd_with_several_frames(shop_logs, tmp_path):
    """A zstd file made of several frames (zstd appends them) reads as one stream."""
    cap = shop_logs["n_plus_one"]
    data = cap.path.read_bytes()
    half = data.index(b"\n", len(data) // 2) + 1
    dest = tmp_path / "two-frames.log.zst"
    c = zstandard.ZstdCompressor()
    dest.write_bytes(c.compress(data[:half]) + c.compress(data[half:]))
    assert logged(read_logs([dest])) == executed(cap.trace)


@pytest.mark.parametrize("kind", ["plain", "gz"])
def test_standard_input(shop_logs, monkeypatch, kind):
    cap = shop_logs["mn_plus_one"]
    data = cap.path.read_bytes()
    if kind == "gz":
        data = gzip.compress(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    files: list[dict] = []
    p = read_logs(["-"], files=files)
    assert logged(p) == executed(cap.trace)
    assert files[0]["path"] == "stdin" and p.sources == ["-"]


# -- damaged inputs -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zst"])
def test_truncated_compressed_file_reads_up_to_the_cut(shop_logs, tmp_path, kind):
    """A compressed log cut in half (hand-damaged): every whole line before the cut is
    read, exactly as if the file had ended there (the line the cut goes through is not),
    and the damage is counted once."""
    data = b"".join(cap.paths["stderr"].read_bytes() for cap in shop_logs.values())
    if kind == "bz2":
        data *= 8  # more than one 900 KB bzip2 block, so half the file still decodes
    packed = _compress(kind, data)
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(packed[: len(packed) // 2])
    p = read_logs([cut])
    assert p.skipped.get(TRUNCATED) == 1
    # what the damaged stream still yields, read as a plain file, gives the same result
    available = _decompress_available(kind, packed[: len(packed) // 2])
    assert 0 < len(available) < len(data)
    available = available[: available.rfind(b"\n") + 1]  # whole lines
    plain = tmp_path / "available.log"
    plain.write_bytes(available)
    q = read_logs([plain])
    assert flat(p) == flat(q) and p.statements == q.statements > 0


def _decompress_available(kind: str, data: bytes) -> bytes:
    if kind == "gz":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if kind == "bz2":
        return bz2.BZ2Decompressor().decompress(data)
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(data)
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def test_corrupt_compressed_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.log.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(7, 200)))  # hand-made: gzip magic, junk
    with pytest.raises(TargetUnreachable, match="compressed data is corrupt"):
        read_logs([bad])


def test_binary_file_is_a_clear_error(tmp_path):
    png = tmp_path / "screenshot.log"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64)  # hand-made binary
    with pytest.raises(TargetUnreachable, match="binary data, not a PostgreSQL text log"):
        read_logs([png])
    noise = tmp_path / "noise.log"  # control characters, no NUL byte
    noise.write_bytes(bytes(b % 31 + 1 for b in range(4096)))
    with pytest.raises(TargetUnreachable, match="binary data"):
        read_logs([noise])


def _latin1_log(tmp_path: Path, texts: list[str], name: str) -> Path:
    """A real log of a LATIN1 database: PostgreSQL writes its statements in LATIN1."""
    pg = _cluster()
    try:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' "
                         "LC_CTYPE 'C' TEMPLATE template0")
        with psycopg.connect(pg.dsn("latin"), autocommit=True) as conn:
            conn.execute("SET client_encoding = 'LATIN1'")
            for t in texts:
                conn.execute("SELECT %s::text AS t", (t,)).fetchall()
                conn.execute(f"SELECT length('{t}')").fetchall()
        return pg.copy_log(tmp_path / name)
    finally:
        pg.stop()


def test_latin1_statements_are_counted_not_lost(tmp_path):
    texts = ["café", "crème brûlée", "Ørsted", "naïve"]
    path = _latin1_log(tmp_path, texts, "latin1.log")
    raw = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    p = read_logs([path])
    by_shape = {f.normalized: f.calls for f in p.fingerprints.values()}
    assert by_shape["SELECT $1::text AS t"] == len(texts)
    assert by_shape["SELECT length($1)"] == len(texts)
    assert p.skipped == {NOT_UTF8: sum(1 for b in raw if b >= 0x80)}
    params = [st.params for r in p.requests for st in r.statements if st.params]
    assert ("caf\ufffd",) in params


def test_mostly_latin1_file_is_a_clear_error(tmp_path):
    path = _latin1_log(tmp_path, ["é" * 300] * 3, "heavy-latin1.log")
    with pytest.raises(TargetUnreachable, match="not UTF-8 text.*iconv -f LATIN1"):
        read_logs([path])


def test_missing_directory_and_unreadable(tmp_path):
    with pytest.raises(TargetUnreachable, match="no such file"):
        open_log(tmp_path / "nope.log")
    with pytest.raises(TargetUnreachable, match="is a directory"):
        open_log(tmp_path)
    with pytest.raises(ConfigError, match="not one of auto"):
        open_log(tmp_path / "x.log", "apache")


@pytest.mark.parametrize("fmt", ["csvlog", "jsonlog", "cloudsql", "syslog"])
def test_wrong_format_given_says_what_the_file_is(shop_logs, fmt):
    """Never a silent 0 statements: a stderr log read as another format is an error
    that names the format the file shows."""
    cap = shop_logs["n_plus_one"]
    with pytest.raises(ConfigError, match=f"are not {fmt} lines: the file looks like "
                                          "stderr; give --format stderr"):
        read_logs([LogSpec(cap.path, fmt)])


def test_a_stderr_log_starting_with_a_comma_heavy_statement_is_not_taken_for_csvlog(tmp_path):
    """A log cut mid-stream (rotation, `tail`) may start with a statement holding a dozen
    commas; format detection once took it for csvlog and read 0 statements."""
    import psycopg
    from fixtures.pgcluster import LoggingCluster
    from auditor.collectors.querylog import read_logs
    with LoggingCluster() as pg:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE wide (a int, b int, c int, d int, e int, f int, g int, "
                         "h int, i int, j int, k int, l int, m int)")
            for n in range(5):
                conn.execute("INSERT INTO wide (a,b,c,d,e,f,g,h,i,j,k,l,m) "
                             f"VALUES (1,2,3,4,5,6,7,8,9,10,11,12,{n})")
        lines = pg.read_log().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if "INSERT INTO wide" in line)
    cut = tmp_path / "cut.log"
    cut.write_text("".join(lines[first:]))
    profile = read_logs([cut])
    assert profile.statements == 5
    assert profile.fingerprints and all("wide" in s.normalized for s in profile.fingerprints.values())
