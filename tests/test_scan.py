"""The compiled log scanner (auditor/_speedups.c) gives exactly what the Python reader
gives: the same prefix matches and fields, the same records, the same workload
profile, the same fingerprint cache keys.

What a user checks: ``auditor logs`` and ``auditor audit`` report the same numbers
whether or not the extension was built (``AUDITOR_PURE_PYTHON=1`` turns it off).
Profiles are compared on real logs (the shop workloads in five prefixes, pgbadger's
public corpus) read both ways. The prefix matcher is also compared with the regular
expression line by line on mutated copies of real lines and on lines rendered for
random prefixes: deliberately odd input, the only constructed text here.
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI, needs_corpus

from auditor.collectors.querylog import LogSpec, read_logs
from auditor.collectors.querylog import parallel, scan
from auditor.collectors.querylog.prefix import KNOWN_PREFIXES, _ESCAPES, get_prefix
from fixtures.make_logs import DEBIAN_PREFIX, ShopLogs

pytest_plugins = ["logfixtures"]

fpmod = importlib.import_module("auditor.fingerprint")  # (auditor.fingerprint is also a function)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pgbadger"
PADDED = "%-26m %10p %-12c|%e|%x|%l %q%-10u@%-8d %a %r "
STDERR_CORPUS = ("rds.log.bz2", "light.postgres.log.bz2", "pg-timezones.log", "queryid.log",
                 "multiline_param.log", "begin_end.log", "stmt_type.log",
                 "postgresql_param_range.log")


def test_the_extension_is_built():
    """CI installs the package the README's way, which compiles the scanner; a build
    that silently fell back to pure Python would make the speed figures wrong."""
    if not scan.available():
        if IN_CI:
            pytest.fail("auditor._speedups was not built (see hatch_build.py's warning)")
        pytest.skip("auditor._speedups is not built here")
    from auditor import _speedups
    assert fpmod._literal_key is _speedups.literal_key


needs_ext = pytest.mark.skipif(not scan.available() and not IN_CI,
                               reason="auditor._speedups is not built")


def _pure(monkeypatch) -> None:
    monkeypatch.setenv("AUDITOR_PURE_PYTHON", "1")
    monkeypatch.setattr(fpmod, "_literal_key", fpmod.literal_key)


def both(monkeypatch, specs, **kw):
    compiled = read_logs(specs, jobs=1, keep_requests=True, **kw)
    with monkeypatch.context() as m:
        _pure(m)
        assert not scan.available()
        pure = read_logs(specs, jobs=1, keep_requests=True, **kw)
    return compiled, pure


# -- whole profiles ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def padded_log(tmp_path_factory):
    """A real shop log with padded escapes, %q, %c, %e, %x, %l and %r."""
    from conftest import need
    logs = ShopLogs(line_prefix=PADDED)
    try:
        logs.__enter__()
    except (RuntimeError, OSError) as exc:
        need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)
    try:
        return logs.capture("mn_plus_one", tmp_path_factory.mktemp("padded") / "p.log")
    finally:
        logs.__exit__(None, None, None)


@needs_ext
def test_profiles_agree_on_every_real_log(monkeypatch, shop_logs, pgbadger_logs,
                                          statement_all_logs, no_duration_logs, padded_log):
    paths = [cap.paths["stderr"] for cap in shop_logs.values()]
    for caps in (pgbadger_logs, statement_all_logs, no_duration_logs):
        paths += [cap.path for cap in caps.values()]
    paths.append(padded_log.path)
    for path in paths:
        compiled, pure = both(monkeypatch, [path])
        assert compiled == pure, path
        assert compiled.statements > 0
    compiled, _ = both(monkeypatch, [LogSpec(padded_log.path, line_prefix=PADDED)])
    assert compiled.skipped == {}
    assert [[(st.query, st.params) for st in r.statements] for r in compiled.requests] == \
        [[(e.sql, e.params) for e in r] for r in padded_log.trace.requests]


@needs_ext
@pytest.mark.parametrize("block", [1, 7, 64, 4096])
def test_records_that_cross_block_edges(monkeypatch, shop_logs, block):
    """The scanner keeps a record open across blocks (its continuation lines, its
    parameters) exactly as the line reader does."""
    monkeypatch.setattr(parallel, "_BLOCK", block)
    path = shop_logs["n_plus_one"].paths["stderr"]
    compiled, pure = both(monkeypatch, [path])
    assert compiled == pure
    assert compiled.statements > 0


@needs_ext
def test_damaged_lines_are_counted_the_same(monkeypatch, shop_logs, tmp_path):
    """Lines without the prefix, tabs with no record, bad bytes, CR line ends: the same
    skips, under the same reasons (a damaged copy of a real log)."""
    data = shop_logs["mn_plus_one"].paths["stderr"].read_bytes()
    lines = data.split(b"\n")
    lines.insert(0, b"\tan orphan continuation")  # no record open yet
    lines.insert(9, b"garbage without any prefix")
    at = next(i for i, ln in enumerate(lines) if b"SELECT" in ln)
    lines[at] = lines[at].replace(b"SELECT", b"SEL\xff\xfeECT", 1)
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"\r\n".join(lines))
    compiled, pure = both(monkeypatch, [LogSpec(bad, line_prefix=DEBIAN_PREFIX)])
    assert compiled == pure
    assert len(compiled.skipped) == 3, compiled.skipped


@needs_ext
@needs_corpus(CORPUS)
@pytest.mark.parametrize("name", STDERR_CORPUS)
def test_profiles_agree_on_the_corpus(monkeypatch, tmp_path, name):
    plain = tmp_path / name.removesuffix(".bz2")
    opener = bz2.open if name.endswith(".bz2") else open
    with opener(CORPUS / name, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    compiled, pure = both(monkeypatch, [plain])
    assert compiled == pure
    assert compiled.statements > 0 or compiled.connections.connections > 0  # begin_end.log


@needs_ext
def test_auditor_logs_prints_the_same_either_way(shop_logs):
    """The command a user runs, in a fresh process each way."""
    path = str(shop_logs["n_plus_one"].paths["stderr"])
    outs = []
    for pure in ("0", "1"):
        env = {**os.environ, "AUDITOR_PURE_PYTHON": pure}
        r = subprocess.run([sys.executable, "-m", "auditor", "logs", path, "--json"],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1]
    assert outs[0]["statements"] > 0


# -- the prefix matcher, line by line ----------------------------------------------------
def _regex_groups(prefix, line):
    m = prefix.regex.match(line)
    if m is None:
        return None
    gi = prefix.regex.groupindex
    return tuple(m.group(n) if n in gi else None for n in scan.SLOTS) + (
        m.group("level"), m.group("msg"))


def _scanner(text):
    sc = scan.scanner_for(get_prefix(text), {}, ("a", "b", "c", "d"))
    assert sc is not None, text
    return sc


_ODD = " :@[]()-.,=|0123456789abcdefLOGERROR\t%é٣\u2028"


def _mutate(rnd: random.Random, line: str) -> str:
    out = list(line)
    for _ in range(rnd.randint(1, 4)):
        if not out:
            break
        i = rnd.randrange(len(out))
        r = rnd.random()
        if r < 0.4:
            out[i] = rnd.choice(_ODD)
        elif r < 0.7:
            out.insert(i, rnd.choice(_ODD))
        else:
            del out[i]
    return "".join(out)


def _real_lines(shop_logs) -> list[str]:
    lines = []
    for cap in shop_logs.values():
        lines += cap.paths["stderr"].read_text().splitlines()
    with gzip.open(Path(__file__).resolve().parents[1] / "fixtures" / "demo"
                   / "postgresql.log.gz", "rt") as f:
        lines += f.read().splitlines()
    return lines


@needs_ext
def test_matcher_agrees_with_the_regex_on_real_and_mutated_lines(shop_logs):
    rnd = random.Random(7)
    lines = _real_lines(shop_logs)
    sample = rnd.sample(lines, min(1500, len(lines)))
    mutated = [_mutate(rnd, ln) for ln in sample for _ in range(2)]
    compared = matched = 0
    for text in (*KNOWN_PREFIXES, PADDED):
        prefix, sc = get_prefix(text), _scanner(text)
        for line in (lines if text == DEBIAN_PREFIX else sample) + mutated:
            want = _regex_groups(prefix, line)
            assert sc.match(line) == want, (text, line)
            compared += 1
            matched += want is not None
    assert compared > 50_000 and matched > 10_000


def _render(rnd: random.Random, esc: str) -> str:
    """A value PostgreSQL could print for an escape, sometimes an awkward one."""
    choices = {
        "a": ["psql", "", "my app: v2", "a@b [x]"], "u": ["postgres", "", "u@x", "[unknown]"],
        "d": ["shop", "", "db name"], "h": ["127.0.0.1", "[local]", "::1", ""],
        "r": ["127.0.0.1(5432)", "[local]", "10.0.0.1()", "host"], "b": ["client backend"],
        "p": ["12345", "7"], "P": ["", "999"], "t": ["2024-01-02 03:04:05 UTC"],
        "m": ["2024-01-02 03:04:05.678 UTC", "2024-01-02 03:04:05.6 +0530"],
        "n": ["1704164645.678", "1704164645"], "i": ["SELECT", "", "idle in transaction"],
        "e": ["00000", "23505"], "c": ["65a1b2c3.3039", "1.f"], "l": ["1", "42"],
        "s": ["2024-01-02 03:04:05 UTC"], "v": ["3/12", "", "-1/0"], "x": ["0", "", "712"],
        "Q": ["0", "-4279129912361474381"],
    }
    return rnd.choice(choices[esc])


@needs_ext
def test_matcher_agrees_with_the_regex_on_random_prefixes():
    rnd = random.Random(11)
    escapes = sorted(_ESCAPES)
    seps = [" ", ":", "@", "|", " [", "] ", ",", "=", "user=", ": ", "%%"]
    levels = ["LOG", "ERROR", "DETAIL", "STATEMENT", "DEBUG1", "LOGX", "LOG"]
    compared = matched = 0
    for _ in range(400):
        parts, values = [], []
        for _k in range(rnd.randint(1, 6)):
            esc = rnd.choice(escapes)
            pad = rnd.choice(["", "", "-10", "8"])
            parts.append(f"%{pad}{esc}")
            v = _render(rnd, esc)
            if pad:
                width = int(pad.lstrip("-"))
                v = v.ljust(width) if pad[0] == "-" else v.rjust(width)
            values.append(v)
            sep = rnd.choice(seps)
            parts.append(sep)
            values.append(sep.replace("%%", "%"))
        if rnd.random() < 0.4:
            at = rnd.randrange(len(parts) + 1)
            parts.insert(at, "%q")
            if rnd.random() < 0.5:  # a line of a process without a session
                values = values[:at]
            else:
                values.insert(at, "")
        text = "".join(parts)
        prefix, sc = get_prefix(text), _scanner(text)
        for _n in range(20):
            line = "".join(values) + rnd.choice(levels) + rnd.choice([":  ", ": ", ":", ":\t"]) \
                + rnd.choice(["duration: 0.123 ms  statement: SELECT 1", "", "x: y LOG:  z"])
            for candidate in (line, _mutate(rnd, line)):
                want = _regex_groups(prefix, candidate)
                assert sc.match(candidate) == want, (text, candidate)
                compared += 1
                matched += want is not None
    assert compared >= 16_000 and matched > 2_000


def test_every_escape_has_an_atom():
    """prefix._ESCAPES and the C matcher's atoms stay in step: an escape whose pattern
    changes without the matcher knowing makes scanner_for fall back to the regex
    (never a different result), and this test says so."""
    assert {pat for _name, pat in _ESCAPES.values()} <= set(scan._ATOMS)


# -- literal_key ---------------------------------------------------------------------------
@needs_ext
def test_literal_key_agrees_with_python(shop_logs):
    from auditor import _speedups
    rnd = random.Random(5)
    texts = []
    for cap in shop_logs.values():
        for r in read_logs([cap.paths["stderr"]], keep_requests=True).requests:
            texts += [s.query for s in r.statements]
    cases = json.loads((CORPUS.parent / "fingerprint"
                        / "libpg_query-fingerprint-cases.json").read_text()) \
        if (CORPUS.parent / "fingerprint").exists() else []
    stack = [cases]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            texts.append(o)
        elif isinstance(o, dict):
            stack += list(o.values())
        elif isinstance(o, list):
            stack += o
    odd = "'\"-/*;$\\\x00\x01 0123456789selectWHEREé\ud800()"
    more = []
    for t in texts:
        for _ in range(3):
            chars = list(t)
            for _k in range(rnd.randint(1, 4)):
                chars.insert(rnd.randrange(len(chars) + 1), rnd.choice(odd))
            more.append("".join(chars))
    more += ["".join(rnd.choice(odd) for _ in range(rnd.randint(0, 14))) for _ in range(20_000)]
    for t in texts + more:
        assert _speedups.literal_key(t) == fpmod.literal_key(t), t
    assert len(texts) > 500
