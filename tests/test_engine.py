"""The checklist's honesty rules and sequencing (DESIGN.md): pass only with
evidence, not verified with a reason, error for a crashing check, buckets by
milestone, and the gate."""

from __future__ import annotations

from auditor import engine
from auditor.facts import Facts
from auditor.facts.workload import WorkloadProfile
from auditor.model import Bucket, Category, Finding, Inconclusive, Rule, Severity, Status
from auditor.registry import Registered


def rule(rid="TST101", milestone="1k", severity="high", manual=False) -> Rule:
    return Rule(rid, f"slug-{rid.lower()}", "t", Severity(severity), milestone, Category.DATABASE,
                "why", "fix", {"limit": 3}, manual)


class Yields:
    rule_id = "TST101"
    requires = ("workload",)
    requires_one_of = ()

    def __init__(self, *out):
        self.out = out
        self.params = None

    def run(self, facts, params):
        self.params = params
        yield from self.out


class Crashes(Yields):
    def run(self, facts, params):
        raise ZeroDivisionError("boom postgresql://u:sekret@h/db")


def reg(check) -> Registered:
    return Registered(check.rule_id, check, "test (x:y)")


FACTS = Facts(workload=WorkloadProfile())


def test_no_evidence_is_not_verified_with_the_reason():
    item = engine.evaluate_rule(rule(), reg(Yields()), Facts(), "1k")
    assert item.status is Status.NOT_VERIFIED
    assert "no query log given" in item.reason


def test_unreachable_reason_is_carried():
    facts = Facts(unavailable={"workload": "cannot open /x.log: No such file"})
    item = engine.evaluate_rule(rule(), reg(Yields()), facts, "1k")
    assert item.status is Status.NOT_VERIFIED and "cannot open /x.log" in item.reason


def test_pass_only_when_the_check_ran_on_evidence():
    item = engine.evaluate_rule(rule(), reg(Yields()), FACTS, "1k")
    assert item.status is Status.PASS and "workload" in item.evidence_summary


def test_inconclusive_is_not_verified_never_pass():
    item = engine.evaluate_rule(rule(), reg(Yields(Inconclusive("too little traffic"))), FACTS, "1k")
    assert item.status is Status.NOT_VERIFIED and item.reason == "too little traffic"


def test_crash_is_error_with_redacted_reason_and_the_run_goes_on():
    rules = {"TST101": rule(), "TST102": rule("TST102")}
    ok = Yields(); ok.rule_id = "TST102"
    items = engine.evaluate(rules, {"TST101": reg(Crashes()), "TST102": reg(ok)}, FACTS, "1k")
    assert items[0].status is Status.ERROR and "ZeroDivisionError" in items[0].reason
    assert "sekret" not in items[0].reason
    assert items[1].status is Status.PASS


def test_findings_take_rule_severity_unless_the_check_or_config_says_otherwise():
    f1 = Finding("TST101", "m", "fix", key="a")
    f2 = Finding("TST101", "m", "fix", key="b", severity=Severity.LOW)
    item = engine.evaluate_rule(rule(), reg(Yields(f1, f2)), FACTS, "1k")
    assert item.status is Status.FAIL
    assert [f.severity for f in item.findings] == [Severity.HIGH, Severity.LOW]
    forced = engine.evaluate_rule(rule(), reg(Yields(f1, f2)), FACTS, "1k",
                                  engine.RuleSetting(severity=Severity.MEDIUM))
    assert {f.severity for f in forced.findings} == {Severity.MEDIUM}


def test_config_params_override_rule_params_and_off_switches_off():
    check = Yields()
    engine.evaluate_rule(rule(), reg(check), FACTS, "1k", engine.RuleSetting(params={"limit": 9}))
    assert check.params == {"limit": 9}
    off = engine.evaluate_rule(rule(), reg(Yields()), FACTS, "1k", engine.RuleSetting(enabled=False))
    assert off.status is Status.OFF


def test_manual_rules_are_manual():
    assert engine.evaluate_rule(rule(manual=True), None, FACTS, "1k").status is Status.MANUAL


def test_buckets_follow_the_ladder():
    assert engine.bucket_for(rule(milestone="1k"), "10k") is Bucket.NOW
    assert engine.bucket_for(rule(milestone="10k"), "10k") is Bucket.NOW
    assert engine.bucket_for(rule(milestone="100k"), "10k") is Bucket.NEXT
    assert engine.bucket_for(rule(milestone="100k+"), "10k") is Bucket.PREMATURE
    assert engine.bucket_for(rule(milestone="1k"), "100") is Bucket.NEXT


def test_gate_counts_only_fix_now_findings_at_or_above_fail_on():
    now_high = engine.evaluate_rule(rule(milestone="1k"), reg(Yields(Finding("TST101", "m", "f", key="k"))), FACTS, "1k")
    later = engine.evaluate_rule(rule(milestone="10k"), reg(Yields(Finding("TST101", "m", "f", key="k"))), FACTS, "1k")
    now_low = engine.evaluate_rule(rule(severity="low"), reg(Yields(Finding("TST101", "m", "f", key="k"))), FACTS, "1k")
    assert len(engine.blocking_findings([now_high, later, now_low], Severity.HIGH)) == 1
    assert len(engine.blocking_findings([now_high, later, now_low], Severity.LOW)) == 2
    assert engine.blocking_findings([later], Severity.INFO) == ()


def test_at_the_bottom_rung_only_serious_protection_failures_are_fix_now():
    prot = Rule("TST103", "slug-p", "t", Severity.HIGH, "1k", Category.PROTECTION, "why", "fix")
    db = rule(milestone="1k")
    finding = Finding("TST101", "m", "f", key="k")
    p_item = engine.evaluate_rule(prot, reg(Yields(finding)), FACTS, "100")
    d_item = engine.evaluate_rule(db, reg(Yields(finding)), FACTS, "100")
    assert p_item.bucket is Bucket.NOW and d_item.bucket is Bucket.NEXT
    assert len(engine.blocking_findings([p_item, d_item], Severity.HIGH)) == 1
    low = engine.evaluate_rule(prot, reg(Yields(Finding("TST101", "m", "f", key="k", severity=Severity.LOW))),
                               FACTS, "100")
    assert low.bucket is Bucket.NEXT
    passing = engine.evaluate_rule(prot, reg(Yields()), FACTS, "100")
    assert passing.bucket is Bucket.NEXT


def test_a_finding_with_a_bad_severity_is_an_error_not_a_crash():
    bad = Finding("TST101", "m", "f", key="k", severity="severe")
    item = engine.evaluate_rule(rule(), reg(Yields(bad)), FACTS, "1k")
    assert item.status is Status.ERROR and "severe" in item.reason
    ok = Finding("TST101", "m", "f", key="k", severity="low")  # a plain string is accepted
    assert engine.evaluate_rule(rule(), reg(Yields(ok)), FACTS, "1k").findings[0].severity is Severity.LOW
