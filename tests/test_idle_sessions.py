"""Sessions that go quiet are ended by the idle rule (Detection.session_idle_ms), so a log
without disconnection lines does not keep every session it has seen in memory, and the
result does not depend on when the reader sweeps its session map: one pass, chunks,
sweeps at every new session or never all give the same profile.

The logs are real: fixtures/workloads/sessions.py run against a throwaway PostgreSQL
with ``log_disconnections = off`` (600 connection-per-request sessions, two pooled
connections that pause between transactions and one left idle in a transaction). The
idle limit is set under the workload's pauses (250 ms) so that the rule and the sweeps
act within a few seconds of log.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from auditor.collectors.querylog import LogSpec, read_logs
from auditor.collectors.querylog.formats import open_log
from auditor.collectors.querylog.parallel import _reader_of, chunk_tasks, read_chunk
from auditor.collectors.querylog.profile import ProfileBuilder
from auditor.facts.workload import Detection
from fixtures.make_logs import DEBIAN_PREFIX

pytest_plugins = ["logfixtures"]

LIMIT = Detection(session_idle_ms=250)


def _read(path, detection=LIMIT, keep_requests=False, every=20):
    """One pass through ProfileBuilder.consume; (profile, the most sessions held open)."""
    b = ProfileBuilder(detection=detection, keep_requests=keep_requests)
    f = open_log(path, "auto", DEBIAN_PREFIX if str(path).endswith(".log") else None,
                 b.skipped)
    most = [0]

    def watch(_statements):
        most[0] = max(most[0], len(b.sessions))
    b.consume(f.records, watch, every=every)
    most[0] = max(most[0], len(b.sessions))
    return b.finish(), most[0]


def test_the_limit_comes_from_the_idle_gap():
    assert Detection().session_idle_limit_ms == 600_000  # the 10-minute floor
    assert Detection(idle_gap_ms=5000).session_idle_limit_ms == 3_000_000
    assert Detection(session_idle_ms=250).session_idle_limit_ms == 250


@pytest.mark.parametrize("fmt", ["jsonlog", "csvlog"])
def test_sessions_without_disconnections_are_not_all_kept(many_sessions_logs, monkeypatch,
                                                          fmt):
    paths, exp, pause_s = many_sessions_logs
    assert LIMIT.session_idle_limit_ms / 1000 < pause_s
    monkeypatch.setattr(ProfileBuilder, "SWEEP_MIN", 64)
    profile, most = _read(paths[fmt])
    # the open-session map stays near the sessions of the last half second, where the
    # log has more than 600 (this is what it held before the idle rule: all of them)
    assert most <= 260, most
    _, most_without = _read(paths[fmt], Detection(session_idle_ms=1e12))
    assert most_without >= exp.connections
    # and what was counted is what ran
    assert profile.statements == exp.statements
    assert profile.sessions == exp.sessions
    assert profile.request_count == exp.requests
    assert profile.connections.connections >= exp.connections
    assert profile.connections.disconnections == 0
    assert any(loop.fingerprints and len(loop.fingerprints) == 1 for loop in profile.loops)


def test_the_result_does_not_depend_on_when_sessions_are_swept(many_sessions_logs,
                                                               monkeypatch):
    paths, exp, _ = many_sessions_logs
    results = []
    for every_new_session in (1, 64, 10**9):
        monkeypatch.setattr(ProfileBuilder, "SWEEP_MIN", every_new_session)
        results.append(_read(paths["jsonlog"], keep_requests=True)[0])
    assert results[0] == results[1] == results[2]
    assert results[0].request_count == exp.requests
    assert len(results[0].requests) == exp.requests
    # the csvlog of the same events gives the same counts
    csv = _read(paths["csvlog"])[0]
    assert (csv.statements, csv.sessions, csv.request_count) == \
        (exp.statements, exp.sessions, exp.requests)


@pytest.mark.parametrize("chunk_bytes", [2000, 30_000])
def test_chunked_reading_gives_the_one_pass_result(many_sessions_logs, chunk_bytes):
    paths, exp, _ = many_sessions_logs
    spec = [LogSpec(paths["jsonlog"])]
    one = read_logs(spec, jobs=1, detection=LIMIT, keep_requests=True)
    many = read_logs(spec, jobs=2, chunk_bytes=chunk_bytes, min_parallel_bytes=0,
                     detection=LIMIT, keep_requests=True)
    assert many == one
    assert one.sessions == exp.sessions and one.statements == exp.statements


def test_chunks_that_sweep_fold_into_the_one_pass_result(many_sessions_logs, monkeypatch):
    """The map step in this process with a sweep at every new session (the workers keep
    the default threshold), folded with absorb: sessions swept inside chunks, muted ones
    included, stitch to the one-pass result."""
    paths, _, _ = many_sessions_logs
    path = str(paths["jsonlog"])
    one = read_logs([LogSpec(path)], jobs=1, detection=LIMIT, keep_requests=True)
    monkeypatch.setattr(ProfileBuilder, "SWEEP_MIN", 1)
    for chunk_bytes in (1500, 20_000):
        tasks = chunk_tasks(path, "jsonlog", None, first_chunk=0, orphans=False,
                            detection=LIMIT, keep_requests=True, chunk_bytes=chunk_bytes)
        assert len(tasks) > 5
        whole = ProfileBuilder(detection=LIMIT, keep_requests=True)
        for task in tasks:
            whole.absorb(read_chunk(task), _reader_of(task))
        whole.sources.append(path)
        folded = whole.finish()
        assert replace(folded, skipped={}) == replace(one, skipped={})


def _stderr_reads(many_sessions_logs, tmp_path):
    import gzip
    paths, exp, _ = many_sessions_logs
    plain = paths["stderr"]
    packed = tmp_path / "postgresql.log.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    spec = lambda p: [LogSpec(p, line_prefix=DEBIAN_PREFIX)]  # noqa: E731
    gz = read_logs(spec(packed), jobs=1, detection=LIMIT, keep_requests=True)
    one = read_logs(spec(plain), jobs=1, detection=LIMIT, keep_requests=True)
    many = read_logs(spec(plain), jobs=2, chunk_bytes=5000, min_parallel_bytes=0,
                     detection=LIMIT, keep_requests=True)
    return exp, gz, one, many


def _unordered(requests):
    return sorted(repr(replace(r, application=None)) for r in requests)


def test_pid_keyed_stderr_counts_what_ran(many_sessions_logs, tmp_path, monkeypatch):
    """The same events in a stderr log whose prefix has no %c (sessions keyed by pid,
    named pid@time): compressed (the record reader), plain (the line reader's short
    path), chunked: the same counts and the same requests."""
    monkeypatch.setattr(ProfileBuilder, "SWEEP_MIN", 64)
    exp, gz, one, many = _stderr_reads(many_sessions_logs, tmp_path)
    for p in (gz, one, many):
        assert (p.statements, p.sessions, p.request_count) == \
            (exp.statements, exp.sessions, exp.requests)
        assert replace(p, requests=[], sources=[]) == replace(gz, requests=[], sources=[])
        assert _unordered(p.requests) == _unordered(gz.requests)


def test_pid_keyed_stderr_reads_exactly_the_same_every_way(many_sessions_logs, tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(ProfileBuilder, "SWEEP_MIN", 64)
    _, gz, one, many = _stderr_reads(many_sessions_logs, tmp_path)
    assert replace(one, sources=[]) == replace(gz, sources=[])
    assert many == one
