"""The log reader's fingerprint cache (auditor.fingerprint.shape) groups statements
exactly as libpg_query does: its literal-stripped key is only trusted where stripping
cannot change the parse, and a text is only ever answered from the cache with the
fingerprint libpg_query gives that very text."""

from __future__ import annotations

import importlib
import json
import random
import re
from pathlib import Path

from conftest import needs_corpus

fp_module = importlib.import_module("auditor.fingerprint")
from auditor.fingerprint import fingerprint, literal_key, shape  # noqa: E402

CASES = (Path(__file__).resolve().parents[2] / "shared" / "corpus" / "fingerprint"
         / "libpg_query-fingerprint-cases.json")

# Texts where stripping literals would go wrong if the key were trusted blindly.
TRICKY = [
    "UPDATE pgbench_accounts SET abalance = abalance + -885 WHERE aid = 58665;",
    "select cast(a as float(10)) from t", "select cast(a as float(30)) from t",  # float4/8
    'select "t1".a from "t1" where x = 1', 'select "t2".a from "t2" where x = 1',
    "select * from t1 where a = 1", "select * from t2 where a = 1",  # digits in names
    "select 1abc", "select 2abc", "select 1e5", "select 0x1F", "select 1_000",
    "select 'a' 'b'", "select 'a'\n'b'",  # adjacent strings: a syntax error on one line
    "select 1 /* x='1' */", "select 2 /* traceparent='00-abc-def-01' */;",
    "SELECT id FROM t WHERE name = 'it''s' AND n = 5", "select E'a\\'' from t",
    "select * from t where a = 'unterminated", "select * from t where a = 'x'",
    "insert into t values (1,'a'),(2,'b')", "select x::varchar(10) from t",
    "select x::numeric(10,2) from t", "select x::timestamp(3) from t",
    "select interval '1' second(3)", "select * from t where a in (1,2,3)",
    "select \"a b\" from t", "select \"a'b\" from t where c = 'x'",
    "SELECT 1 FROM t WHERE a = 'x\"y' AND \"z\" = 1", "fetch 5 from c", "fetch 10 from c",
    "select $1, 'x' from t", "select $$a'b$$ from t", "select 1 -- it's\n, 'x'",
    "select U&'d!0061t' UESCAPE '!'", "select U&'d!0061t' UESCAPE '#'",
    "SELECT \"app_user\".\"id\" FROM \"app_user\" WHERE \"app_user\".\"email\" = 'bob@x.org' "
    "LIMIT 21",
]


def _mutations(text: str, rnd: random.Random, n: int = 6) -> list[str]:
    out = []
    for _ in range(n):
        t = re.sub(r"(?<![\w$])\d+", lambda m: str(rnd.randint(0, 10 ** rnd.randint(1, 6))), text)
        t = re.sub(r"'([^'\\]*)'", lambda m: "'" + "x" * rnd.randint(0, 6) + "'", t)
        out.append(t)
    return out


def _check(texts: list[str]) -> None:
    fp_module._BY_TEXT.clear()
    fp_module._BY_KEY.clear()
    rnd = random.Random(7)
    every = []
    for t in texts:
        every.append(t)
        every.extend(_mutations(t, rnd))
    for t in every:  # the first text of a key fills the cache, the others read it
        assert shape(t) == fingerprint(t), t
    by_key: dict[bytes, set[str]] = {}
    for t in every:
        k = literal_key(t)
        if k is not None and fp_module._BY_KEY.get(k):  # keys the cache trusts
            by_key.setdefault(k, set()).add(fingerprint(t))
    assert by_key and all(len(fps) == 1 for fps in by_key.values())


def test_tricky_texts_get_libpg_query_fingerprints():
    _check(TRICKY)


@needs_corpus(CASES)
def test_libpg_query_cases_and_variants_get_the_same_fingerprints():
    cases = [c["input"] for c in json.loads(CASES.read_text())]
    _check(cases)


def test_literals_and_trailing_comments_share_a_key():
    a = literal_key("SELECT * FROM t WHERE id = 12 AND s = 'x' /*traceparent='00-1-2-01'*/")
    b = literal_key("SELECT * FROM t WHERE id = 34 AND s = 'yy' /*traceparent='00-3-4-01'*/")
    assert a == b is not None
    assert literal_key("SELECT * FROM t WHERE id = $1") is None  # cached by its text instead


def test_caches_are_bounded(monkeypatch):
    monkeypatch.setattr(fp_module, "_SHAPE_CACHE", 100)
    fp_module._BY_TEXT.clear()
    fp_module._BY_KEY.clear()
    for i in range(1000):
        shape(f"SELECT c{i} FROM t WHERE id = {i}")  # c{i}: an unusable key, cached by text
        shape(f"SELECT * FROM t{'x' * (i % 300)} WHERE id = 1")
    assert len(fp_module._BY_TEXT) <= 100 and len(fp_module._BY_KEY) <= 100
