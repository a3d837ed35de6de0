"""Which columns a SQL statement filters, joins and sorts on, per table (pure; no I/O).

    accesses = analyze("SELECT * FROM orders o WHERE o.customer_id = $1 ORDER BY o.created_at LIMIT 20")
    accesses[0].table, accesses[0].eq, accesses[0].order   # 'orders', ['customer_id'], ['created_at']

Parsed with sqlglot (dialect ``postgres``); ``$n`` placeholders are accepted. Each SELECT
scope (the statement, its CTEs, subqueries and derived tables) and the target of an
UPDATE/DELETE is read separately; for every base table it yields a :class:`TableAccess`:

- ``eq``: columns compared for equality with a value that does not depend on another
  table of the same scope: ``=``, ``IN (...)``, ``= ANY(...)``, ``IS NULL``, an ``OR`` of
  equalities on one column, and join columns (``a.x = b.y``) on the side that is looked
  up while the other side is filtered (or drives the scope through ORDER BY ... LIMIT).
  A join between two unfiltered tables is left out: the planner hashes both, and an
  index would not be used.
- ``range``: ``<``, ``<=``, ``>``, ``>=``, ``BETWEEN``.
- ``order``: the leading ORDER BY items that are plain columns of that table, sorted in
  one direction (a B-tree is read backwards for DESC; mixed directions stop the list).
  ``ORDER BY 1`` and output aliases are resolved to their columns.

Left out, because a plain B-tree index does not serve them: ``<>``, ``NOT IN``, ``IS NOT
NULL``, ``LIKE``/``ILIKE``, an ``OR`` across columns, and expressions on the column
(``lower(email) = ...``, ``col::text = ...``). Columns of a CTE or derived table are
followed into it when PostgreSQL would inline it (a plain single-table SELECT, a CTE
referenced once and not ``MATERIALIZED``). Views are not expanded.

Unqualified columns in a scope with several tables are resolved through ``columns_of``
(a catalog lookup) when given; otherwise, or when still ambiguous, they are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from auditor.redact_sql import quiet_sqlglot

__all__ = ["TableAccess", "ColumnUse", "analyze", "UnparsableSQL"]

ColumnsOf = Callable[[str | None, str], Sequence[str] | None]


class UnparsableSQL(ValueError):
    """sqlglot could not parse the statement."""


@dataclass(frozen=True)
class ColumnUse:
    """One use of a column: ``kind`` eq/range/order, ``clause`` where/join/order by, ``op``
    the operator as written (``=``, ``IN``, ``IS NULL``, ``>``, ``BETWEEN``, ``= b.id`` ...)."""
    column: str
    kind: str
    clause: str
    op: str


@dataclass
class TableAccess:
    """How one scope of a statement reads one table. ``schema`` is None when the
    statement does not qualify the name. Column lists keep the order of first appearance."""
    schema: str | None
    table: str
    eq: list[str] = field(default_factory=list)
    range: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    has_limit: bool = False
    uses: list[ColumnUse] = field(default_factory=list)
    in_values: dict[str, int] = field(default_factory=dict)  # eq column -> values in its IN list

    def add(self, column: str, kind: str, clause: str, op: str) -> None:
        target = {"eq": self.eq, "range": self.range, "order": self.order}[kind]
        if column not in target:
            target.append(column)
        use = ColumnUse(column, kind, clause, op)
        if use not in self.uses:
            self.uses.append(use)

    @property
    def is_null_columns(self) -> set[str]:
        return {u.column for u in self.uses if u.op == "IS NULL"}


# -- entry point ---------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\$(\d+)""")


def _prepare(sql: str) -> str:
    # sqlglot reads "$2,$3" as a dollar-quoted string: turn $n into :pn outside literals
    return _PLACEHOLDER.sub(lambda m: f":p{m.group(1)}" if m.group(1) else m.group(0), sql)


def analyze(sql: str, columns_of: ColumnsOf | None = None) -> list[TableAccess]:
    """The table accesses of every statement in ``sql`` (see the module docstring).

    Raises UnparsableSQL when sqlglot cannot parse it. Statements without tables
    (SET, BEGIN, SELECT 1) yield nothing."""
    try:
        with quiet_sqlglot():  # its warnings would echo the statement, values and all
            statements = sqlglot.parse(_prepare(sql), read="postgres")
    except (SqlglotError, RecursionError) as exc:
        raise UnparsableSQL(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    out: list[TableAccess] = []
    for stmt in statements:
        if stmt is None:
            continue
        try:
            out.extend(_statement(stmt, columns_of))
        except (SqlglotError, RecursionError) as exc:
            raise UnparsableSQL(str(exc).splitlines()[0]) from None
    return out


def _statement(stmt: exp.Expression, columns_of: ColumnsOf | None) -> Iterator[TableAccess]:
    if isinstance(stmt, (exp.Update, exp.Delete)):
        yield from _dml(stmt, columns_of)
    for top in _top_level_queries(stmt):
        for scope in traverse_scope(top):
            if isinstance(scope.expression, exp.Select):
                yield from _ScopeReader(scope, columns_of, stmt).read()


def _top_level_queries(node: exp.Expression) -> Iterator[exp.Expression]:
    """SELECT/UNION nodes not nested in another query (traverse_scope finds the rest)."""
    if isinstance(node, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        yield node
        return
    for child in node.iter_expressions():
        yield from _top_level_queries(child)


# -- names ---------------------------------------------------------------------------
def _ident(node: exp.Expression | None) -> str | None:
    """An identifier as PostgreSQL folds it: unquoted names to lower case."""
    if node is None:
        return None
    if isinstance(node, exp.Identifier):
        return node.this if node.quoted else node.this.lower()
    name = getattr(node, "name", None)
    return name.lower() if isinstance(name, str) and name else None


@dataclass(frozen=True)
class _Ref:
    schema: str | None
    table: str


def _table_ref(t: exp.Table) -> _Ref | None:
    if not isinstance(t.this, exp.Identifier):  # a function in FROM (generate_series ...)
        return None
    return _Ref(_ident(t.args.get("db")), _ident(t.this))


# -- predicates ------------------------------------------------------------------------
def _conjuncts(node: exp.Expression | None) -> Iterator[exp.Expression]:
    if node is None:
        return
    if isinstance(node, exp.Paren):
        yield from _conjuncts(node.this)
    elif isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    else:
        yield node


def _disjuncts(node: exp.Expression) -> Iterator[exp.Expression]:
    if isinstance(node, exp.Paren):
        yield from _disjuncts(node.this)
    elif isinstance(node, exp.Or):
        yield from _disjuncts(node.this)
        yield from _disjuncts(node.expression)
    else:
        yield node


_RANGE = {exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def _columns_outside_subqueries(node: exp.Expression) -> Iterator[exp.Column]:
    if isinstance(node, exp.Column):
        yield node
        return
    if isinstance(node, (exp.Subquery, exp.Select, exp.Union)):
        return
    for child in node.iter_expressions():
        yield from _columns_outside_subqueries(child)


class _ScopeReader:
    """Reads one SELECT scope (or an UPDATE/DELETE target) into TableAccess values."""

    def __init__(self, scope: Scope | None, columns_of: ColumnsOf | None,
                 statement: exp.Expression, sources: dict[str, _Ref] | None = None,
                 select: exp.Expression | None = None) -> None:
        self.scope = scope
        self.columns_of = columns_of
        self.statement = statement
        self.select = select if select is not None else scope.expression
        # alias -> _Ref (a base table) or Scope (a CTE / derived table)
        self.sources: dict[str, _Ref | Scope] = {}
        if sources is not None:
            self.sources.update(sources)
        else:
            for name, (_node, src) in scope.selected_sources.items():
                if isinstance(src, exp.Table):
                    ref = _table_ref(src)
                    if ref is not None:
                        self.sources[name.lower() if not _quoted_alias(src) else name] = ref
                elif isinstance(src, Scope):
                    self.sources[name] = src
                    self.sources.setdefault(name.lower(), src)
        self.accesses: dict[_Ref, TableAccess] = {}

    # -- resolution ----------------------------------------------------------------
    def access(self, ref: _Ref) -> TableAccess:
        if ref not in self.accesses:
            self.accesses[ref] = TableAccess(ref.schema, ref.table)
        return self.accesses[ref]

    def resolve(self, col: exp.Column) -> tuple[_Ref, str] | None | bool:
        """(table, column) for a column of this scope's tables; False for a column of an
        outer scope (a constant here); None when it cannot be resolved."""
        if not isinstance(col.this, exp.Identifier):
            return None
        name = _ident(col.this)
        qualifier = col.args.get("table")
        if qualifier is not None:
            key = _ident(qualifier)
            src = self.sources.get(key) or self.sources.get(qualifier.name)
            if src is None:
                return False  # correlated reference to an outer query
            return self._through(src, name)
        candidates = list(dict.fromkeys(self.sources.values()))
        known = {id(c): self._known_columns(c) for c in candidates}
        hits = [c for c in candidates if known[id(c)] is not None and name in known[id(c)]]
        if len(hits) == 1:
            return self._through(hits[0], name)
        if hits:
            return None  # ambiguous
        if all(known[id(c)] is not None for c in candidates):
            return False  # no table of this scope has it: an outer query's column
        unknown = [c for c in candidates if known[id(c)] is None]
        return self._through(unknown[0], name) if len(unknown) == 1 else None

    def _known_columns(self, src: "_Ref | Scope") -> set[str] | None:
        if isinstance(src, _Ref):
            cols = self.columns_of(src.schema, src.table) if self.columns_of else None
            return set(cols) if cols is not None else None
        names = _scope_output_names(src)
        return None if "*" in names else names

    def _through(self, src: _Ref | Scope, name: str, depth: int = 0) -> tuple[_Ref, str] | None:
        if isinstance(src, _Ref):
            return src, name
        if depth > 5 or not _inlinable(src, self.statement):
            return None
        inner = src.expression
        inner_sources = [s for _n, (_node, s) in src.selected_sources.items()]
        if len(inner_sources) != 1:
            return None
        target = inner_sources[0]
        column = _projected_column(inner, name)
        if column is None:
            return None
        if isinstance(target, exp.Table):
            ref = _table_ref(target)
            return (ref, column) if ref is not None else None
        if isinstance(target, Scope):
            return self._through(target, column, depth + 1)
        return None

    def is_constant(self, node: exp.Expression) -> bool:
        """True when ``node`` depends on no table of this scope."""
        for col in _columns_outside_subqueries(node):
            r = self.resolve(col)
            if r is not False:
                return False
        return True

    def column_of(self, node: exp.Expression) -> tuple[_Ref, str] | None:
        node = node.this if isinstance(node, exp.Paren) else node
        if isinstance(node, exp.Column):
            r = self.resolve(node)
            return r if isinstance(r, tuple) else None
        return None

    # -- reading ---------------------------------------------------------------------
    def read(self) -> list[TableAccess]:
        sel = self.select
        joins: list[tuple[tuple[_Ref, str], tuple[_Ref, str], str]] = []
        for c in _conjuncts(sel.args.get("where").this if sel.args.get("where") else None):
            self.predicate(c, "where", joins)
        for j in sel.args.get("joins") or ():
            for c in _conjuncts(j.args.get("on")):
                self.predicate(c, "join", joins)
            self.using(j, joins)
        for ref in self.sources.values():  # every base table read shows, even unfiltered
            if isinstance(ref, _Ref):
                self.access(ref)
        limited = sel.args.get("limit") is not None or sel.args.get("fetch") is not None
        order_table = self.order_by(sel, limited)
        driving = {ref for ref, a in self.accesses.items() if a.eq or a.range}
        if order_table is not None and limited:
            driving.add(order_table)
        for (ra, ca), (rb, cb), op in joins:
            if ra == rb:
                continue
            if rb in driving:
                self.access(ra).add(ca, "eq", "join", f"= {rb.table}.{cb}")
            if ra in driving:
                self.access(rb).add(cb, "eq", "join", f"= {ra.table}.{ca}")
        for a in self.accesses.values():
            a.has_limit = limited
        return list(self.accesses.values())

    def predicate(self, node: exp.Expression, clause: str, joins: list) -> None:
        if isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.EQ):
            left, right = node.this, node.expression
            lc, rc = self.column_of(left), self.column_of(right)
            if lc and rc:
                joins.append((lc, rc, "="))
                return
            for col, other in ((lc, right), (rc, left)):
                if col and self.is_constant(other):
                    op = "= ANY" if isinstance(other, exp.Any) else "="
                    self.access(col[0]).add(col[1], "eq", clause, op)
                    return
        elif isinstance(node, exp.In):
            col = self.column_of(node.this)
            if col and all(self.is_constant(e) for e in node.expressions):
                self.access(col[0]).add(col[1], "eq", clause, "IN")
                if node.expressions:
                    self.access(col[0]).in_values[col[1]] = len(node.expressions)
        elif isinstance(node, exp.Is):
            col = self.column_of(node.this)
            if col and isinstance(node.expression, exp.Null) and not node.args.get("negate"):
                self.access(col[0]).add(col[1], "eq", clause, "IS NULL")
        elif type(node) in _RANGE:
            op = _RANGE[type(node)]
            lc, rc = self.column_of(node.this), self.column_of(node.expression)
            if lc and not rc and self.is_constant(node.expression):
                self.access(lc[0]).add(lc[1], "range", clause, op)
            elif rc and not lc and self.is_constant(node.this):
                self.access(rc[0]).add(rc[1], "range", clause, _FLIP[op])
        elif isinstance(node, exp.Between):
            col = self.column_of(node.this)
            if col and self.is_constant(node.args["low"]) and self.is_constant(node.args["high"]):
                self.access(col[0]).add(col[1], "range", clause, "BETWEEN")
        elif isinstance(node, exp.Or):
            arms = list(_disjuncts(node))
            cols = set()
            for arm in arms:
                if isinstance(arm, exp.EQ):
                    c = self.column_of(arm.this)
                    if c and self.is_constant(arm.expression):
                        cols.add(c)
                        continue
                    c = self.column_of(arm.expression)
                    if c and self.is_constant(arm.this):
                        cols.add(c)
                        continue
                elif isinstance(arm, exp.In):
                    c = self.column_of(arm.this)
                    if c and all(self.is_constant(e) for e in arm.expressions):
                        cols.add(c)
                        continue
                return  # an arm that is not an equality: no index column
            if len(cols) == 1:
                (ref, name), = cols
                self.access(ref).add(name, "eq", clause, "OR =")

    def using(self, join: exp.Join, joins: list) -> None:
        names = [_ident(i) for i in join.args.get("using") or ()]
        if not names:
            return
        right = join.this
        right_ref = _table_ref(right) if isinstance(right, exp.Table) else None
        left_refs = [s for s in self.sources.values() if isinstance(s, _Ref) and s != right_ref]
        if right_ref is None or not left_refs:
            return
        for name in names:
            joins.append(((left_refs[0], name), (right_ref, name), "="))

    def order_by(self, sel: exp.Expression, limited: bool) -> _Ref | None:
        order = sel.args.get("order")
        if order is None:
            return None
        projections = sel.expressions
        aliases = {_ident(p.args.get("alias")): p.this for p in projections if isinstance(p, exp.Alias)}
        table: _Ref | None = None
        direction: bool | None = None
        for item in order.expressions:
            node = item.this
            if isinstance(node, exp.Literal) and not node.is_string:
                k = int(node.name)
                if not 1 <= k <= len(projections):
                    break
                node = projections[k - 1]
                node = node.this if isinstance(node, exp.Alias) else node
            elif (isinstance(node, exp.Column) and node.args.get("table") is None
                  and _ident(node.this) in aliases):
                node = aliases[_ident(node.this)]
            col = self.column_of(node)
            if col is None:
                break
            desc = bool(item.args.get("desc"))
            if table is None:
                table, direction = col[0], desc
            elif col[0] != table or desc != direction:
                break
            self.access(table).add(col[1], "order", "order by", "DESC" if desc else "ASC")
        return table


def _quoted_alias(t: exp.Table) -> bool:
    alias = t.args.get("alias")
    ident = alias.this if alias is not None else t.this
    return isinstance(ident, exp.Identifier) and ident.quoted


def _inlinable(scope: Scope, statement: exp.Expression) -> bool:
    """Would PostgreSQL pull this CTE / derived table up into the outer query?"""
    sel = scope.expression
    if not isinstance(sel, exp.Select):
        return False
    for arg in ("group", "having", "limit", "offset", "distinct", "fetch"):
        if sel.args.get(arg):
            return False
    if any(isinstance(p, (exp.AggFunc, exp.Window)) or p.find(exp.AggFunc, exp.Window)
           for p in sel.expressions):
        return False
    parent = sel.parent
    if isinstance(parent, exp.CTE):
        materialized = parent.args.get("materialized")
        if materialized is True:
            return False
        if materialized is None:  # PostgreSQL 12+: inlined when referenced once
            name = parent.alias_or_name
            refs = sum(1 for t in statement.find_all(exp.Table)
                       if isinstance(t.this, exp.Identifier) and t.name == name and not t.args.get("db"))
            if refs != 1:
                return False
    return True


def _projected_column(sel: exp.Select, name: str) -> str | None:
    """The column of the inner SELECT that its output column ``name`` is."""
    for p in sel.expressions:
        if isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star)):
            return name
        if isinstance(p, exp.Alias) and _ident(p.args.get("alias")) == name:
            return _ident(p.this.this) if isinstance(p.this, exp.Column) else None
        if isinstance(p, exp.Column) and _ident(p.this) == name:
            return name
    return None


def _scope_output_names(scope: Scope) -> set[str]:
    sel = scope.expression
    names: set[str] = set()
    if isinstance(sel, exp.Select):
        for p in sel.expressions:
            if isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star)):
                names.add("*")
            elif isinstance(p, exp.Alias):
                names.add(_ident(p.args.get("alias")))
            elif isinstance(p, exp.Column) and isinstance(p.this, exp.Identifier):
                names.add(_ident(p.this))
    return names


# -- UPDATE / DELETE -------------------------------------------------------------------
def _dml(stmt: exp.Expression, columns_of: ColumnsOf | None) -> Iterator[TableAccess]:
    target = stmt.this
    if not isinstance(target, exp.Table):
        return
    tables = [target]
    extra = stmt.args.get("from") or stmt.args.get("from_")
    if isinstance(extra, exp.From):
        tables.append(extra.this)
    for t in stmt.args.get("using") or ():
        tables.append(t)
    for j in stmt.args.get("joins") or ():
        tables.append(j.this)
    sources: dict[str, _Ref] = {}
    for t in tables:
        if isinstance(t, exp.Table):
            ref = _table_ref(t)
            if ref is not None:
                alias = t.args.get("alias")
                key = _ident(alias.this) if alias is not None else ref.table
                sources[key] = ref
    reader = _ScopeReader(None, columns_of, stmt, sources=sources, select=stmt)
    yield from reader.read()
