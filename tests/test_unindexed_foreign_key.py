"""PG102 UnindexedForeignKey against a real database seeded with covered and uncovered
foreign keys; applying each finding's fix makes it go away."""

from __future__ import annotations

import psycopg
import pytest

from auditor.collectors.postgres import PostgresCollector
from auditor.facts import Facts
from auditor.facts.postgres import ForeignKey, Index, PostgresFacts, Table
from auditor.model import Finding
from checks.unindexed_foreign_key import UnindexedForeignKey, covers

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY);
CREATE TABLE products (id int PRIMARY KEY);
CREATE TABLE warehouses (region text, code int, PRIMARY KEY (region, code));
-- 1. no index at all
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers (id), note text);
-- 2. covered by an index on exactly the column
CREATE TABLE invoices (id int PRIMARY KEY, order_id bigint REFERENCES orders (id));
CREATE INDEX invoices_order_id_idx ON invoices (order_id);
-- 3. covered by a composite whose leading column is the FK
CREATE TABLE payments (id int PRIMARY KEY, order_id bigint REFERENCES orders (id), paid_at timestamptz);
CREATE INDEX payments_order_paid_idx ON payments (order_id, paid_at);
-- 4. the FK column is second in the only index: not covered
CREATE TABLE reviews (id int PRIMARY KEY, product_id int REFERENCES products (id), stars int);
CREATE INDEX reviews_stars_product_idx ON reviews (stars, product_id);
-- 5. a partial index does not cover
CREATE TABLE returns (id int PRIMARY KEY, order_id bigint REFERENCES orders (id), open bool);
CREATE INDEX returns_open_order_idx ON returns (order_id) WHERE open;
-- 6. a hash index on the one column covers
CREATE TABLE refunds (id int PRIMARY KEY, order_id bigint REFERENCES orders (id));
CREATE INDEX refunds_order_hash ON refunds USING hash (order_id);
-- 7. composite FK covered in another order (leading set matches)
CREATE TABLE stock (warehouse_region text, warehouse_code int, sku text,
  FOREIGN KEY (warehouse_region, warehouse_code) REFERENCES warehouses (region, code));
CREATE INDEX stock_wh_idx ON stock (warehouse_code, warehouse_region, sku);
-- 8. composite FK, index covers only one of its columns
CREATE TABLE shelves (warehouse_region text, warehouse_code int,
  CONSTRAINT shelves_wh_fk FOREIGN KEY (warehouse_region, warehouse_code) REFERENCES warehouses (region, code));
CREATE INDEX shelves_code_idx ON shelves (warehouse_code);
-- 9. an expression index does not cover
CREATE TABLE tags (id int PRIMARY KEY, product_id int REFERENCES products (id));
CREATE INDEX tags_expr_idx ON tags ((product_id + 0));
-- 10. quoted names in another schema
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Line" ("Id" int PRIMARY KEY, "OrderId" bigint REFERENCES orders (id));
INSERT INTO customers SELECT generate_series(1, 100);
INSERT INTO orders SELECT n, 1 + n % 100, '' FROM generate_series(1, 3000) n;
ANALYZE;
"""


def _run(pg: PostgresFacts, **params) -> list[Finding]:
    out = list(UnindexedForeignKey().run(Facts(postgres=pg), {"min_rows": 0, **params}))
    assert all(isinstance(o, Finding) for o in out)
    return out


@pytest.fixture
def seeded(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return fresh_db


def test_findings_on_a_real_catalog_and_fixes_that_work(seeded):
    pg = PostgresCollector(seeded).collect()
    found = {(f.location, tuple(f.evidence["columns"])): f for f in _run(pg)}
    assert set(found) == {
        ("public.orders", ("customer_id",)),
        ("public.reviews", ("product_id",)),
        ("public.returns", ("order_id",)),
        ("public.shelves", ("warehouse_region", "warehouse_code")),
        ("public.tags", ("product_id",)),
        ("Sales.Line", ("OrderId",)),
    }
    orders = found[("public.orders", ("customer_id",))]
    assert orders.fix == "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders (customer_id);"
    assert orders.key == "public.orders:orders_customer_id_fkey"
    assert orders.evidence["references"] == "public.customers" and orders.evidence["ref_columns"] == ["id"]
    assert orders.evidence["rows_estimate"] == 3000
    assert orders.evidence["existing_indexes"] == [
        "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)"]
    assert "orders_customer_id_fkey" in orders.message and "public.customers(id)" in orders.message
    shelves = found[("public.shelves", ("warehouse_region", "warehouse_code"))]
    assert shelves.fix == ("CREATE INDEX CONCURRENTLY shelves_warehouse_region_warehouse_code_idx "
                           "ON public.shelves (warehouse_region, warehouse_code);")
    line = found[("Sales.Line", ("OrderId",))]
    assert line.fix == 'CREATE INDEX CONCURRENTLY "Line_OrderId_idx" ON "Sales"."Line" ("OrderId");'

    with psycopg.connect(seeded, autocommit=True) as conn:  # CONCURRENTLY: outside a transaction
        for f in found.values():
            conn.execute(f.fix)
    assert _run(PostgresCollector(seeded).collect()) == []


def test_min_rows_skips_small_tables(seeded):
    pg = PostgresCollector(seeded).collect()
    fs = _run(pg, min_rows=1000)
    assert [f.location for f in fs] == ["public.orders"]  # 3,000 rows; the others are empty


def test_invalid_index_left_by_a_failed_build_is_rebuilt(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE parents (id int PRIMARY KEY);"
                     "CREATE TABLE kids (id int, parent_id int REFERENCES parents (id), u int);"
                     "INSERT INTO parents VALUES (1); INSERT INTO kids VALUES (1, 1, 1), (2, 1, 1);")
        with pytest.raises(psycopg.errors.UniqueViolation):  # leaves kids_parent_id_idx INVALID
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY kids_parent_id_idx ON kids (parent_id)")
    (f,) = _run(PostgresCollector(fresh_db).collect())
    assert f.fix == ("DROP INDEX CONCURRENTLY public.kids_parent_id_idx; "
                     "CREATE INDEX CONCURRENTLY kids_parent_id_idx ON public.kids (parent_id);")
    assert f.evidence["existing_indexes"][0].endswith("(INVALID)")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for stmt in f.fix.split("; "):
            conn.execute(stmt)
    assert _run(PostgresCollector(fresh_db).collect()) == []


def test_covers_rules():
    fk = ForeignKey("public", "t", "t_fk", ("a", "b"), "public", "r", ("x", "y"))
    assert covers(Index("public", "t", "i", ("b", "a", "c")), fk)
    assert not covers(Index("public", "t", "i", ("a",)), fk)
    assert not covers(Index("public", "t", "i", ("a", "c", "b")), fk)
    assert not covers(Index("public", "t", "i", ("a", "b"), valid=False), fk)
    assert not covers(Index("public", "t", "i", ("a", "b"), partial=True), fk)
    assert not covers(Index("public", "t", "i", ("a", "b"), method="gin"), fk)
    one = ForeignKey("public", "t", "t_fk", ("a",), "public", "r", ("x",))
    assert covers(Index("public", "t", "i", ("a",), method="hash"), one)
    assert not covers(Index("public", "t", "i", (None, "a")), one)


def test_no_foreign_keys_is_a_pass():
    pg = PostgresFacts("15", "db", "postgresql://u@h/db", tables=(Table("public", "t", 10, 1),))
    assert _run(pg) == []
