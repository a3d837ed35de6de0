"""A log line (or record) longer than 4 MiB is skipped without ever being held whole:
counted under TOO_LONG, the records around it read as if it were not there, and the
reader's memory grows by a few MB, not by the line (before: a 32 MB statement line
took 130-170 MB more RSS, whatever the format).

The big lines are made from real log lines of the shop workload (a real statement
line, its statement padded to 32 MB): deliberately malformed input, built here.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.collectors.querylog.inputs import LONG_LINE, TOO_LONG, decoded_lines
from fixtures.make_logs import DEBIAN_PREFIX

pytest_plugins = ["logfixtures"]

PAD = " -- " + "0123456789" * ((32 << 20) // 10)  # 32 MB


# -- the line layer, against reading the whole text at once --------------------------------
def _whole(data: bytes, max_chars: int) -> tuple[list[str], int]:
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    last = lines.pop()
    out, cut = [], 0
    for ln in lines + ([last] if last else []):
        if len(ln) > max_chars:
            cut += 1
            ln = LONG_LINE + ("\t" if ln[:1] == "\t" else "")
        out.append(ln)
    return out, cut


def test_lines_are_cut_wherever_the_blocks_end():
    """Random text (tabs, CR, CRLF, multibyte and undecodable bytes) in random blocks, a
    tiny limit: the same lines as decoding the whole text, long ones replaced."""
    rnd = random.Random(7)
    alphabet = ["a", "b", "\t", "\n", "\r", "\r\n", "é", "€", "😀", "\xff"]
    for _ in range(5000):
        limit = rnd.randint(1, 12)
        data = b"".join(b"\xff" if c == "\xff" else c.encode()
                        for c in (rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))))
        cuts = sorted(rnd.sample(range(len(data) + 1), min(len(data) + 1, rnd.randint(0, 8))))
        blocks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)]) if data[a:b]]
        expected, cut = _whole(data, limit)
        skipped: dict[str, int] = {}
        got = list(decoded_lines(iter(blocks), skipped, newline=False, errors="replace",
                                 max_chars=limit))
        assert got == expected, (data, blocks, limit)
        assert skipped.get(TOO_LONG, 0) == cut


# -- real logs with a 32 MB line -------------------------------------------------------------
_MEASURE = r"""
import json, resource, sys
from dataclasses import replace
from auditor.collectors.querylog import LogSpec, read_logs
from auditor.collectors.querylog.parallel import ReadStats
if __name__ == "__main__":
    orig, big, prefix, jobs = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
    kw = dict(jobs=jobs, chunk_bytes=1 << 20, min_parallel_bytes=0) if jobs > 1 else {"jobs": 1}
    sa, sb = ReadStats(), ReadStats()
    a = read_logs([LogSpec(orig, line_prefix=prefix)], stats=sa, **kw)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    b = read_logs([LogSpec(big, line_prefix=prefix)], stats=sb, **kw)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "growth_kb": after - before,
        "worker_growth_kb": (max(sb.worker_peak_rss_kb) - max(sa.worker_peak_rss_kb)
                             if sb.worker_peak_rss_kb else 0),
        "skipped": b.skipped, "statements": [a.statements, b.statements],
        "same": replace(a, sources=[], skipped={}) == replace(b, sources=[], skipped={})}))
"""


def _insert(lines: list[str], after: int, line: str) -> str:
    return "".join(lines[:after + 1]) + line + "".join(lines[after + 1:])


def _big_files(cap, tmp_path: Path, variant: str) -> tuple[Path, Path]:
    """(the real log, the same with a 32 MB line inserted after a statement line)."""
    if variant.startswith("jsonlog"):
        lines = cap.paths["jsonlog"].read_text().splitlines(keepends=True)
        i = next(k for k, ln in enumerate(lines) if "statement: " in json.loads(ln)["message"])
        obj = json.loads(lines[i])
        obj["message"] += PAD
        big = tmp_path / "big.json"
        big.write_text(_insert(lines, i, json.dumps(obj) + "\n"))
        return cap.paths["jsonlog"], big
    if variant == "csvlog":
        rows = list(csv.reader(io.StringIO(cap.paths["csvlog"].read_text())))
        k = next(n for n, r in enumerate(rows) if "statement: " in r[13])
        orig, big = io.StringIO(), io.StringIO()
        w_orig, w_big = csv.writer(orig, lineterminator="\n"), csv.writer(big, lineterminator="\n")
        for n, row in enumerate(rows):
            w_orig.writerow(row)
            w_big.writerow(row)
            if n == k:
                w_big.writerow(row[:13] + [row[13] + PAD] + row[14:])
        (tmp_path / "orig.csv").write_text(orig.getvalue())
        (tmp_path / "big.csv").write_text(big.getvalue())
        return tmp_path / "orig.csv", tmp_path / "big.csv"
    lines = cap.paths["stderr"].read_text().splitlines(keepends=True)
    i = next(k for k, ln in enumerate(lines) if " statement: " in ln)
    if variant.startswith("stderr-continuation"):
        # a 32 MB continuation line inside a real statement record: that record goes
        text = _insert(lines, i, "\t" + PAD.strip() + "\n")
    else:
        text = _insert(lines, i, lines[i].rstrip("\n") + PAD + "\n")
    orig, big = cap.paths["stderr"], tmp_path / "big.log"
    big.write_text(text)
    if variant.endswith("-gz"):
        (tmp_path / "orig.log.gz").write_bytes(gzip.compress(orig.read_bytes(), 1))
        (tmp_path / "big.log.gz").write_bytes(gzip.compress(big.read_bytes(), 1))
        return tmp_path / "orig.log.gz", tmp_path / "big.log.gz"
    return orig, big


@pytest.mark.parametrize("variant", [
    "jsonlog", "jsonlog-parallel", "csvlog", "stderr-gz", "stderr-continuation-gz",
    "stderr", "stderr-continuation"])
def test_a_32_mb_line_is_skipped_in_bounded_memory(shop_logs, tmp_path, variant):
    orig, big = _big_files(shop_logs["n_plus_one"], tmp_path, variant)
    assert big.stat().st_size > 32 << 20 or big.suffix == ".gz"
    jobs = 2 if variant.endswith("parallel") else 1
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(orig), str(big),
                          DEBIAN_PREFIX if "stderr" in variant else "", str(jobs)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    print(variant, got)
    assert got["skipped"] == {TOO_LONG: 1}
    if "continuation" in variant:
        assert got["statements"][1] == got["statements"][0] - 1  # its record only
    else:
        assert got["same"]  # everything else read as if the line were not there
    assert got["growth_kb"] < 16 << 10  # half the line; it was 130-170 MB
    assert got["worker_growth_kb"] < 16 << 10
