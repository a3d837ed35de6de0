"""``auditor logs``: the workload summary of real logs, as a user reads it (text) and as
a script reads it (--json); standard input; errors with exit code 2."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import typer
from conftest import needs_corpus
from typer.testing import CliRunner

from auditor.fingerprint import fingerprint
from auditor.logs_command import register
from fixtures.workloads.shop import CUSTOMER_BY_ID, PAGE, REQUESTS, as_logged

pytest_plugins = ["logfixtures"]

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pgbadger"


@pytest.fixture(scope="module")
def cli():
    """The command on an app of its own (auditor/cli.py wires the same register())."""
    app = typer.Typer(add_completion=False)

    @app.callback()
    def _main() -> None:
        pass

    register(app)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(app, ["logs", *map(str, args)], **kw)


def test_json_summary_of_a_real_log(cli, shop_logs):
    cap = shop_logs["n_plus_one"]
    res = cli(cap.path, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["statements"] == len(cap.trace.statements)
    assert s["sessions"] == cap.trace.connections == s["connections"]["connections"]
    # BEGIN, the page query, the lookup in the loop, COMMIT
    assert s["fingerprints"] == 4
    top = s["top_by_calls"][0]
    assert top["fingerprint"] == fingerprint(as_logged(CUSTOMER_BY_ID))
    assert top["normalized"] == "SELECT id, name, email FROM customers WHERE id = $1"
    assert top["calls"] == PAGE * REQUESTS
    assert top["mean_ms"] == pytest.approx(top["total_ms"] / top["calls"], abs=1e-3)
    assert s["total_ms"] == pytest.approx(sum(r["total_ms"] for r in s["top_by_total_time"]))
    assert s["mean_ms"] == pytest.approx(s["total_ms"] / s["statements"], abs=1e-3)
    assert [r["total_ms"] for r in s["top_by_total_time"]] == \
        sorted((r["total_ms"] for r in s["top_by_total_time"]), reverse=True)
    if top["p95_ms"] is not None:  # when the profile keeps a duration histogram
        assert 0 < top["p95_ms"] <= top["max_ms"] * 1.07
    assert s["skipped"] == {} and s["skipped_lines"] == 0
    assert s["files"][0]["format"] == "stderr"
    assert s["files"][0]["line_prefix"] == "%m [%p] %q%u@%d "
    assert s["first_ts"] < s["last_ts"]


def test_text_summary_of_a_real_log(cli, shop_logs):
    cap = shop_logs["mn_plus_one"]
    res = cli(cap.path, "--top", "2")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "statements" in out and f"{len(cap.trace.statements):,}" in out
    for label in ("total duration", "mean duration", "distinct fingerprints", "sessions",
                  "connections", "Top fingerprints by total time", "Top fingerprints by calls"):
        assert label in out
    assert "SELECT id, name, email FROM customers WHERE id = $1" in out
    assert "lines skipped: none" in out


def test_standard_input_and_compression(cli, shop_logs):
    cap = shop_logs["n_plus_one"]
    res = cli("-", "--json", input=gzip.compress(cap.path.read_bytes()))
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["statements"] == len(cap.trace.statements)
    assert s["files"][0]["path"] == "stdin"


def test_given_prefix_and_format(cli, shop_logs):
    cap = shop_logs["pooled"]
    ok = cli(cap.path, "--format", "stderr", "--prefix", "%m [%p] %q%u@%d ", "--json")
    assert json.loads(ok.stdout)["statements"] == len(cap.trace.statements)
    bad = cli(cap.path, "--prefix", "%t [%p]: ")
    assert bad.exit_code == 2
    assert "do not match log_line_prefix '%t [%p]: '" in bad.stderr
    assert "log_line_prefix = '%m [%p] %q%u@%d '" in bad.stderr


def test_errors_exit_2_with_the_reason(cli, tmp_path):
    res = cli(tmp_path / "missing.log")
    assert res.exit_code == 2 and "no such file" in res.stderr
    res = cli(tmp_path / "x.log", "--format", "apache")
    assert res.exit_code == 2 and "not one of auto" in res.stderr
    binary = tmp_path / "b.log"
    binary.write_bytes(bytes(range(256)) * 8)  # hand-made binary data
    res = cli(binary)
    assert res.exit_code == 2 and "binary data" in res.stderr


@needs_corpus(CORPUS)
def test_skipped_lines_are_listed_with_their_reason(cli):
    res = cli(CORPUS / "pg_rawcsv.log", CORPUS / "pgbouncer.log.gz")
    assert res.exit_code == 0, res.output
    assert "Lines skipped (127,912)" in res.stdout
    assert "line does not match log_line_prefix" in res.stdout
    assert "PgBouncer: 63,943 client logins over 15 server connections" in res.stdout
    s = json.loads(cli(CORPUS / "pg_rawcsv.log", "--json").stdout)
    assert s["skipped"] == {"line does not match log_line_prefix": 2}
    assert any("holds no statements" in n for n in s["notes"])


@needs_corpus(CORPUS)
def test_syslog_from_stdin(cli):
    import bz2
    res = cli("-", "--json", "--top", "1",
              input=bz2.decompress((CORPUS / "pg-syslog.1.bz2").read_bytes()))
    s = json.loads(res.stdout)
    assert (s["statements"], s["total_ms"], s["fingerprints"]) == (59871, 16955.939, 12)
    assert s["files"][0]["format"] == "syslog"
    assert len(s["top_by_calls"]) == 1
