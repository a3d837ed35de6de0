"""Session fixtures: real PostgreSQL logs of the shop workloads, written at test time.

Each fixture starts a private LoggingCluster (fixtures/pgcluster.py), sets up the shop
schema, runs scenarios and cuts out each scenario's log lines (fixtures/make_logs.py).
Nothing here is hand-typed. Loaded with ``pytest_plugins = ["logfixtures"]``.

When the PostgreSQL server binaries are missing the tests skip locally and fail under
CI=true, like tests/conftest.py does for the servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import need

from fixtures.make_logs import DEBIAN_PREFIX, PGBADGER_PREFIX, Captured, ShopLogs
from fixtures.workloads.shop import SCENARIOS

SESSION_PREFIX = "%m [%p] %c %q%u@%d "  # with %c: sessions keyed by session id
SHORT_PREFIX = "%t [%p] "


def _capture_all(logs: ShopLogs, outdir: Path, scenarios) -> dict[str, Captured]:
    try:
        logs.__enter__()
    except (RuntimeError, OSError) as exc:
        need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)
    try:
        return {sc: logs.capture(sc, outdir / f"{sc}.log") for sc in scenarios}
    finally:
        logs.__exit__(None, None, None)


@pytest.fixture(scope="session")
def shop_logs(tmp_path_factory) -> dict[str, Captured]:
    """Every shop scenario, logged at once as stderr (Debian prefix), csvlog and jsonlog:
    {scenario: Captured} with ``.paths[format]`` and the ``.trace`` that was run."""
    return _capture_all(ShopLogs(line_prefix=DEBIAN_PREFIX, also=("csvlog", "jsonlog")),
                        tmp_path_factory.mktemp("shop-debian"), SCENARIOS)


@pytest.fixture(scope="session")
def pgbadger_logs(tmp_path_factory) -> dict[str, Captured]:
    """A few scenarios with pgbadger's recommended log_line_prefix."""
    return _capture_all(ShopLogs(line_prefix=PGBADGER_PREFIX),
                        tmp_path_factory.mktemp("shop-pgbadger"),
                        ("n_plus_one", "connection_per_request", "autocommit"))


@pytest.fixture(scope="session")
def statement_all_logs(tmp_path_factory) -> dict[str, Captured]:
    """log_statement = all and log_min_duration_statement = 0: statements are logged
    before they run and their durations on separate bare ``duration:`` lines. Prefix
    with %c (sessions keyed by session id)."""
    return _capture_all(ShopLogs(line_prefix=SESSION_PREFIX,
                                 settings={"log_statement": "'all'"}),
                        tmp_path_factory.mktemp("shop-statement-all"),
                        ("n_plus_one", "connection_per_request"))


@pytest.fixture(scope="session")
def no_duration_logs(tmp_path_factory) -> dict[str, Captured]:
    """log_statement = all without any duration logging: no statement has a duration."""
    return _capture_all(ShopLogs(line_prefix=SHORT_PREFIX,
                                 settings={"log_statement": "'all'",
                                           "log_min_duration_statement": "-1"}),
                        tmp_path_factory.mktemp("shop-no-duration"), ("mn_plus_one",))
