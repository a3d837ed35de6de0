"""PG201 N+1 on real logs: found where the shop loops over rows, silent where it does
not (the same pages done with a JOIN or ANY, a redundant loop, pgbench)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import needs_corpus

from auditor import rules
from auditor.collectors.querylog import read_logs
from auditor.facts import Facts
from auditor.fingerprint import fingerprint
from auditor.model import Finding, Inconclusive, Severity
from auditor.facts.workload import WorkloadProfile
from checks.n_plus_one import NPlusOne
from fixtures.workloads.shop import (CUSTOMER_BY_ID, ITEMS_OF_ORDER, ORDERS_PAGE, PAGE,
                                     REQUESTS, as_logged)

pytest_plugins = ["logfixtures"]

PARAMS = dict(rules.load()["PG201"].params)
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pgbadger"


def run_check(path, **overrides) -> list:
    facts = Facts(workload=read_logs([path]))
    return list(NPlusOne().run(facts, {**PARAMS, **overrides}))


def only_finding(results) -> Finding:
    assert len(results) == 1 and isinstance(results[0], Finding), results
    return results[0]


@pytest.mark.parametrize("fmt", ["stderr", "csvlog", "jsonlog"])
def test_n_plus_one_found_with_its_evidence(shop_logs, fmt):
    cap = shop_logs["n_plus_one"]
    f = only_finding(run_check(cap.paths[fmt]))
    customer_fp = fingerprint(as_logged(CUSTOMER_BY_ID))
    ev = f.evidence
    assert f.rule_id == "PG201"
    assert ev["fingerprints"] == [customer_fp]
    assert ev["normalized"] == ["SELECT id, name, email FROM customers WHERE id = $1"]
    assert ev["before"]["normalized"] == as_logged(ORDERS_PAGE)  # the "1" of N+1
    assert ev["count_max"] == ev["count_typical"] == PAGE
    assert ev["requests"] == REQUESTS
    assert ev["executions"] == PAGE * REQUESTS
    assert ev["total_ms"] > 0
    # the example is a real request: its values are the customer ids the workload loaded
    trace_req = cap.trace.requests[0]
    loaded = [e.params for e in trace_req if e.sql == as_logged(CUSTOMER_BY_ID)]
    example = ev["example"]
    assert example["count"] == PAGE
    assert [tuple(s["params"]) for s in example["statements"]] == loaded[:3]
    assert example["before"]["params"] == ["20", "0"]
    # 20 repeats reach high_repeats: the rule's own severity (high)
    assert f.severity is None
    assert f.key == f"{customer_fp} after {fingerprint(as_logged(ORDERS_PAGE))}"
    assert "ANY($1)" in f.fix and "select_related" in f.fix
    assert "customers" in f.message and "20 times" in f.message
    json.dumps(dict(ev))  # evidence is JSON-serialisable


def test_severity_medium_below_both_high_thresholds(shop_logs):
    f = only_finding(run_check(shop_logs["n_plus_one"].path, high_repeats=21,
                               high_total_ms=10_000))
    assert f.severity == Severity.MEDIUM


def test_min_repeats_is_honoured(shop_logs):
    assert run_check(shop_logs["n_plus_one"].path, min_repeats=PAGE + 1) == []


def test_mn_plus_one_found_as_one_pattern(shop_logs):
    f = only_finding(run_check(shop_logs["mn_plus_one"].path))
    ev = f.evidence
    assert ev["fingerprints"] == [fingerprint(as_logged(CUSTOMER_BY_ID)),
                                  fingerprint(as_logged(ITEMS_OF_ORDER))]
    assert ev["count_max"] == PAGE and ev["requests"] == REQUESTS
    assert ev["executions"] == 2 * PAGE * REQUESTS
    assert "MN+1" in f.message
    assert len(ev["example"]["statements"]) == 6  # three iterations of two queries


@pytest.mark.parametrize("scenario", ["joined", "redundant", "pooled",
                                      "connection_per_request", "unindexed", "indexed"])
def test_no_n_plus_one_where_rows_are_loaded_at_once(shop_logs, scenario):
    assert run_check(shop_logs[scenario].path) == []


@needs_corpus(CORPUS)
def test_pgbench_is_not_n_plus_one():
    """pgbench repeats SELECT abalance ... WHERE aid = N once per transaction: a
    negative control."""
    assert run_check(CORPUS / "light.postgres.log.bz2") == []


def test_inconclusive_without_statements():
    results = list(NPlusOne().run(Facts(workload=WorkloadProfile()), PARAMS))
    assert len(results) == 1 and isinstance(results[0], Inconclusive)
