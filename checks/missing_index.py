"""PG101: logged queries filter, join or sort on columns no index leads with.

The statements come from the query log when one is given (its fingerprints, with a
representative statement and its values), else from pg_stat_statements (its normalized
texts, constants as ``$n``, which parse the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.pgss import PgStatStatements
from auditor.facts.postgres import PostgresFacts, Table
from auditor.facts.workload import NO_STATEMENTS, FingerprintStats
from auditor.model import Finding, Inconclusive, Severity
from auditor.analysis.pgindex import index_fix, serves
from auditor.analysis.predicates import TableAccess, UnparsableSQL, analyze

# Thresholds beyond rules.yaml's params (overridable through the same params mapping).
HIGH_ROWS_FACTOR = 10  # rows >= 10 x min_rows: a large table, the finding is high
HIGH_CALLS = 1000  # this many calls of the shapes needing the index: high as well
SELECTIVE_SHARE = 0.3  # PgHero: a column must cut the rows to 30 % to earn its place
ENOUGH_ROWS = 50  # PgHero: once ~50 rows are left, further columns do not pay
MAX_COLUMNS = 3  # wider indexes rarely pay for their writes
MAX_LISTED = 10  # fingerprints listed in one finding's evidence

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


@dataclass
class Proposal:
    """The index one table access needs: ``columns`` in index order, with why."""
    table: Table
    columns: tuple[str, ...]
    why: dict[str, list[str]]  # column -> ["where =", "join = customers.id", "order by DESC"]
    est_rows: float | None  # rows an equality lookup leaves, by the planner statistics


@dataclass(frozen=True)
class Shape:
    """One statement shape to analyse, from either source: ``texts`` are tried in order
    until one parses (the log's example with its values, then its normalized text; or
    pg_stat_statements' text)."""
    fingerprint: str
    normalized: str
    calls: int
    total_ms: float
    texts: tuple[str, ...]

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class _Source:
    shapes: list[Shape]
    where: str  # "in the log" / "in pg_stat_statements", for messages
    timed: str  # "logged" / "in pg_stat_statements"
    name: str  # evidence["source"]
    stmts: str  # "logged statements" / "statements in pg_stat_statements"
    other_db: str  # the question when none of their tables is in the catalog
    notes: tuple[str, ...] | None = None  # pg_stat_statements' notes (None: the log)


def _from_log(fps: Iterable[FingerprintStats]) -> list[Shape]:
    return [Shape(f.fingerprint, f.normalized, f.calls, f.total_ms,
                  tuple(t for t in (f.example.query, f.normalized) if t)) for f in fps]


def _from_pgss(pgss: PgStatStatements) -> list[Shape]:
    return [Shape(s.fingerprint, s.query, s.calls, s.total_ms, (s.query,))
            for s in pgss.statements.values()]


def _source(facts: Facts) -> _Source:
    if facts.workload is not None:
        return _Source(_from_log(facts.workload.fingerprints.values()), "in the log", "logged",
                       "query log", "logged statements",
                       "was the log written by another database?")
    assert facts.pgss is not None
    return _Source(_from_pgss(facts.pgss), "in pg_stat_statements", "in pg_stat_statements",
                   "pg_stat_statements", "statements in pg_stat_statements",
                   "was the export taken from another database?", tuple(facts.pgss.notes))


@dataclass
class _Group:
    proposal: Proposal
    fingerprints: dict[str, Shape] = field(default_factory=dict)


class MissingIndex(BaseCheck):
    """For each logged query shape (``calls >= min_calls``), the columns its statement
    uses in WHERE equalities and ranges, JOIN conditions and ORDER BY
    (:mod:`auditor.analysis.predicates`), held against the catalog: a table of at least
    ``min_rows`` rows (the planner's estimate) on which no valid index leads with one of
    those columns gets a finding whose fix is ``CREATE INDEX CONCURRENTLY``.

    Index columns, in order: equality columns (WHERE and join lookups) most selective
    first, then one range column, else the ORDER BY columns (order-only shapes need a
    LIMIT: without one the whole table is read anyway). Selectivity comes from
    ``pg_stats`` (n_distinct, null_frac): a column is kept only if it cuts the remaining
    rows to ``SELECTIVE_SHARE`` (30 %), and columns stop once fewer than ``ENOUGH_ROWS``
    (50) rows are left; both after PgHero's ``best_index``. At most ``MAX_COLUMNS`` (3).
    Without statistics every equality column counts, in the statement's order.

    An existing index "serves" a column when it is valid and leads with it and its
    access method fits the use (:func:`auditor.analysis.pgindex.serves`; partial indexes count).

    Params (rules.yaml): ``min_rows`` (1000: below this the planner prefers a seq scan),
    ``min_calls`` (1). Also read, with these defaults: ``high_rows_factor`` (10) and
    ``high_calls`` (1000): a table of ``high_rows_factor * min_rows`` rows or more, or
    that many calls, makes the finding high; medium otherwise.

    One finding per (table, index columns), listing every fingerprint that needs it; an
    index whose columns start another proposal's columns is folded into the longer one.
    Shapes sqlglot cannot parse are skipped; ``Inconclusive`` when the log holds no
    statements, none could be parsed, or none of the tables they read is in the catalog.

    The shapes come from the query log when there is one, else from pg_stat_statements
    (``requires_one_of``): its per-fingerprint calls and total time, and its normalized
    text (no parameter values, so ``IN`` lists count as written). ``evidence["source"]``
    says which (``"query log"`` or ``"pg_stat_statements"``); from pg_stat_statements,
    ``evidence["source_notes"]`` adds the collector's notes (e.g. an export's rows of
    other databases left out, or that they could not be told apart).
    """

    rule_id: ClassVar[str] = "PG101"
    requires: ClassVar[tuple[str, ...]] = ("postgres",)
    requires_one_of: ClassVar[tuple[str, ...]] = ("workload", "pgss")

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        pg = facts.postgres
        assert pg is not None
        src = _source(facts)
        min_rows = int(params.get("min_rows", 1000))
        min_calls = int(params.get("min_calls", 1))
        high_rows = int(params.get("high_rows_factor", HIGH_ROWS_FACTOR)) * min_rows
        high_calls = int(params.get("high_calls", HIGH_CALLS))

        if not src.shapes:
            yield Inconclusive(NO_STATEMENTS if facts.workload is not None
                               else "pg_stat_statements holds no statements (reset recently, "
                                    "or no traffic yet)")
            return

        def columns_of(schema: str | None, name: str):
            t = pg.find_table(name, schema)
            return t.columns if t is not None else None

        considered = parsed = unparsable = 0
        resolved = 0
        unknown_tables: set[str] = set()
        groups: dict[tuple[str, str, tuple[str, ...]], _Group] = {}
        for fp in sorted(src.shapes, key=lambda f: (-f.total_ms, f.fingerprint)):
            if fp.calls < min_calls:
                continue
            considered += 1
            accesses = _parse(fp, columns_of)
            if accesses is None:
                unparsable += 1
                continue
            parsed += 1
            for acc in accesses:
                table = pg.find_table(acc.table, acc.schema)
                if table is None:
                    if (acc.schema or "") not in _SYSTEM_SCHEMAS and not acc.table.startswith("pg_"):
                        unknown_tables.add(f"{acc.schema}.{acc.table}" if acc.schema else acc.table)
                    continue
                resolved += 1
                proposal = advise(acc, table, pg, min_rows)
                if proposal is None:
                    continue
                key = (table.schema, table.name, proposal.columns)
                group = groups.setdefault(key, _Group(proposal))
                for col, why in proposal.why.items():
                    seen = group.proposal.why.setdefault(col, [])
                    seen.extend(w for w in why if w not in seen)
                group.fingerprints[fp.fingerprint] = fp

        if considered == 0:
            yield Inconclusive(f"no query shape {src.where} ran at least {min_calls} times (min_calls)")
            return
        if parsed == 0:
            yield Inconclusive(f"none of the {unparsable} query shapes {src.where} could be parsed")
            return
        if resolved == 0 and unknown_tables:
            names = ", ".join(sorted(unknown_tables)[:5])
            yield Inconclusive(
                f"none of the tables the {src.stmts} read ({names}) is in the catalog of "
                f"database {pg.database}: {src.other_db}")
            return

        for group in _fold_prefixes(groups).values():
            yield self._finding(group, pg, min_rows, high_rows, high_calls, src)

    def _finding(self, group: _Group, pg: PostgresFacts, min_rows: int, high_rows: int,
                 high_calls: int, src: _Source) -> Finding:
        p = group.proposal
        t = p.table
        fps = sorted(group.fingerprints.values(), key=lambda f: (-f.total_ms, f.fingerprint))
        calls = sum(f.calls for f in fps)
        total_ms = sum(f.total_ms for f in fps)
        existing = pg.indexes_on(t.schema, t.name)
        fix = index_fix(t.schema, t.name, p.columns, (i for i in pg.indexes if i.schema == t.schema))
        cols = ", ".join(p.columns)
        severity = Severity.HIGH if (t.rows_estimate >= high_rows or calls >= high_calls) else Severity.MEDIUM
        shapes = f"{len(fps)} query shape{'s' if len(fps) != 1 else ''}"
        message = (f"{t.qualified} (~{t.rows_estimate:,} rows) is read by {shapes} using ({cols}) "
                   f"({calls:,} calls, {total_ms:,.0f} ms {src.timed}) and no index leads with "
                   f"{'any of these columns' if len(p.columns) > 1 else 'it'}")
        return Finding(
            rule_id=self.rule_id,
            message=message,
            fix=fix,
            key=f"{t.qualified}({','.join(p.columns)})",
            location=t.qualified,
            severity=severity,
            evidence={
                "table": {"name": t.qualified, "rows_estimate": t.rows_estimate,
                          "size_bytes": t.size_bytes, "seq_scan": t.seq_scan,
                          "seq_tup_read": t.seq_tup_read, "idx_scan": t.idx_scan},
                "columns": [{"column": c, "why": p.why.get(c, [])} for c in p.columns],
                "estimated_rows_per_lookup": round(p.est_rows, 1) if p.est_rows is not None else None,
                "existing_indexes": [i.definition + ("" if i.valid else " (INVALID)") for i in existing],
                "fingerprints": [
                    {"fingerprint": f.fingerprint, "normalized": f.normalized, "calls": f.calls,
                     "total_ms": round(f.total_ms, 3), "mean_ms": round(f.mean_ms, 3)}
                    for f in fps[:MAX_LISTED]],
                "more_fingerprints": max(0, len(fps) - MAX_LISTED),
                "calls": calls,
                "total_ms": round(total_ms, 3),
                "mean_ms": round(total_ms / calls, 3) if calls else 0.0,
                "min_rows": min_rows,
                "source": src.name,
                **({"source_notes": list(src.notes)} if src.notes is not None else {}),
            },
        )


def _parse(fp: Shape, columns_of) -> list[TableAccess] | None:
    for text in fp.texts:
        try:
            return analyze(text, columns_of)
        except UnparsableSQL:
            continue
    return None


def _fraction(pg: PostgresFacts, t: Table, acc: TableAccess, col: str) -> float | None:
    """Share of the table's rows one value of ``col`` leaves (pg_stats), None if unknown."""
    st = pg.column_stat(t.schema, t.name, col)
    if st is None or t.rows_estimate <= 0:
        return None
    if col in acc.is_null_columns and col not in acc.in_values:
        return st.null_frac
    distinct = st.n_distinct if st.n_distinct > 0 else -st.n_distinct * t.rows_estimate
    if distinct <= 0:
        return None
    per_value = (1.0 - st.null_frac) / distinct
    return min(1.0, per_value * acc.in_values.get(col, 1))


def advise(acc: TableAccess, t: Table, pg: PostgresFacts, min_rows: int) -> Proposal | None:
    """The index ``acc`` needs on ``t``, or None (small table, nothing selective, or an
    existing index already serves one of its columns)."""
    if t.rows_estimate < min_rows:
        return None
    rows = float(t.rows_estimate)
    why: dict[str, list[str]] = {}
    for u in acc.uses:
        label = {"where": "where", "join": "join", "order by": "order by"}[u.clause]
        why.setdefault(u.column, []).append(f"{label} {u.op}")

    eq = [(c, _fraction(pg, t, acc, c)) for c in acc.eq]
    known = sorted((x for x in eq if x[1] is not None), key=lambda x: x[1])
    unknown = [x for x in eq if x[1] is None]
    selective = [x for x in known if x[1] <= SELECTIVE_SHARE] + unknown
    chosen: list[str] = []
    remaining = rows
    estimated = False
    for col, frac in selective:
        if len(chosen) >= MAX_COLUMNS or remaining < ENOUGH_ROWS:
            break
        if frac is not None:
            remaining *= frac
            estimated = True
        chosen.append(col)
    ranged = [c for c in acc.range if c not in chosen]
    if ranged and len(chosen) < MAX_COLUMNS and remaining >= ENOUGH_ROWS:
        chosen.append(ranged[0])
    elif (acc.order and (chosen or acc.has_limit) and remaining >= ENOUGH_ROWS
          and not (set(acc.range) & set(chosen))):
        for c in acc.order:
            if len(chosen) >= MAX_COLUMNS:
                break
            if c not in chosen:
                chosen.append(c)
    if not chosen:
        return None

    # does an existing index already give the planner a way in?
    indexes = pg.indexes_on(t.schema, t.name)
    filters = [(c, "eq") for c, _ in selective] + [(c, "range") for c in acc.range]
    if not filters:  # order-only: a B-tree leading with the first ORDER BY column
        filters = [(acc.order[0], "order")]
    if any(serves(ix, c, kind) for ix in indexes for c, kind in filters):
        return None
    return Proposal(t, tuple(chosen), {c: why.get(c, []) for c in chosen},
                    remaining if estimated else None)


def _fold_prefixes(groups: dict[tuple[str, str, tuple[str, ...]], _Group]
                   ) -> dict[tuple[str, str, tuple[str, ...]], _Group]:
    """Fold a proposal whose columns start a longer one on the same table into it."""
    keys = sorted(groups, key=lambda k: (k[0], k[1], -len(k[2]), k[2]))
    out: dict[tuple[str, str, tuple[str, ...]], _Group] = {}
    for key in keys:
        schema, table, cols = key
        host = next((k for k in out if k[0] == schema and k[1] == table
                     and len(k[2]) > len(cols) and k[2][:len(cols)] == cols), None)
        if host is None:
            out[key] = groups[key]
            continue
        target, source = out[host], groups[key]
        target.fingerprints.update(source.fingerprints)
        for col, why in source.proposal.why.items():
            seen = target.proposal.why.setdefault(col, [])
            seen.extend(w for w in why if w not in seen)
    return out
