"""Secrets in query examples never reach an output (DESIGN.md: "Secrets ... never reach
any output").

A real workload (fixtures/workloads/accounts.py) writes plain secrets into a real
PostgreSQL's log in every way an application does: inline literals in an INSERT, bind
parameters of an UPDATE SET and of a WHERE lookup, a write N+1 of API tokens, a lookup
repeated with the same token, a statement the normaliser leaves whole. The audit of that
log (and of the live database) must show the examples with the e-mail addresses and ids
that make them useful, and none of the secrets: not on the terminal, not in the JSON, not
in the HTML, not in ``auditor logs``. The checks themselves still see the real values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need

from auditor import audit, config as config_mod
from auditor.reporters import json as json_reporter
from fixtures.workloads import accounts
from fixtures.workloads.accounts import (API_TOKENS, NEW_PASSWORD, PENDING_RESET_TOKEN,
                                         RESET_TOKEN, SECRETS, SIGNUPS)

# wide enough that rich never wraps a line (a wrapped secret would hide from `in`)
ENV = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "COLUMNS": "400"}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "auditor", *args], capture_output=True,
                          text=True, cwd=cwd, env=ENV, timeout=120)


@pytest.fixture(scope="module")
def acc(tmp_path_factory):
    """The accounts workload's log, its database still up, and an auditor.yaml that
    reads both and has PG203 report every shape (so every example is shown)."""
    work = tmp_path_factory.mktemp("secrets")
    run = accounts.AccountsLog(work)
    try:
        run.__enter__()
    except (RuntimeError, OSError) as exc:
        need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)
    try:
        (work / "auditor.yaml").write_text(
            f"postgres:\n  dsn: {run.dsn}\nlogs: [accounts.log]\n"
            "rules:\n  PG203: {params: {min_calls: 1, min_mean_ms: 0, max_findings: 50}}\n")
        yield run
    finally:
        run.__exit__(None, None, None)


@pytest.fixture(scope="module")
def audited(acc):
    """One audit through the CLI: (terminal output, JSON document, HTML text)."""
    work = acc.workdir
    res = cli("audit", "--config", str(work / "auditor.yaml"), "--json", str(work / "a.json"),
              "--html", str(work / "a.html"), cwd=work)
    assert res.returncode in (0, 1), res.stderr
    return (res.stdout + res.stderr, json.loads((work / "a.json").read_text()),
            (work / "a.html").read_text())


def _findings(doc: dict, rule_id: str) -> list[dict]:
    (item,) = [i for i in doc["items"] if i["rule"]["id"] == rule_id]
    return item["findings"]


def _example(doc: dict, normalized: str) -> dict:
    (f,) = [f for f in _findings(doc, "PG203") if f["evidence"]["normalized"] == normalized]
    return f["evidence"]["example"]


def test_the_log_really_holds_the_secrets(acc):
    """Guard for the tests below: every secret is in the log they audit."""
    log = acc.log.read_text()
    for secret in SECRETS:
        assert secret in log


def test_no_secret_in_terminal_json_or_html(audited):
    terminal, doc, html = audited
    text = json.dumps(doc)
    for secret in SECRETS:
        assert secret not in terminal, secret
        assert secret not in text, secret
        assert secret not in html, secret


def test_examples_keep_their_non_secret_values(audited):
    _, doc, html = audited
    # an INSERT with its literals inline: the e-mail stays, the password goes
    ins = _example(doc, "INSERT INTO users (email, password) VALUES ($1, $2)")
    emails = [e for e, _ in SIGNUPS]
    assert ins["query"] in [f"INSERT INTO users (email, password) VALUES ('{e}', '***')"
                            for e in emails]
    # an UPDATE SET with bind parameters: $1 (the password) masked, $2 (the e-mail) kept
    upd = _example(doc, "UPDATE users SET password = $1 WHERE email = $2")
    assert upd == {**upd, "query": "UPDATE users SET password = $1 WHERE email = $2",
                   "params": ["***", SIGNUPS[0][0]]}
    # a WHERE lookup with its token bound
    look = _example(doc, "SELECT id, email FROM users WHERE reset_token = $1")
    assert look["params"] == ["***"] or look["query"].endswith("reset_token = '***'")
    # the write N+1 keeps its account ids, loses its tokens
    (loop,) = _findings(doc, "PG201")
    stmts = loop["evidence"]["example"]["statements"]
    assert [s["params"] for s in stmts] == [["***", str(i)] for i in range(1, len(stmts) + 1)]
    assert stmts[0]["query"] == "UPDATE accounts SET api_token = $1 WHERE id = $2"
    # the HTML shows the same masked example, the e-mail readable
    assert SIGNUPS[0][0] in html and "***" in html


def test_repeated_values_quoted_in_a_message_are_masked(audited):
    terminal, doc, _ = audited
    (red,) = _findings(doc, "PG202")
    assert red["evidence"]["normalized"] == "SELECT id, email FROM users WHERE reset_token = $1"
    assert "with the same values ($1 = '***')" in red["message"]
    assert red["evidence"]["example"]["params"] == ["***"]
    assert "`SELECT id, email FROM users WHERE reset_token = $1` ran 6 times with the same " \
           "values ($1 = '***')" in terminal


def test_a_statement_the_normaliser_leaves_whole_is_masked_in_its_normalized_text(audited):
    _, doc, _ = audited
    (f,) = [f for f in _findings(doc, "PG203")
            if f["evidence"]["normalized"].startswith("CREATE TEMP TABLE pending_resets")]
    assert f["evidence"]["normalized"] == ("CREATE TEMP TABLE pending_resets AS SELECT id FROM "
                                           "users WHERE reset_token IN ('***')")
    # the message quotes it cut short (90 characters): the cut literal is masked too
    assert PENDING_RESET_TOKEN[:6] not in f["message"]


def test_missing_index_still_reads_the_real_statements(audited):
    """Masking is for output only: PG101 analysed the log's statements (the token lookup
    on 2,000 users) and asks for the index on reset_token."""
    _, doc, _ = audited
    fixes = [f["fix"] for f in _findings(doc, "PG101")]
    assert any(f.endswith("public.users (reset_token);") for f in fixes), fixes


def test_checks_see_the_real_values_only_output_is_masked(acc):
    cat = audit.load_catalogue()
    cfg = config_mod.load(acc.workdir / "auditor.yaml", known_rules=set(cat.rules))
    report = audit.run(cfg, catalogue=cat)
    pg203 = next(i for i in report.items if i.rule.id == "PG203")
    raw = {f.evidence["normalized"]: f.evidence["example"] for f in pg203.findings}
    assert raw["UPDATE users SET password = $1 WHERE email = $2"]["params"] == \
        [NEW_PASSWORD, SIGNUPS[0][0]]
    out = json.dumps(json_reporter.to_dict(report))
    assert NEW_PASSWORD not in out and RESET_TOKEN not in out
    assert not any(t in out for t in API_TOKENS)


def test_auditor_logs_masks_secrets(acc):
    res = cli("logs", str(acc.log), "--json", "--top", "50", cwd=acc.workdir)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    normalized = [r["normalized"] for r in summary["top_by_calls"]]
    assert ("CREATE TEMP TABLE pending_resets AS SELECT id FROM users WHERE reset_token "
            "IN ('***')") in normalized
    assert "INSERT INTO users (email, password) VALUES ($1, $2)" in normalized
    text = cli("logs", str(acc.log), "--top", "50", cwd=acc.workdir)
    for secret in SECRETS:
        assert secret not in res.stdout + res.stderr, secret
        assert secret not in text.stdout + text.stderr, secret
