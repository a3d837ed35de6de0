"""PG102: foreign keys with no index leading with their columns."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.postgres import ForeignKey, Index
from auditor.model import Finding, Inconclusive
from auditor.analysis.pgindex import index_fix, qualified


def covers(ix: Index, fk: ForeignKey) -> bool:
    """True when ``ix`` serves lookups on ``fk``'s columns: valid, not partial (a partial
    index misses the rows outside its predicate), and its first ``len(fk.columns)`` key
    columns are the foreign key's columns in any order. B-tree always; hash only for a
    one-column key (hash indexes have one column); other methods never (the lookups the
    referential-integrity triggers run are plain equalities)."""
    if not ix.valid or ix.partial:
        return False
    n = len(fk.columns)
    if ix.method == "hash":
        if n != 1:
            return False
    elif ix.method != "btree":
        return False
    lead = ix.columns[:n]
    return len(lead) == n and None not in lead and set(lead) == set(fk.columns)


class UnindexedForeignKey(BaseCheck):
    """Every foreign key of the catalog whose referencing table has no index covering
    its columns (:func:`covers`) is a finding: PostgreSQL indexes the referenced key, not
    the referencing side, so each DELETE (or key UPDATE) on the referenced table and each
    join on the key seq-scans the referencing table.

    Params (rules.yaml): ``min_rows`` (0: report even small tables, they grow): tables
    whose planner row estimate is below it are skipped. Severity: the rule's.

    The fix creates a B-tree on the foreign-key columns in key order, CONCURRENTLY.
    Foreign keys cloned onto partitions are not listed (the collector keeps the parent's).
    """

    rule_id: ClassVar[str] = "PG102"
    requires: ClassVar[tuple[str, ...]] = ("postgres",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        pg = facts.postgres
        assert pg is not None
        min_rows = int(params.get("min_rows", 0))
        for fk in sorted(pg.foreign_keys, key=lambda k: (k.schema, k.table, k.name)):
            table = pg.table(fk.schema, fk.table)
            if table is not None and table.rows_estimate < min_rows:
                continue
            existing = pg.indexes_on(fk.schema, fk.table)
            if any(covers(ix, fk) for ix in existing):
                continue
            fix = index_fix(fk.schema, fk.table, fk.columns,
                            (i for i in pg.indexes if i.schema == fk.schema))
            where = qualified(fk.schema, fk.table)
            ref = qualified(fk.ref_schema, fk.ref_table)
            cols = ", ".join(fk.columns)
            rows = table.rows_estimate if table is not None else None
            size = f" (~{rows:,} rows)" if rows is not None else ""
            yield Finding(
                rule_id=self.rule_id,
                message=(f"foreign key {fk.name} on {where}({cols}){size} references "
                         f"{ref}({', '.join(fk.ref_columns)}) but no index leads with "
                         f"{'these columns' if len(fk.columns) > 1 else 'it'}"),
                fix=fix,
                key=f"{fk.schema}.{fk.table}:{fk.name}",
                location=f"{fk.schema}.{fk.table}",
                evidence={
                    "constraint": fk.name,
                    "table": f"{fk.schema}.{fk.table}",
                    "columns": list(fk.columns),
                    "references": f"{fk.ref_schema}.{fk.ref_table}",
                    "ref_columns": list(fk.ref_columns),
                    "rows_estimate": rows,
                    "size_bytes": table.size_bytes if table is not None else None,
                    "seq_scan": table.seq_scan if table is not None else None,
                    "existing_indexes": [i.definition + ("" if i.valid else " (INVALID)")
                                         for i in existing],
                },
            )
