"""Repeated statements inside one request: the shared analysis of the N+1 (PG201) and
redundant-query (PG202) checks. Pure functions over
:class:`~auditor.facts.workload.Request` values; no I/O.

Only reads are looked at: statements whose first keyword is ``SELECT`` (or ``WITH``
without a data-modifying part). Transaction control (BEGIN/COMMIT/SAVEPOINT ...) and
writes are skipped: a loop of INSERTs is a batching problem, not an N+1 read, and
Sentry's N+1 DB detector likewise looks at SELECT spans only.

A *loop* is a pattern of 1 to ``max_pattern`` statement fingerprints executed
``min_repeats`` or more times back to back (N+1: a pattern of one; MN+1: a loop body of
several queries, e.g. each order's customer then its items). The first, shortest
pattern found at each position wins, and the scan resumes after the loop.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

from auditor.facts.workload import Request, Statement

__all__ = ["Loop", "RepeatGroup", "is_read", "value_key", "reads", "find_loops",
           "find_redundant", "typical"]

_COMMENTS = re.compile(r"\s*(?:/\*.*?\*/\s*|--[^\n]*(?:\n|\Z)\s*)*", re.S)
_WRITE_IN_WITH = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE)\b", re.I)


def is_read(query: str) -> bool:
    """True for a SELECT (possibly parenthesised) or a WITH query with no
    INSERT/UPDATE/DELETE/MERGE in it."""
    q = query[_COMMENTS.match(query).end():].lstrip("( \t\n")
    head = q[:6].upper()
    if head == "SELECT":
        return True
    if q[:4].upper() == "WITH":
        return _WRITE_IN_WITH.search(q) is None
    return False


def value_key(st: Statement) -> tuple:
    """What makes two executions of one fingerprint the *same* query: its bind
    parameters, or for a statement logged with literals inline, its text."""
    return ("params", st.params) if st.params else ("text", st.query)


def reads(request: Request) -> list[Statement]:
    """The read statements of ``request``, in order."""
    return [st for st in request.statements if is_read(st.query)]


@dataclass(frozen=True)
class Loop:
    """``count`` back-to-back repetitions of ``fingerprints`` in one request.

    ``statements``: the loop's executions in order (``count * len(fingerprints)``).
    ``before``: the read executed just before the loop (the "1" of N+1), or None.
    """
    request: Request
    fingerprints: tuple[str, ...]
    count: int
    statements: tuple[Statement, ...]
    before: Statement | None

    @property
    def period(self) -> int:
        return len(self.fingerprints)

    @property
    def total_ms(self) -> float:
        """Sum of the loop's logged durations (ms); statements without one count 0."""
        return round(sum(st.duration_ms or 0.0 for st in self.statements), 3)

    def iteration(self, i: int) -> tuple[Statement, ...]:
        return self.statements[i * self.period:(i + 1) * self.period]

    def column(self, j: int) -> list[Statement]:
        """The executions of the j-th statement of the pattern, one per iteration."""
        return list(self.statements[j::self.period])

    @property
    def all_same_values(self) -> bool:
        """True when every position of the pattern ran with the same values in every
        iteration: the loop re-runs one query (PG202's case), it does not walk rows."""
        return all(len({value_key(st) for st in self.column(j)}) == 1
                   for j in range(self.period))


def find_loops(request: Request, *, min_repeats: int, max_pattern: int) -> list[Loop]:
    """The loops of ``request`` (see the module docstring), in order.

    ``min_repeats``: iterations needed (rules.yaml PG201: 5, after Sentry's N+1 DB
    detector). ``max_pattern``: longest loop body looked for (PG201: 4). Work is
    O(n * max_pattern * loop length) for n reads.
    """
    rs = reads(request)
    fps = [st.fingerprint for st in rs]
    n = len(fps)
    loops: list[Loop] = []
    if n < min_repeats:
        return loops
    i = 0
    while i < n:
        found = None
        for period in range(1, max_pattern + 1):
            if i + period * min_repeats > n:
                break
            pattern = fps[i:i + period]
            if period > 1 and len(set(pattern)) == 1:
                continue  # a repetition of a shorter pattern
            count = 1
            while fps[i + count * period:i + (count + 1) * period] == pattern:
                count += 1
            if count >= min_repeats:
                found = (period, count)
                break
        if found is None:
            i += 1
            continue
        period, count = found
        end = i + period * count
        loops.append(Loop(request, tuple(fps[i:i + period]), count, tuple(rs[i:end]),
                          rs[i - 1] if i > 0 else None))
        i = end
    return loops


@dataclass(frozen=True)
class RepeatGroup:
    """Executions of one fingerprint with the same values in one request."""
    request: Request
    fingerprint: str
    statements: tuple[Statement, ...]

    @property
    def count(self) -> int:
        return len(self.statements)

    @property
    def total_ms(self) -> float:
        return round(sum(st.duration_ms or 0.0 for st in self.statements), 3)


def find_redundant(request: Request, *, min_repeats: int) -> list[RepeatGroup]:
    """Reads of ``request`` run ``min_repeats`` or more times with the same fingerprint
    and the same values (anywhere in the request, not only back to back), in order of
    first execution. ``min_repeats``: rules.yaml PG202 (5)."""
    groups: dict[tuple, list[Statement]] = {}
    for st in reads(request):
        groups.setdefault((st.fingerprint, value_key(st)), []).append(st)
    return [RepeatGroup(request, key[0], tuple(sts)) for key, sts in groups.items()
            if len(sts) >= min_repeats]


def typical(values: Sequence[float] | Iterable[float]) -> float:
    """The median (the "typical" count or time across requests)."""
    vals = list(values)
    return statistics.median(vals) if vals else 0
