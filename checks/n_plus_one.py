"""PG201 n-plus-one: one query per row, inside one request.

Reads :class:`auditor.facts.workload.WorkloadProfile` (the query log's requests; see
:mod:`auditor.collectors.querylog.profile` for how a request is cut out of a session).
In each request, a read whose fingerprint runs ``min_repeats`` (5) or more times back to
back is an N+1 loop; a loop body of up to ``max_pattern`` (4) reads repeated that often
is an MN+1 loop (each order's customer *and* its items). Both thresholds follow
Sentry's performance issue detectors: the N+1 DB detector flags 5 repeated spans, and
its MN+1 detector exists for repeated multi-query patterns. See
:func:`auditor.analysis.repeats.find_loops`.

Not an N+1: a loop whose every execution has the same parameters (or the same literal
text): it re-runs one query and is PG202 (redundant query). There is no minimum total
time: the count is what grows with the data (a page that loads 20 customers one by one
today loads 200 when the page grows), so a fast loop is still reported.

Severity: high (the rule's) when a loop reached ``high_repeats`` (20) iterations in a
request or took ``high_total_ms`` (100 ms) in one request; medium below both.

Loops are aggregated across requests per (repeated fingerprints, fingerprint of the
read before the loop): one Finding each. ``key``: the repeated fingerprints joined by
``+``, then `` after <fingerprint>`` of the read before the loop when there is one.
Evidence (JSON): ``fingerprints``, ``normalized`` (SQL with $n, one per fingerprint),
``before`` ({fingerprint, normalized} or None), ``count_max`` and ``count_typical``
(iterations per request: maximum and median), ``requests`` (requests with the loop),
``executions`` (statements in all those loops), ``total_ms`` (their summed duration),
``max_request_ms`` (the costliest single loop), ``example`` (one request's first
iterations: ``statements`` [{query, params, duration_ms}], ``session``, ``count``).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from auditor.analysis.repeats import Loop, find_loops, typical
from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.workload import NO_STATEMENTS, Statement, WorkloadProfile
from auditor.model import Finding, Inconclusive, Severity

_EXAMPLE_ITERATIONS = 3
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


def _normalized(profile: WorkloadProfile, st: Statement) -> str:
    stats = profile.fingerprints.get(st.fingerprint)
    return stats.normalized if stats is not None else st.query


def _stmt(st: Statement) -> dict[str, Any]:
    return {"query": st.query, "params": list(st.params), "duration_ms": st.duration_ms}


class NPlusOne(BaseCheck):
    """PG201: yields one Finding per repeated read pattern (see the module docstring)."""

    rule_id = "PG201"
    requires = ("workload",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        profile: WorkloadProfile = facts.workload
        if not profile.statements:
            yield Inconclusive(NO_STATEMENTS)
            return
        min_repeats = int(params.get("min_repeats", 5))
        max_pattern = int(params.get("max_pattern", 4))
        high_repeats = int(params.get("high_repeats", 20))
        high_total_ms = float(params.get("high_total_ms", 100))

        groups: dict[tuple, list[Loop]] = {}
        for request in profile.requests:
            if len(request.statements) < min_repeats:
                continue
            for loop in find_loops(request, min_repeats=min_repeats, max_pattern=max_pattern):
                if loop.all_same_values:
                    continue  # PG202's case
                before = loop.before.fingerprint if loop.before is not None else None
                groups.setdefault((loop.fingerprints, before), []).append(loop)

        for (fps, before_fp), loops in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            yield self._finding(profile, fps, before_fp, loops, high_repeats, high_total_ms)

    def _finding(self, profile: WorkloadProfile, fps: tuple[str, ...], before_fp: str | None,
                 loops: list[Loop], high_repeats: int, high_total_ms: float) -> Finding:
        first = max(loops, key=lambda lp: (lp.count, lp.total_ms))
        normalized = [_normalized(profile, st) for st in first.iteration(0)]
        before = first.before
        counts = [lp.count for lp in loops]
        count_max = max(counts)
        max_request_ms = max(lp.total_ms for lp in loops)
        total_ms = round(sum(lp.total_ms for lp in loops), 3)
        executions = sum(len(lp.statements) for lp in loops)
        high = count_max >= high_repeats or max_request_ms >= high_total_ms
        kind = "N+1" if len(fps) == 1 else f"MN+1 ({len(fps)} queries per row)"
        what = " then ".join(f"`{short_sql(q)}`" for q in normalized)
        after = f" after `{short_sql(_normalized(profile, before))}`" if before else ""
        message = (f"{kind}: {what} ran {count_max} times in one request{after} "
                   f"({len(loops)} request{'s' if len(loops) != 1 else ''}, "
                   f"{executions} executions, {total_ms:.1f} ms)")
        key = "+".join(fps) + (f" after {before_fp}" if before_fp else "")
        return Finding(
            rule_id=self.rule_id,
            message=message,
            fix=self._fix(normalized, before and _normalized(profile, before)),
            key=key,
            location=first.request.database,
            severity=None if high else Severity.MEDIUM,
            evidence={
                "fingerprints": list(fps),
                "normalized": normalized,
                "before": ({"fingerprint": before.fingerprint,
                            "normalized": _normalized(profile, before)} if before else None),
                "count_max": count_max,
                "count_typical": typical(counts),
                "requests": len(loops),
                "executions": executions,
                "total_ms": total_ms,
                "max_request_ms": max_request_ms,
                "example": {
                    "session": first.request.session,
                    "count": first.count,
                    "before": _stmt(before) if before else None,
                    "statements": [_stmt(st) for st in
                                   first.statements[:first.period * _EXAMPLE_ITERATIONS]],
                },
            },
        )

    @staticmethod
    def _fix(normalized: list[str], before: str | None) -> str:
        rewrites = []
        for q in normalized:
            r = in_list_rewrite(q)
            rewrites.append(f"`{short_sql(r, 160)}`" if r else None)
        source = f" returned by `{short_sql(before)}`" if before else ""
        if all(rewrites):
            load = (f"Load the rows for all the values{source} in one query per loop "
                    f"statement, passing them as an array: {'; '.join(rewrites)}")
        else:
            load = (f"Load the rows for all the values{source} in one query "
                    "(WHERE key = ANY($1) / IN (...))")
        return (f"{load}, or JOIN them into the query before the loop; with an ORM use "
                "eager loading (Django select_related / prefetch_related, SQLAlchemy "
                "joinedload / selectinload, Rails includes).")
