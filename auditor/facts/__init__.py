"""Facts: what collectors hand to checks. Collectors own the I/O; checks only read these.

Each evidence kind has its own module (``auditor.facts.postgres`` ...). The
container below holds one optional value per kind; ``None`` means the kind was
not collected, and ``unavailable[kind]`` then says why (not configured, target
unreachable, no permission), already redacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from auditor.facts.http import HttpFacts
    from auditor.facts.pgss import PgStatStatements
    from auditor.facts.postgres import PostgresFacts
    from auditor.facts.redis import RedisFacts
    from auditor.facts.source import SourceFacts
    from auditor.facts.workload import WorkloadProfile

KINDS: tuple[str, ...] = ("postgres", "pgss", "workload", "redis", "http", "source")

# Why a kind is missing when the user simply did not configure it.
NOT_CONFIGURED = {
    "postgres": "no PostgreSQL DSN given (postgres.dsn or --postgres)",
    "pgss": ("no pg_stat_statements given (postgres.dsn or --postgres for the live view, "
             "or postgres.pg_stat_statements for a CSV export)"),
    "workload": "no query log given (logs: or --log)",
    "redis": "no Redis URL given (redis.url or --redis)",
    "http": "no HTTP base URL given (http.base_urls or --http)",
    "source": "no source tree given (source: or --source)",
}


@dataclass
class Facts:
    postgres: "PostgresFacts | None" = None
    pgss: "PgStatStatements | None" = None  # pg_stat_statements, per fingerprint
    workload: "WorkloadProfile | None" = None
    redis: "RedisFacts | None" = None
    http: "HttpFacts | None" = None
    source: "SourceFacts | None" = None
    unavailable: dict[str, str] = field(default_factory=dict)

    def get(self, kind: str):
        return getattr(self, kind)

    def reason_missing(self, kind: str) -> str:
        return self.unavailable.get(kind) or NOT_CONFIGURED.get(kind, f"no {kind} evidence")
