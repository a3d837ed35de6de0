"""PG202 redundant-query: the same read with the same values, repeated in one request.

Reads :class:`auditor.facts.workload.WorkloadProfile` (``WorkloadProfile.redundant``:
what the query-log reader's detector found while streaming, with the threshold it was
given; this check can only raise it). In each request, a read whose
fingerprint *and* parameter values (or literal text, for statements logged without
bind parameters) are the same in ``min_repeats`` (5, as PG201's Sentry-derived
threshold) or more executions, back to back or not, returns the same rows every time:
all but the first execution are avoidable. See
:class:`auditor.analysis.repeats.Aggregates`.

Aggregated across requests per fingerprint: one Finding each, ``key`` = the
fingerprint, the rule's severity. Evidence (JSON): ``fingerprint``, ``normalized``,
``count_max`` and ``count_typical`` (identical executions per request: maximum and
median), ``requests`` (requests affected), ``executions`` (all identical executions),
``avoidable`` (executions minus one per repeat group), ``total_ms`` (their summed
duration), ``example`` ({query, params, duration_ms, count, session}).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from auditor.analysis.repeats import aggregates_of, normalized_of, typical_count
from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.workload import (NO_STATEMENTS, Detection, RedundantStats,
                                    WorkloadProfile)
from auditor.model import Finding, Inconclusive


def _short(sql: str, limit: int = 90) -> str:
    one = " ".join(sql.split())
    return one if len(one) <= limit else one[:limit - 3] + "..."


def redundant_of(profile: WorkloadProfile, det: Detection) -> list[RedundantStats]:
    """The profile's redundant reads; for a profile built by hand (no ``detection``),
    the detector runs over its ``requests`` here."""
    agg = aggregates_of(profile, det)
    return profile.redundant if agg is None else agg.redundant_facts()


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
        det = Detection.from_params(None, params)
        found = []
        for red in redundant_of(profile, det):
            counts = {c: cs for c, cs in red.by_count.items() if c >= min_repeats}
            if counts:
                found.append((red, counts))
        found.sort(key=lambda rc: -sum(cs.requests for cs in rc[1].values()))
        for red, counts in found:
            yield self._finding(profile, red, counts)

    def _finding(self, profile: WorkloadProfile, red: RedundantStats, counts: dict) -> Finding:
        fp = red.fingerprint
        ex = red.example
        example = ex.statement
        normalized = normalized_of(profile, fp, example.query)
        groups = sum(cs.requests for cs in counts.values())
        executions = sum(c * cs.requests for c, cs in counts.items())
        avoidable = executions - groups
        total_ms = round(sum(cs.total_ms for cs in counts.values()), 3)
        values = ", ".join(f"${i} = {v!r}" for i, v in enumerate(example.params, 1))
        message = (f"`{_short(normalized)}` ran {ex.count} times with the same values"
                   f"{' (' + _short(values, 60) + ')' if values else ''} in one request "
                   f"({groups} request{'s' if groups != 1 else ''}, "
                   f"{avoidable} avoidable executions, {total_ms:.1f} ms)")
        return Finding(
            rule_id=self.rule_id,
            message=message,
            fix=(f"Run `{_short(normalized)}` once per request and reuse its rows (a local "
                 "variable outside the loop, a per-request memo such as Django's "
                 "cached_property or functools.cache on a request-scoped object, or the "
                 "ORM's identity map / session.get)."),
            key=fp,
            location=ex.database,
            evidence={
                "fingerprint": fp,
                "normalized": normalized,
                "count_max": max(counts),
                "count_typical": typical_count({c: cs.requests for c, cs in counts.items()}),
                "requests": groups,
                "executions": executions,
                "avoidable": avoidable,
                "total_ms": total_ms,
                "example": {"query": example.query, "params": list(example.params),
                            "duration_ms": example.duration_ms, "count": ex.count,
                            "session": ex.session},
            },
        )
