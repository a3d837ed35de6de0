"""Repeated statements inside one request: the detectors behind the N+1 (PG201) and
redundant-query (PG202) checks. Pure code, no I/O: the query-log reader runs them on
each request as it closes and keeps only their aggregates (:class:`Aggregates`), so
memory does not grow with the log; :func:`analyse_requests` does the same for a
profile built by hand.

A request is a list of *entries*, the reader's compact statements: tuples
``(fingerprint, kind, query, params, duration_us, ts, pos, tag)`` (see ``E_*``; ``kind``
one of the ``K_*`` codes; ``pos`` the statement's position in the log, which only
orders ties so that every way of reading a log agrees).

- A *loop* (PG201) is a pattern of statement shapes executed back to back among the
  request's reads and writes (transaction control and utility statements skipped): one
  shape ``min_repeats`` (5) or more times is N+1, a pattern of 2 to ``max_pattern`` (4)
  shapes, not all the same, ``min_pattern_repeats`` (3) or more times is MN+1. At each
  position the shortest pattern found wins and the scan resumes after the loop. Sentry's
  N+1 DB detector also flags 5 repeated spans; the MN+1 count of 3 is the issue's
  definition. A loop whose pattern is all reads and that re-ran the same values in every
  iteration is left to PG202 (it re-reads, it does not walk rows); write loops always
  count (a batching problem whatever the values).
- A *redundant* read (PG202) is a read whose shape and values (bind parameters, or the
  text when literals are inline) occur ``redundant_min_repeats`` (5) or more times in the
  request, back to back or not.
"""

from __future__ import annotations

import re
import statistics
from typing import Callable, Iterable, Sequence

from auditor.facts.workload import (CountStats, Detection, LoopExample, LoopStats,
                                    RedundantExample, RedundantStats, Request, Statement,
                                    WorkloadProfile)

__all__ = ["K_OTHER", "K_READ", "K_WRITE", "K_BEGIN", "K_END", "KIND_NAMES", "classify",
           "is_read", "is_write", "find_loop_spans", "Aggregates", "analyse_requests",
           "typical", "typical_count", "EXAMPLE_ITERATIONS"]

# entry fields
E_FP, E_KIND, E_QUERY, E_PARAMS, E_DUR, E_TS, E_POS, E_TAG = range(8)
# statement kinds
K_OTHER, K_READ, K_WRITE, K_BEGIN, K_END = range(5)
KIND_NAMES = ("other", "read", "write", "begin", "end")
EXAMPLE_ITERATIONS = 3  # iterations of a loop kept as its example

_COMMENTS = re.compile(r"\s*(?:/\*.*?\*/\s*|--[^\n]*(?:\n|\Z)\s*)*", re.S)
_WRITE_IN_WITH = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE)\b", re.I)
_TX = re.compile(
    r"(?:\s|;|/\*.*?\*/|--[^\n]*\n)*"
    r"(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|PREPARE\s+TRANSACTION)\b"
    r"(\s+(?:WORK\s+|TRANSACTION\s+)?(?:TO|PREPARED)\b)?",
    re.I | re.S,
)


def _head(query: str) -> str:
    return query[_COMMENTS.match(query).end():].lstrip("( \t\n")


def is_read(query: str) -> bool:
    """True for a SELECT (possibly parenthesised) or a WITH query with no
    INSERT/UPDATE/DELETE/MERGE in it."""
    q = _head(query)
    if q[:6].upper() == "SELECT":
        return True
    if q[:4].upper() == "WITH":
        return _WRITE_IN_WITH.search(q) is None
    return False


def is_write(query: str) -> bool:
    """True for INSERT, UPDATE, DELETE, MERGE, or a WITH query holding one of them."""
    q = _head(query)
    word = q[:6].upper()
    if word in ("INSERT", "UPDATE", "DELETE") or word[:5] == "MERGE":
        return True
    return q[:4].upper() == "WITH" and _WRITE_IN_WITH.search(q) is not None


def classify(query: str) -> int:
    """The kind code of a statement: K_BEGIN for BEGIN/START TRANSACTION, K_END for
    COMMIT/END/ROLLBACK/ABORT/PREPARE TRANSACTION (not ROLLBACK TO or COMMIT PREPARED),
    K_READ, K_WRITE, else K_OTHER. Call it on the normalized text (literals replaced),
    so that every statement of one fingerprint gets the same kind."""
    m = _TX.match(query)
    if m is not None and not m.group(2):
        word = m.group(1).upper()
        return K_BEGIN if word == "BEGIN" or word.startswith("START") else K_END
    if is_read(query):
        return K_READ
    if is_write(query):
        return K_WRITE
    return K_OTHER


def find_loop_spans(fps: Sequence[str], *, min_repeats: int, min_pattern_repeats: int,
                    max_pattern: int) -> list[tuple[int, int, int]]:
    """The loops of a sequence of fingerprints as ``(start, period, count)``, in order
    (see the module docstring). Work is O(n * max_pattern * loop length)."""
    n = len(fps)
    spans: list[tuple[int, int, int]] = []
    if n < min(min_repeats, 2 * min_pattern_repeats) or len(set(fps)) == n:
        return spans
    i = 0
    while i < n:
        found = None
        for period in range(1, max_pattern + 1):
            need = min_repeats if period == 1 else min_pattern_repeats
            if i + period * need > n:
                continue
            pattern = fps[i:i + period]
            if period > 1 and len(set(pattern)) == 1:
                continue  # a repetition of a shorter pattern
            count = 1
            while fps[i + count * period:i + (count + 1) * period] == pattern:
                count += 1
            if count >= need:
                found = (period, count)
                break
        if found is None:
            i += 1
            continue
        period, count = found
        spans.append((i, period, count))
        i += period * count
    return spans


def _value_key(e: tuple) -> tuple:
    return ("p", e[E_PARAMS]) if e[E_PARAMS] else ("t", e[E_QUERY])


def _us(entries: Iterable[tuple]) -> int:
    return sum(e[E_DUR] or 0 for e in entries)


def _tally(by_count: dict[int, list], count: int, us: int) -> None:
    """One more request whose pattern repeated ``count`` times in ``us`` µs:
    ``by_count[count]`` is [requests, summed µs, largest µs]."""
    by = by_count.get(count)
    if by is None:
        by_count[count] = [1, us, us]
    else:
        by[0] += 1
        by[1] += us
        if us > by[2]:
            by[2] = us


class Aggregates:
    """The detectors' bounded aggregates, mergeable (:meth:`merge`) so that partial
    profiles of log chunks combine into exactly what one pass would give.

    ``loops``: {(fingerprints, fingerprint before or None): [kind code set, {count:
    [requests, total_us, max_us]}, example, first_pos]}; ``redundant``: {fingerprint:
    [{count: [groups, total_us, max_us]}, example, first_pos]}. An example is
    ``(count, total_us, -close_pos, session, database, payload)``: the costliest wins,
    the earliest on a tie.
    """
    __slots__ = ("loops", "redundant")

    def __init__(self) -> None:
        self.loops: dict[tuple, list] = {}
        self.redundant: dict[str, list] = {}

    # -- one request ----------------------------------------------------------------
    def analyse(self, entries: Sequence[tuple], det: Detection, session: str,
                database: str | None, close_pos: int) -> None:
        """Run both detectors on one closed request (its entries in order)."""
        body = [e for e in entries if e[E_KIND] == K_READ or e[E_KIND] == K_WRITE]
        if len(body) < 2:
            return
        fps = [e[E_FP] for e in body]
        if len(set(fps)) == len(fps):
            return  # nothing repeats
        for start, period, count in find_loop_spans(
                fps, min_repeats=det.min_repeats, min_pattern_repeats=det.min_pattern_repeats,
                max_pattern=det.max_pattern):
            self._loop(body, start, period, count, session, database, close_pos)
        if len(body) >= det.redundant_min_repeats:
            self._redundant(body, det.redundant_min_repeats, session, database, close_pos)

    def _loop(self, body, start, period, count, session, database, close_pos) -> None:
        stmts = body[start:start + period * count]
        kinds = {e[E_KIND] for e in stmts[:period]}
        if kinds == {K_READ} and all(
                len({_value_key(e) for e in stmts[j::period]}) == 1 for j in range(period)):
            return  # re-reads the same values: PG202's case
        before = body[start - 1] if start > 0 else None
        key = (tuple(e[E_FP] for e in stmts[:period]), before[E_FP] if before else None)
        us = _us(stmts)
        agg = self.loops.get(key)
        if agg is None:
            agg = self.loops[key] = [kinds, {}, None, close_pos]
        elif close_pos < agg[3]:  # requests may close out of order (idle sessions)
            agg[3] = close_pos
        _tally(agg[1], count, us)
        ex = (count, us, -close_pos, session, database,
              (before, tuple(stmts[:period * EXAMPLE_ITERATIONS])))
        if agg[2] is None or ex[:3] > agg[2][:3]:
            agg[2] = ex

    def _redundant(self, body, min_repeats, session, database, close_pos) -> None:
        groups: dict[tuple, list] = {}
        for e in body:
            if e[E_KIND] == K_READ:
                groups.setdefault((e[E_FP], _value_key(e)), []).append(e)
        for (fp, _vk), sts in groups.items():
            count = len(sts)
            if count < min_repeats:
                continue
            us = _us(sts)
            agg = self.redundant.get(fp)
            if agg is None:
                agg = self.redundant[fp] = [{}, None, close_pos]
            elif close_pos < agg[2]:
                agg[2] = close_pos
            _tally(agg[0], count, us)
            ex = (count, us, -close_pos, session, database, sts[0])
            if agg[1] is None or ex[:3] > agg[1][:3]:
                agg[1] = ex

    # -- combining ------------------------------------------------------------------
    def merge(self, other: "Aggregates") -> None:
        """Add ``other`` (another part of the log) into this one."""
        for key, (kinds, by_count, ex, first) in other.loops.items():
            agg = self.loops.get(key)
            if agg is None:
                self.loops[key] = [set(kinds), {c: list(v) for c, v in by_count.items()},
                                   ex, first]
                continue
            agg[0] |= kinds
            _merge_counts(agg[1], by_count)
            if ex[:3] > agg[2][:3]:
                agg[2] = ex
            agg[3] = min(agg[3], first)
        for fp, (by_count, ex, first) in other.redundant.items():
            agg = self.redundant.get(fp)
            if agg is None:
                self.redundant[fp] = [{c: list(v) for c, v in by_count.items()}, ex, first]
                continue
            _merge_counts(agg[0], by_count)
            if ex[:3] > agg[1][:3]:
                agg[1] = ex
            agg[2] = min(agg[2], first)

    def rename_sessions(self, names: dict[str, tuple[str, str | None]]) -> None:
        """Replace placeholder session ids in the examples: {old: (session, database)}
        (a chunk's reader names a session it joined in the middle by a placeholder)."""
        for agg in self.loops.values():
            agg[2] = _renamed(agg[2], names)
        for agg in self.redundant.values():
            agg[1] = _renamed(agg[1], names)

    # -- facts ----------------------------------------------------------------------
    def loop_facts(self) -> list[LoopStats]:
        """:class:`LoopStats` values, in order of first detection."""
        out = []
        for (fps, before_fp), (kinds, by_count, ex, _first) in sorted(
                self.loops.items(), key=lambda kv: kv[1][3]):
            count, us, _pos, session, database, (before, stmts) = ex
            kind = ("read" if kinds == {K_READ} else "write" if kinds == {K_WRITE}
                    else "mixed")
            out.append(LoopStats(
                fingerprints=fps, before=before_fp, kind=kind,
                by_count={c: _count_stats(v) for c, v in sorted(by_count.items())},
                example=LoopExample(session, database, count, us / 1000,
                                    _statement(before) if before else None,
                                    tuple(_statement(e) for e in stmts))))
        return out

    def redundant_facts(self) -> list[RedundantStats]:
        out = []
        for fp, (by_count, ex, _first) in sorted(self.redundant.items(),
                                                 key=lambda kv: kv[1][2]):
            count, us, _pos, session, database, first = ex
            out.append(RedundantStats(
                fingerprint=fp,
                by_count={c: _count_stats(v) for c, v in sorted(by_count.items())},
                example=RedundantExample(session, database, count, us / 1000,
                                         _statement(first))))
        return out


def _merge_counts(into: dict[int, list], other: dict[int, list]) -> None:
    for c, (n, us, mx) in other.items():
        v = into.get(c)
        if v is None:
            into[c] = [n, us, mx]
        else:
            v[0] += n
            v[1] += us
            if mx > v[2]:
                v[2] = mx


def _renamed(ex: tuple | None, names: dict[str, tuple[str, str | None]]) -> tuple | None:
    if ex is None or ex[3] not in names:
        return ex
    session, database = names[ex[3]]
    return ex[:3] + (session, ex[4] if ex[4] is not None else database) + ex[5:]


def _count_stats(v: list) -> CountStats:
    return CountStats(requests=v[0], total_ms=v[1] / 1000, max_request_ms=v[2] / 1000)


def _statement(e: tuple) -> Statement:
    return Statement(e[E_FP], e[E_QUERY], e[E_PARAMS],
                     e[E_DUR] / 1000 if e[E_DUR] is not None else None, e[E_TS])


def analyse_requests(requests: Iterable[Request], det: Detection,
                     kind_of: Callable[[Statement], int]) -> Aggregates:
    """The detectors over :class:`Request` values (a profile built by hand);
    ``kind_of`` gives each statement's K_* code."""
    agg = Aggregates()
    pos = 0
    for req in requests:
        entries = []
        for st in req.statements:
            pos += 1
            entries.append((st.fingerprint, kind_of(st), st.query, st.params,
                            round(st.duration_ms * 1000) if st.duration_ms is not None else None,
                            st.ts, pos, None))
        agg.analyse(entries, det, req.session, req.database, pos)
    return agg


def typical(values: Sequence[float] | Iterable[float]) -> float:
    """The median (the "typical" count or time across requests)."""
    vals = list(values)
    return statistics.median(vals) if vals else 0


def typical_count(weights: dict[int, int]) -> float:
    """The median of a multiset given as {value: how many times}, as
    :func:`statistics.median` would compute it over the expanded values."""
    n = sum(weights.values())
    if not n:
        return 0
    lo_rank, hi_rank = (n - 1) // 2, n // 2
    lo = hi = None
    seen = 0
    for v in sorted(weights):
        seen += weights[v]
        if lo is None and seen > lo_rank:
            lo = v
        if seen > hi_rank:
            hi = v
            break
    return lo if lo == hi else (lo + hi) / 2


def normalized_of(profile: WorkloadProfile, fp: str, fallback: str) -> str:
    """The normalized SQL of fingerprint ``fp`` in ``profile``, else ``fallback``."""
    stats = profile.fingerprints.get(fp)
    return stats.normalized if stats is not None else fallback


def aggregates_of(profile: WorkloadProfile, det: Detection) -> Aggregates | None:
    """None when the reader already ran the detectors while streaming (use
    ``profile.loops`` / ``profile.redundant``); else, for a profile built by hand from
    ``requests``, the detectors' aggregates over those requests."""
    if profile.detection is not None:
        return None

    def kind_of(st: Statement) -> int:
        return classify(normalized_of(profile, st.fingerprint, st.query))
    return analyse_requests(profile.requests, det, kind_of)
