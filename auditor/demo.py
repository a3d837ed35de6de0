"""`auditor demo`: audit the bundled demo shop with no server of the user's own.

Evidence: the shop's source (fixtures/demo/app), a real PostgreSQL log of its
workload and a catalog snapshot (both recorded by fixtures/make_demo.py), a
Redis snapshot (fixtures/snapshot_redis.py), and the shop's own HTTP endpoints,
served here on loopback for the length of the audit.
"""

from __future__ import annotations

import importlib
import sys
import threading
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

from auditor import audit
from auditor.config import AuditConfig, LogSource
from auditor.errors import AuditorError
from auditor.model import Report, Severity


def data_dir() -> Path:
    """The demo's files: inside the installed package, else fixtures/demo in a checkout."""
    packaged = resources.files("auditor") / "demo_data"
    if packaged.is_dir():
        return Path(str(packaged))
    here = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
    if here.is_dir():
        return here
    raise AuditorError("the demo's data is missing from this installation; reinstall auditor (pip install .)")


@contextmanager
def serve_shop(app_dir: Path) -> Iterator[str]:
    """Serve the demo shop's Flask app on 127.0.0.1 (a free port). Yields its base URL."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on the user's terminal

    sys.path.insert(0, str(app_dir))
    try:
        for name in ("app", "db", "mailer", "payments"):
            sys.modules.pop(name, None)
        shop = importlib.import_module("app").create_app()
    finally:
        sys.path.remove(str(app_dir))
    server = make_server("127.0.0.1", 0, shop, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="demo-shop", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def config(base_url: str, milestone: str = "1k") -> AuditConfig:
    d = data_dir()
    return AuditConfig(
        postgres_snapshot=str(d / "postgres-snapshot.json"),
        redis_snapshot=str(d / "redis-snapshot.json"),
        logs=[LogSource(str(d / "postgresql.log.gz"), "stderr", "%m [%p] %q%u@%d ")],
        http_base_urls=[base_url],
        source=str(d / "app"),
        milestone=milestone,
    )


def run(*, milestone: str = "1k", fail_on: Severity = Severity.HIGH, progress=None) -> Report:
    """Audit the demo shop. Returns the Report (its gate fails: the shop has blocking findings)."""
    with serve_shop(data_dir() / "app") as url:
        kwargs = {"progress": progress} if progress else {}
        return audit.run(config(url, milestone), fail_on=fail_on, **kwargs)
