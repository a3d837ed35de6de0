"""PG202 redundant query on real logs: the same query with the same values, repeated
in one request, is reported as redundant (and not as N+1)."""

from __future__ import annotations

import pytest

from auditor import rules
from auditor.collectors.querylog import read_logs
from auditor.facts import Facts
from auditor.fingerprint import fingerprint
from auditor.model import Finding
from checks.n_plus_one import NPlusOne
from checks.redundant_query import RedundantQuery
from fixtures.workloads.shop import PAGE, REQUESTS, SIGNED_IN_CUSTOMER, as_logged

pytest_plugins = ["logfixtures"]


def run_check(path, check=None, **overrides) -> list:
    check = check or RedundantQuery()
    params = dict(rules.load()[check.rule_id].params)
    return list(check.run(Facts(workload=read_logs([path])), {**params, **overrides}))


def test_redundant_loop_reported_as_redundant(shop_logs):
    cap = shop_logs["redundant"]
    results = run_check(cap.path)
    assert len(results) == 1 and isinstance(results[0], Finding)
    f = results[0]
    fp = fingerprint(as_logged(SIGNED_IN_CUSTOMER))
    ev = f.evidence
    assert f.rule_id == "PG202" and f.key == fp
    assert ev["normalized"] == as_logged(SIGNED_IN_CUSTOMER)
    assert ev["count_max"] == PAGE and ev["requests"] == REQUESTS
    assert ev["executions"] == PAGE * REQUESTS
    assert ev["avoidable"] == (PAGE - 1) * REQUESTS
    assert ev["example"]["params"] == ["1"]  # the first page's signed-in customer
    assert "20 times with the same values" in f.message
    assert f.severity is None  # the rule's medium


def test_redundant_loop_is_not_n_plus_one(shop_logs):
    assert run_check(shop_logs["redundant"].path, NPlusOne()) == []


@pytest.mark.parametrize("scenario", ["n_plus_one", "mn_plus_one", "joined", "pooled"])
def test_distinct_values_are_not_redundant(shop_logs, scenario):
    assert run_check(shop_logs[scenario].path) == []


def test_min_repeats_is_honoured(shop_logs):
    assert run_check(shop_logs["redundant"].path, min_repeats=PAGE + 1) == []
