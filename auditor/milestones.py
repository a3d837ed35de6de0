"""The milestone ladder (DESIGN.md). Ids are stable: they appear in rules.yaml,
config files, CLI flags and reports."""

from __future__ import annotations

from dataclasses import dataclass

from auditor.errors import ConfigError


@dataclass(frozen=True)
class Milestone:
    id: str
    label: str  # the user range, e.g. "100-1K users"
    max_users: int | None  # upper bound of the range; None for the open top rung
    hurts: str  # what starts to hurt at this rung


LADDER: tuple[Milestone, ...] = (
    Milestone("100", "0-100 users", 100, "nothing: anything works"),
    Milestone("1k", "100-1K users", 1_000,
              "missing indexes, N+1 queries, slow work inside the request, no rate limits"),
    Milestone("10k", "1K-10K users", 10_000,
              "database connections, reads competing with writes, queues, deploy downtime"),
    Milestone("100k", "10K-100K users", 100_000,
              "stateless scaling, health checks, caching, centralized logging, alerting"),
    Milestone("100k+", "100K+ users", None,
              "hot keys, sharding, replication lag, multi-region"),
)
IDS: tuple[str, ...] = tuple(m.id for m in LADDER)
_BY_ID = {m.id: m for m in LADDER}


def get(milestone_id: str) -> Milestone:
    """Return the rung for ``milestone_id``. Raises ConfigError naming the valid ids."""
    try:
        return _BY_ID[str(milestone_id).lower()]
    except KeyError:
        raise ConfigError(
            f"unknown milestone {milestone_id!r}; expected one of: {', '.join(IDS)}"
        ) from None


def rank(milestone_id: str) -> int:
    """Position on the ladder, 0 for ``100`` up to 4 for ``100k+``."""
    return IDS.index(get(milestone_id).id)


def for_users(users: int) -> Milestone:
    """The rung whose range holds ``users`` (e.g. 5_000 -> ``10k``)."""
    if users < 0:
        raise ConfigError(f"users must be >= 0, got {users}")
    for m in LADDER:
        if m.max_users is None or users <= m.max_users:
            return m
    return LADDER[-1]  # pragma: no cover - the last rung is open-ended
