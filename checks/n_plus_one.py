"""PG201 n-plus-one: one query per row, inside one request.

Reads :class:`auditor.facts.workload.WorkloadProfile`: the loops the query-log reader's
detectors found while streaming (``WorkloadProfile.loops``; see
:mod:`auditor.analysis.repeats` for the detector and
:mod:`auditor.collectors.querylog.profile` for how a request is cut out of a session).
In each request, a statement shape (read or write) that runs ``min_repeats`` (5) or
more times back to back is an N+1 loop; a pattern of 2 to ``max_pattern`` (4)
different shapes repeated ``min_pattern_repeats`` (3) or more times is an MN+1 loop
(each order's customer *and* its items). Sources: Sentry's N+1 DB detector flags 5
repeated spans; its MN+1 detector exists for repeated multi-query patterns, and 3
repetitions is the issue's definition of MN+1. The reader detects with the thresholds
it was given (rules.yaml, passed by the audit); this check can only raise them (it
keeps the requests whose loop ran at least as often), never lower them.

Reads and writes both count: a loop of SELECTs is fixed by loading the rows at once, a
loop of INSERT/UPDATE/DELETE by batching the writes. Not an N+1: a read loop whose
every execution has the same parameters (or the same literal text): it re-runs one
query and is PG202 (redundant query). There is no minimum total time: the count is
what grows with the data (a page that loads 20 customers one by one today loads 200
when the page grows), so a fast loop is still reported.

Severity: high (the rule's) when a loop reached ``high_repeats`` (20) iterations in a
request or took ``high_total_ms`` (100 ms) in one request; medium below both.

Loops are aggregated across requests per (repeated fingerprints, fingerprint of the
statement before the loop): one Finding each, the patterns seen in most requests
first. ``key``: the repeated fingerprints joined by ``+``, then `` after
<fingerprint>`` of the statement before the loop when there is one. Evidence (JSON):
``fingerprints``, ``normalized`` (SQL with $n, one per fingerprint), ``kind`` (read,
write or mixed), ``before`` ({fingerprint, normalized} or None), ``count_max`` and
``count_typical`` (iterations per request: maximum and median), ``requests`` (loop
occurrences), ``executions`` (statements in all those loops), ``total_ms`` (their
summed duration), ``max_request_ms`` (the costliest single loop), ``example`` (the
costliest request's loop: ``session``, ``count``, ``before`` and the first iterations'
``statements`` [{query, params, duration_ms}]).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from auditor.analysis.repeats import aggregates_of, normalized_of, typical_count
from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.workload import (NO_STATEMENTS, Detection, LoopStats, Statement,
                                    WorkloadProfile)
from auditor.model import Finding, Inconclusive, Severity

_SINGLE_EQ_PARAM = re.compile(r"((?:\"[^\"]+\"|\w+)(?:\.(?:\"[^\"]+\"|\w+))?)\s*=\s*\$(\d+)")


def short_sql(sql: str, limit: int = 90) -> str:
    one = " ".join(sql.split())
    return one if len(one) <= limit else one[:limit - 3] + "..."


def in_list_rewrite(normalized: str) -> str | None:
    """``... WHERE id = $1`` → ``... WHERE id = ANY($1)`` when the query has exactly one
    ``column = $n`` comparison; None otherwise."""
    found = _SINGLE_EQ_PARAM.findall(normalized)
    if len(found) != 1:
        return None
    return _SINGLE_EQ_PARAM.sub(lambda m: f"{m.group(1)} = ANY(${m.group(2)})", normalized, 1)


def _stmt(st: Statement) -> dict[str, Any]:
    return {"query": st.query, "params": list(st.params), "duration_ms": st.duration_ms}


def loops_of(profile: WorkloadProfile, det: Detection) -> list[LoopStats]:
    """The profile's loops; for a profile built by hand (no ``detection``), the
    detectors run over its ``requests`` here."""
    agg = aggregates_of(profile, det)
    return profile.loops if agg is None else agg.loop_facts()


class NPlusOne(BaseCheck):
    """PG201: yields one Finding per repeated statement pattern (see the module docstring)."""

    rule_id = "PG201"
    requires = ("workload",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        profile: WorkloadProfile = facts.workload
        if not profile.statements:
            yield Inconclusive(NO_STATEMENTS)
            return
        det = Detection.from_params(params)
        high_repeats = int(params.get("high_repeats", 20))
        high_total_ms = float(params.get("high_total_ms", 100))
        found = []
        for loop in loops_of(profile, det):
            period = len(loop.fingerprints)
            if period > det.max_pattern:
                continue
            need = det.min_repeats if period == 1 else det.min_pattern_repeats
            counts = {c: cs for c, cs in loop.by_count.items() if c >= need}
            if counts:
                found.append((loop, counts))
        found.sort(key=lambda lc: -sum(cs.requests for cs in lc[1].values()))
        for loop, counts in found:
            yield self._finding(profile, loop, counts, high_repeats, high_total_ms)

    def _finding(self, profile: WorkloadProfile, loop: LoopStats, counts: dict,
                 high_repeats: int, high_total_ms: float) -> Finding:
        fps = loop.fingerprints
        ex = loop.example
        period = len(fps)
        normalized = [normalized_of(profile, st.fingerprint, st.query)
                      for st in ex.statements[:period]]
        before = ex.before
        before_norm = normalized_of(profile, before.fingerprint, before.query) if before else None
        requests = sum(cs.requests for cs in counts.values())
        count_max = max(counts)
        max_request_ms = max(cs.max_request_ms for cs in counts.values())
        total_ms = round(sum(cs.total_ms for cs in counts.values()), 3)
        executions = sum(c * period * cs.requests for c, cs in counts.items())
        high = count_max >= high_repeats or max_request_ms >= high_total_ms
        kind = "N+1" if period == 1 else f"MN+1 ({period} queries per row)"
        if loop.kind == "write":
            kind += " writes"
        what = " then ".join(f"`{short_sql(q)}`" for q in normalized)
        after = f" after `{short_sql(before_norm)}`" if before else ""
        message = (f"{kind}: {what} ran {count_max} times in one request{after} "
                   f"({requests} request{'s' if requests != 1 else ''}, "
                   f"{executions} executions, {total_ms:.1f} ms)")
        key = "+".join(fps) + (f" after {loop.before}" if loop.before else "")
        return Finding(
            rule_id=self.rule_id,
            message=message,
            fix=self._fix(normalized, before_norm, loop.kind),
            key=key,
            location=ex.database,
            severity=None if high else Severity.MEDIUM,
            evidence={
                "fingerprints": list(fps),
                "normalized": normalized,
                "kind": loop.kind,
                "before": ({"fingerprint": before.fingerprint, "normalized": before_norm}
                           if before else None),
                "count_max": count_max,
                "count_typical": typical_count({c: cs.requests for c, cs in counts.items()}),
                "requests": requests,
                "executions": executions,
                "total_ms": total_ms,
                "max_request_ms": round(max_request_ms, 3),
                "example": {
                    "session": ex.session,
                    "count": ex.count,
                    "before": _stmt(before) if before else None,
                    "statements": [_stmt(st) for st in ex.statements],
                },
            },
        )

    @staticmethod
    def _fix(normalized: list[str], before: str | None, kind: str) -> str:
        source = f" returned by `{short_sql(before)}`" if before else ""
        parts = []
        if kind != "write":
            rewrites = []
            for q in normalized:
                r = in_list_rewrite(q)
                rewrites.append(f"`{short_sql(r, 160)}`" if r else None)
            if all(rewrites):
                load = (f"Load the rows for all the values{source} in one query per loop "
                        f"statement, passing them as an array: {'; '.join(rewrites)}")
            else:
                load = (f"Load the rows for all the values{source} in one query "
                        "(WHERE key = ANY($1) / IN (...))")
            parts.append(f"{load}, or JOIN them into the query before the loop; with an ORM "
                         "use eager loading (Django select_related / prefetch_related, "
                         "SQLAlchemy joinedload / selectinload, Rails includes).")
        if kind != "read":
            parts.append("Write the rows in one statement instead of one per row: a "
                         "multi-row INSERT ... VALUES (...), (...) or INSERT ... SELECT FROM "
                         "unnest($1::...[]), UPDATE ... FROM (VALUES ...), or COPY; with an "
                         "ORM use bulk_create / bulk_update (Django), insert() with a list "
                         "of rows (SQLAlchemy), insert_all / upsert_all (Rails).")
        return " ".join(parts)
