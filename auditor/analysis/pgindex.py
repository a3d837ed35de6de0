"""Index helpers shared by the PostgreSQL checks (pure; no I/O): quoting, index names,
the ``CREATE INDEX CONCURRENTLY`` text, and whether an existing index can serve a column.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, Sequence

from auditor.facts.postgres import Index

# PostgreSQL's reserved key words (and the type/function-name ones that cannot be a
# bare column name), from the SQL Key Words appendix of the PostgreSQL 15 manual.
_RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric authorization binary both case cast
check collate collation column concurrently constraint create cross current_catalog
current_date current_role current_schema current_time current_timestamp current_user
default deferrable desc distinct do else end except false fetch for foreign freeze from
full grant group having ilike in initially inner intersect into is isnull join lateral
leading left like limit localtime localtimestamp natural not notnull null offset on only
or order outer overlaps placing primary references returning right select session_user
similar some symmetric system_user table tablesample then to trailing true union unique
user using variadic verbose when where window with
""".split())
_BARE = re.compile(r"^[a-z_][a-z0-9_$]*$")
NAMEDATALEN = 63  # longest identifier PostgreSQL keeps, in bytes


def quote_ident(name: str) -> str:
    """``name`` as PostgreSQL's quote_ident would write it (double quotes when needed)."""
    if _BARE.match(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def index_name(table: str, columns: Sequence[str], taken: Iterable[str] = ()) -> str:
    """``<table>_<col>_<col>_idx`` (PostgreSQL's own naming), shortened with a hash to
    fit 63 bytes, and suffixed ``_1``, ``_2`` ... when ``taken`` already holds it. The
    same table and columns always give the same name (idempotent advice)."""
    base = f"{table}_{'_'.join(columns)}_idx"
    if len(base.encode()) > NAMEDATALEN:
        digest = hashlib.sha1(base.encode()).hexdigest()[:8]
        head = base.encode()[:NAMEDATALEN - 13].decode(errors="ignore")
        base = f"{head}_{digest}_idx"
    taken = set(taken)
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base[:NAMEDATALEN - len(str(n)) - 1]}_{n}"
    return name


def create_index_sql(schema: str, table: str, columns: Sequence[str],
                     taken: Iterable[str] = ()) -> str:
    """``CREATE INDEX CONCURRENTLY <name> ON <schema>.<table> (<cols>);`` (B-tree;
    CONCURRENTLY so writes go on while it builds; it cannot run inside a transaction)."""
    name = index_name(table, columns, taken)
    cols = ", ".join(quote_ident(c) for c in columns)
    return f"CREATE INDEX CONCURRENTLY {quote_ident(name)} ON {qualified(schema, table)} ({cols});"


def serves(ix: Index, column: str, kind: str) -> bool:
    """Can ``ix`` (valid, leading with ``column``) serve a predicate of ``kind``?

    kind: "eq" (=, IN, IS NULL), "range" (<, >, BETWEEN) or "order" (ORDER BY). B-tree
    serves all three; hash only equality; BRIN only ranges; GiST, SP-GiST and GIN are
    given the benefit of the doubt for eq and range (their operator classes decide, which
    the catalog facts do not hold) and never serve ORDER BY."""
    if not ix.valid or not ix.columns or ix.columns[0] != column:
        return False
    method = ix.method
    if method == "btree":
        return True
    if method == "hash":
        return kind == "eq"
    if method == "brin":
        return kind == "range"
    return kind in ("eq", "range")


def index_fix(schema: str, table: str, columns: Sequence[str], schema_indexes: Iterable[Index]) -> str:
    """The DDL that adds a B-tree on ``columns``: :func:`create_index_sql`, preceded by
    ``DROP INDEX CONCURRENTLY`` when an INVALID index on exactly these columns is left
    over from a failed ``CREATE INDEX CONCURRENTLY`` (rebuilt under its own name).
    ``schema_indexes``: the indexes of ``schema`` (their names are taken)."""
    schema_indexes = list(schema_indexes)
    leftover = next((i for i in schema_indexes if i.table == table and not i.valid
                     and tuple(i.columns) == tuple(columns)), None)
    if leftover is None:
        return create_index_sql(schema, table, columns, (i.name for i in schema_indexes))
    cols = ", ".join(quote_ident(c) for c in columns)
    return (f"DROP INDEX CONCURRENTLY {qualified(schema, leftover.name)}; "
            f"CREATE INDEX CONCURRENTLY {quote_ident(leftover.name)} ON {qualified(schema, table)} ({cols});")
