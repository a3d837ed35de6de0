"""Reading a log in chunks (worker processes, then a merge) gives exactly what one pass
gives: the same statements, durations, shapes, requests, detector findings, sessions
and connections, on every real fixture log and on the public corpus.

Chunks are made tiny here (a few hundred bytes to a few KB, where the reader's default
is 16 MB) so that chunk edges fall inside sessions, transactions, statements waiting
for their parameters and requests split by idle gaps.
"""

from __future__ import annotations

import bz2
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import needs_corpus

from auditor.collectors.querylog import LogSpec, read_logs
from auditor.collectors.querylog.parallel import ReadStats, chunk_bounds
from fixtures.make_logs import DEBIAN_PREFIX

pytest_plugins = ["logfixtures"]

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pgbadger"


def both_ways(specs, chunk_bytes: int, **kw):
    one = read_logs(specs, jobs=1, **kw)
    stats = ReadStats()
    many = read_logs(specs, jobs=2, chunk_bytes=chunk_bytes, min_parallel_bytes=0,
                     stats=stats, **kw)
    return one, many, stats


@pytest.mark.parametrize("chunk_bytes", [700, 3000])
def test_every_shop_log_reads_the_same_in_chunks(shop_logs, chunk_bytes):
    chunked = 0
    for cap in shop_logs.values():
        for fmt in ("stderr", "jsonlog"):
            one, many, stats = both_ways([cap.paths[fmt]], chunk_bytes, keep_requests=True)
            assert many == one, (cap.scenario, fmt)
            chunked += stats.chunks > 1
    assert chunked >= 10


def test_one_stream_of_every_scenario(shop_logs, tmp_path):
    """All the scenarios' logs in one file, and the same split in two rotated files:
    sessions of every kind cross chunk edges (and a file edge)."""
    whole = tmp_path / "all.log"
    with open(whole, "wb") as out:
        for cap in shop_logs.values():
            out.write(cap.paths["stderr"].read_bytes())
    for chunk_bytes in (500, 1200, 5000):
        one, many, stats = both_ways([LogSpec(whole, line_prefix=DEBIAN_PREFIX)], chunk_bytes,
                                     keep_requests=True)
        assert many == one
        assert stats.chunks > 5
        assert one.loops and one.redundant  # the detectors found something to compare
    lines = whole.read_text().splitlines(keepends=True)
    cut = next(i for i in range(len(lines) // 2, len(lines)) if not lines[i].startswith("\t"))
    a, b = tmp_path / "pg.log.1", tmp_path / "pg.log"
    a.write_text("".join(lines[:cut]))
    b.write_text("".join(lines[cut:]))
    one, many, _ = both_ways([a, b], 900)
    assert many == one
    assert replace(one, sources=[]) == replace(read_logs([whole], jobs=1), sources=[])


def test_other_prefixes_and_statement_then_duration(pgbadger_logs, statement_all_logs,
                                                    no_duration_logs):
    for caps in (pgbadger_logs, statement_all_logs, no_duration_logs):
        for cap in caps.values():
            one, many, stats = both_ways([cap.path], 600, keep_requests=True)
            assert many == one, cap.scenario
            assert stats.chunks > 1


def test_chunks_start_at_records(shop_logs):
    path = shop_logs["mn_plus_one"].paths["stderr"]
    data = path.read_bytes()
    bounds = chunk_bounds(str(path), len(data), "stderr", DEBIAN_PREFIX, 400)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    for start, _end in bounds[1:]:
        assert data[start - 1:start] == b"\n" and data[start:start + 1] != b"\t"


@needs_corpus(CORPUS)
@pytest.mark.parametrize("name", ["light.postgres.log.bz2", "rds.log.bz2"])
def test_corpus_logs_read_the_same_in_chunks(tmp_path, name):
    plain = tmp_path / name.removesuffix(".bz2")
    with bz2.open(CORPUS / name) as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    size = plain.stat().st_size
    one, many, stats = both_ways([plain], max(size // 40, 4096))
    assert many == one
    assert stats.chunks >= 20
    assert one.statements == read_logs([CORPUS / name]).statements


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_reports_bytes_and_statements(shop_logs, tmp_path, jobs):
    whole = tmp_path / "all.log"
    with open(whole, "wb") as out:
        for _ in range(3):
            for cap in shop_logs.values():
                out.write(cap.paths["stderr"].read_bytes())
    calls = []
    profile = read_logs([whole], jobs=jobs, chunk_bytes=4000, min_parallel_bytes=0,
                        progress=lambda done, total, n: calls.append((done, total, n)))
    size = whole.stat().st_size
    assert calls[-1] == (size, size, profile.statements)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)  # bytes only grow
    assert len(calls) > 2 if jobs > 1 else len(calls) >= 1


def test_requests_are_not_kept_unless_asked(shop_logs):
    path = shop_logs["n_plus_one"].path
    lean = read_logs([path])
    assert lean.requests == [] and lean.request_count == len(shop_logs["n_plus_one"].trace.requests)
    assert lean.loops  # the detectors ran while reading
    assert len(read_logs([path], keep_requests=True).requests) == lean.request_count


def test_plain_and_compressed_reading_agree_on_damaged_text(shop_logs, tmp_path):
    """Plain files are read by the chunk reader, compressed ones by the input layer:
    both decode the same way. Deliberately damaged copies of a real log (bytes that are
    not UTF-8, CRLF line ends, a lone CR): the only hand-made content here."""
    import gzip
    good = shop_logs["mn_plus_one"].paths["stderr"].read_bytes()
    lines = good.split(b"\n")
    lines[3] = lines[3].replace(b"SELECT", b"SEL\xff\xfeECT", 1)
    variants = {"latin": b"\n".join(lines), "crlf": good.replace(b"\n", b"\r\n"),
                "cr": good.replace(b"\n", b"\r", 5)}
    for name, data in variants.items():
        plain, packed = tmp_path / f"{name}.log", tmp_path / f"{name}.log.gz"
        plain.write_bytes(data)
        packed.write_bytes(gzip.compress(data))
        one = read_logs([LogSpec(plain, line_prefix=DEBIAN_PREFIX)], keep_requests=True)
        other = read_logs([LogSpec(packed, line_prefix=DEBIAN_PREFIX)], keep_requests=True)
        assert replace(one, sources=[]) == replace(other, sources=[]), name
        _, many, _ = both_ways([LogSpec(plain, line_prefix=DEBIAN_PREFIX)], 300,
                               keep_requests=True)
        assert many == one, name
    assert sum(read_logs([tmp_path / "latin.log"]).skipped.values()) >= 1
