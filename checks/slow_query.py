"""PG203 slow-query: statement shapes that are slow on average or in their tail.

Reads :class:`auditor.facts.workload.WorkloadProfile`: per fingerprint the calls, the
summed and mean duration and the 95th percentile from a fixed-resolution histogram
(``FingerprintStats.p95_ms``, within ±6 %). A shape with at least ``min_calls`` (100)
executions is slow when its mean reaches ``min_mean_ms`` (20 ms; both after PgHero's
slow-query defaults, ``slow_query_ms`` 20 and ``slow_query_calls`` 100) or its p95
reaches ``min_p95_ms`` (100 ms: the RAIL model's budget for a response that feels
instant; one query over it spends the whole page's budget). The ``max_findings`` (10)
slow shapes with the most total time are reported, most total time first: that is
where the database's time goes, and what to fix first.

Severity: high when the p95 reaches ``high_p95_ms`` (1000 ms: one query keeps a request
waiting a second), else medium (the rule's). ``key``: the fingerprint. Evidence (JSON):
``fingerprint``, ``normalized``, ``calls``, ``total_ms``, ``mean_ms``, ``p95_ms``,
``max_ms``, ``share_of_total`` (of all logged statement time, 0..1), ``example``
({query, params, duration_ms}: the slowest execution with its values).

Inconclusive when the log has no statements, or no durations (logged with
``log_statement`` only).

Without a query log, :class:`auditor.facts.pgss.PgStatStatements` stands in: per
fingerprint the calls and total time pg_stat_statements counted. It keeps no
percentiles, so a shape is judged by its mean (and ranked by its total time) only, the
finding says so (``p95_ms`` is null, ``note`` explains), and it is high when the mean
itself reaches ``high_p95_ms``. ``share_of_total`` is then of all the time the view
held; ``example`` is pg_stat_statements' text (constants as ``$n``, no values),
``source`` is ``"pg_stat_statements"`` (``"query log"`` otherwise) and ``source_notes``
the collector's notes on what it read (e.g. an export's rows of other databases left
out). Inconclusive when the view holds no statements.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.pgss import PgStatStatements, StatementTotals
from auditor.facts.workload import NO_STATEMENTS, FingerprintStats, WorkloadProfile
from auditor.model import Finding, Inconclusive, Severity

NO_PGSS_STATEMENTS = "pg_stat_statements holds no statements (reset recently, or no traffic yet)"
PGSS_NOTE = ("pg_stat_statements keeps no percentiles: judged by the mean and the total "
             "time only")
NO_DURATIONS = ("the query log holds statements but no durations; log them with "
                "log_min_duration_statement = 0")


def _thresholds(params: Mapping[str, Any]) -> tuple[int, float, float, float, int]:
    """(min_calls, min_mean_ms, min_p95_ms, high_p95_ms, max_findings) from the rule's
    params (rules.yaml), with the defaults the module docstring gives."""
    return (int(params.get("min_calls", 100)), float(params.get("min_mean_ms", 20)),
            float(params.get("min_p95_ms", 100)), float(params.get("high_p95_ms", 1000)),
            int(params.get("max_findings", 10)))


def _short(sql: str, limit: int = 90) -> str:
    one = " ".join(sql.split())
    return one if len(one) <= limit else one[:limit - 3] + "..."


class SlowQuery(BaseCheck):
    """PG203: one Finding per slow statement shape, the costliest first (see the module
    docstring)."""

    rule_id: ClassVar[str] = "PG203"
    requires: ClassVar[tuple[str, ...]] = ()
    requires_one_of: ClassVar[tuple[str, ...]] = ("workload", "pgss")

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        if facts.workload is None:
            assert facts.pgss is not None
            yield from self._run_pgss(facts.pgss, params)
            return
        profile: WorkloadProfile = facts.workload
        if not profile.statements:
            yield Inconclusive(NO_STATEMENTS)
            return
        if not any(f.durations.count or f.total_ms for f in profile.fingerprints.values()):
            yield Inconclusive(NO_DURATIONS)
            return
        min_calls, min_mean_ms, min_p95_ms, high_p95_ms, max_findings = _thresholds(params)
        slow = [f for f in profile.fingerprints.values()
                if f.calls >= min_calls and (f.mean_ms >= min_mean_ms
                                             or (f.p95_ms or 0) >= min_p95_ms)]
        slow.sort(key=lambda f: (-f.total_ms, f.fingerprint))
        for f in slow[:max_findings]:
            yield self._finding(profile, f, min_mean_ms, min_p95_ms, high_p95_ms)

    def _finding(self, profile: WorkloadProfile, f: FingerprintStats, min_mean_ms: float,
                 min_p95_ms: float, high_p95_ms: float) -> Finding:
        p95 = f.p95_ms
        why = []
        if f.mean_ms >= min_mean_ms:
            why.append(f"mean {f.mean_ms:.1f} ms")
        if p95 is not None and p95 >= min_p95_ms:
            why.append(f"p95 {p95:.1f} ms")
        share = f.total_ms / profile.total_ms if profile.total_ms else 0.0
        ex = f.example
        return Finding(
            rule_id=self.rule_id,
            message=(f"`{_short(f.normalized)}` is slow: {' and '.join(why)} over {f.calls} "
                     f"calls, {f.total_ms:.1f} ms in all ({share:.0%} of the logged "
                     "statement time)"),
            fix=("Run EXPLAIN (ANALYZE, BUFFERS) on the example with its values and fix what "
                 "it shows: an index on the filtered, joined or sorted columns (PG101 names "
                 "them when the catalog is given), fewer rows (LIMIT, keyset pagination), a "
                 "narrower select list, or caching the result; then compare the p95 in the "
                 "next log."),
            key=f.fingerprint,
            severity=Severity.HIGH if p95 is not None and p95 >= high_p95_ms else None,
            evidence={
                "fingerprint": f.fingerprint,
                "normalized": f.normalized,
                "calls": f.calls,
                "total_ms": round(f.total_ms, 3),
                "mean_ms": round(f.mean_ms, 3),
                "p95_ms": p95,
                "max_ms": round(f.max_ms, 3),
                "share_of_total": round(share, 4),
                "example": {"query": ex.query, "params": list(ex.params),
                            "duration_ms": ex.duration_ms},
                "source": "query log",
            },
        )

    # -- pg_stat_statements: calls and total time, no percentiles ----------------------
    def _run_pgss(self, pgss: PgStatStatements, params: Mapping[str, Any]
                  ) -> Iterable[Finding | Inconclusive]:
        if not pgss.statements:
            yield Inconclusive(NO_PGSS_STATEMENTS)
            return
        min_calls, min_mean_ms, _p95, high_ms, max_findings = _thresholds(params)
        slow = [s for s in pgss.statements.values()
                if s.calls >= min_calls and s.mean_ms >= min_mean_ms]
        slow.sort(key=lambda s: (-s.total_ms, s.fingerprint))
        all_ms = pgss.total_ms_all or pgss.total_ms
        for s in slow[:max_findings]:
            yield self._pgss_finding(s, all_ms, high_ms, pgss.notes)

    def _pgss_finding(self, s: StatementTotals, all_ms: float, high_ms: float,
                      notes: list[str] = ()) -> Finding:
        share = s.total_ms / all_ms if all_ms else 0.0
        return Finding(
            rule_id=self.rule_id,
            message=(f"`{_short(s.query)}` is slow: mean {s.mean_ms:.1f} ms over {s.calls} "
                     f"calls, {s.total_ms:.1f} ms in all ({share:.0%} of the statement time "
                     "in pg_stat_statements; no p95 from this source)"),
            fix=("Run EXPLAIN (ANALYZE, BUFFERS) on the statement with typical values and fix "
                 "what it shows: an index on the filtered, joined or sorted columns (PG101 "
                 "names them when the catalog is given), fewer rows (LIMIT, keyset "
                 "pagination), a narrower select list, or caching the result; a query log "
                 "(log_min_duration_statement = 0) adds the p95 and the real values."),
            key=s.fingerprint,
            severity=Severity.HIGH if s.mean_ms >= high_ms else None,
            evidence={
                "fingerprint": s.fingerprint,
                "normalized": s.query,
                "calls": s.calls,
                "total_ms": round(s.total_ms, 3),
                "mean_ms": round(s.mean_ms, 3),
                "p95_ms": None,
                "max_ms": None,
                "rows": s.rows,
                "share_of_total": round(share, 4),
                "example": {"query": s.query, "params": [], "duration_ms": None},
                "source": "pg_stat_statements",
                "note": PGSS_NOTE,
                "source_notes": list(notes),
            },
        )
