"""Shared fixtures: the machine's real PostgreSQL and Redis.

When a service is down the tests that need it skip locally but FAIL under
CI=true (a missing service must never turn into a green run).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib

PG_ADMIN_DSN = os.environ.get("AUDITOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AUDITOR_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(service: str, error: Exception) -> None:
    msg = f"{service} is not reachable: {error}"
    if IN_CI:
        pytest.fail(f"{msg} (CI=true: tests that need {service} fail instead of skipping)")
    pytest.skip(msg)


def needs_corpus(path: Path):
    """Mark a test that reads ../shared/corpus: it skips locally when the corpus is
    absent, and under CI=true it runs anyway, so a missing corpus fails it."""
    return pytest.mark.skipif(not Path(path).exists() and not IN_CI,
                              reason=f"public corpus not found at {path}")


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # noqa: BLE001
        need("PostgreSQL", exc)
    return PG_ADMIN_DSN


@pytest.fixture
def fresh_db(pg_admin_dsn: str):
    """A new, empty database on the real server; dropped afterwards. Yields its DSN."""
    name = f"auditor_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield dsn
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    try:
        redis_lib.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        need("Redis", exc)
    return REDIS_URL
