"""PG202 redundant-query: the same read with the same values, repeated in one request.

Reads :class:`auditor.facts.workload.WorkloadProfile`. In each request, a read whose
fingerprint *and* parameter values (or literal text, for statements logged without
bind parameters) are the same in ``min_repeats`` (5, as PG201's Sentry-derived
threshold) or more executions, back to back or not, returns the same rows every time:
all but the first execution are avoidable. See
:func:`auditor.analysis.repeats.find_redundant`.

Aggregated across requests per fingerprint: one Finding each, ``key`` = the
fingerprint, the rule's severity. Evidence (JSON): ``fingerprint``, ``normalized``,
``count_max`` and ``count_typical`` (identical executions per request: maximum and
median), ``requests`` (requests affected), ``executions`` (all identical executions),
``avoidable`` (executions minus one per repeat group), ``total_ms`` (their summed
duration), ``example`` ({query, params, duration_ms, count, session}).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from auditor.analysis.repeats import RepeatGroup, find_redundant, typical
from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.workload import NO_STATEMENTS, WorkloadProfile
from auditor.model import Finding, Inconclusive


def _short(sql: str, limit: int = 90) -> str:
    one = " ".join(sql.split())
    return one if len(one) <= limit else one[:limit - 3] + "..."


class RedundantQuery(BaseCheck):
    """PG202: yields one Finding per fingerprint re-run with identical values."""

    rule_id = "PG202"
    requires = ("workload",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        profile: WorkloadProfile = facts.workload
        if not profile.statements:
            yield Inconclusive(NO_STATEMENTS)
            return
        min_repeats = int(params.get("min_repeats", 5))
        by_fp: dict[str, list[RepeatGroup]] = {}
        for request in profile.requests:
            if len(request.statements) < min_repeats:
                continue
            for group in find_redundant(request, min_repeats=min_repeats):
                by_fp.setdefault(group.fingerprint, []).append(group)
        for fp, groups in sorted(by_fp.items(), key=lambda kv: -len(kv[1])):
            yield self._finding(profile, fp, groups)

    def _finding(self, profile: WorkloadProfile, fp: str, groups: list[RepeatGroup]) -> Finding:
        stats = profile.fingerprints.get(fp)
        worst = max(groups, key=lambda g: (g.count, g.total_ms))
        example = worst.statements[0]
        normalized = stats.normalized if stats is not None else example.query
        counts = [g.count for g in groups]
        executions = sum(counts)
        avoidable = executions - len(groups)
        total_ms = round(sum(g.total_ms for g in groups), 3)
        values = ", ".join(f"${i} = {v!r}" for i, v in enumerate(example.params, 1))
        message = (f"`{_short(normalized)}` ran {worst.count} times with the same values"
                   f"{' (' + _short(values, 60) + ')' if values else ''} in one request "
                   f"({len(groups)} request{'s' if len(groups) != 1 else ''}, "
                   f"{avoidable} avoidable executions, {total_ms:.1f} ms)")
        return Finding(
            rule_id=self.rule_id,
            message=message,
            fix=(f"Run `{_short(normalized)}` once per request and reuse its rows (a local "
                 "variable outside the loop, a per-request memo such as Django's "
                 "cached_property or functools.cache on a request-scoped object, or the "
                 "ORM's identity map / session.get)."),
            key=fp,
            location=worst.request.database,
            evidence={
                "fingerprint": fp,
                "normalized": normalized,
                "count_max": worst.count,
                "count_typical": typical(counts),
                "requests": len(groups),
                "executions": executions,
                "avoidable": avoidable,
                "total_ms": total_ms,
                "example": {"query": example.query, "params": list(example.params),
                            "duration_ms": example.duration_ms, "count": worst.count,
                            "session": worst.request.session},
            },
        )
