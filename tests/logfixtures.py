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


@pytest.fixture(scope="session")
def many_sessions_logs(tmp_path_factory):
    """The idle-session workload (fixtures/workloads/sessions.py) logged as stderr
    (Debian prefix: sessions keyed by pid), csvlog and jsonlog at once, with
    ``log_disconnections = off``: ({format: path}, Expected, pause_s)."""
    from fixtures.pgcluster import LoggingCluster
    from fixtures.workloads import sessions
    pause_s = 0.6
    cluster = LoggingCluster(log_format="jsonlog", line_prefix=DEBIAN_PREFIX,
                             settings={"log_destination": "'stderr,csvlog,jsonlog'",
                                       "log_disconnections": "off"})
    try:
        cluster.start()
    except (RuntimeError, OSError) as exc:
        need("a throwaway PostgreSQL cluster (initdb, pg_ctl)", exc)
    outdir = tmp_path_factory.mktemp("many-sessions")
    try:
        dsn = cluster.dsn("postgres")
        exp = sessions.setup(dsn)
        ran = sessions.run(dsn, short=600, rounds=4, pause_s=pause_s)
        for name in ("statements", "sessions", "requests", "connections"):
            setattr(exp, name, getattr(exp, name) + getattr(ran, name))
        files = {fmt: cluster.logdir / f"postgresql.{ext}"
                 for fmt, ext in (("stderr", "log"), ("csvlog", "csv"), ("jsonlog", "json"))}
        sizes = None
        for _ in range(100):  # until the logging collector has written everything
            cluster.flush_log(0.1)
            now = {f: p.stat().st_size for f, p in files.items()}
            if now == sizes:
                break
            sizes = now
        paths = {}
        for fmt, p in files.items():
            paths[fmt] = outdir / p.name
            paths[fmt].write_bytes(p.read_bytes())
    finally:
        cluster.stop()
    return paths, exp, pause_s
