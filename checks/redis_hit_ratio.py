"""RDS102: a Redis cache should answer most lookups (hit ratio >= 80 %)."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.model import Finding, Inconclusive


class RedisHitRatio(BaseCheck):
    """Hit ratio = ``keyspace_hits / (keyspace_hits + keyspace_misses)`` from INFO stats.

    The counters are server-wide (all databases) and count since the server
    started or since the last ``CONFIG RESETSTAT``.

    Params (rules.yaml): ``min_ratio`` (0.8: the usual target for a read-through
    cache), ``min_lookups`` (1000: fewer hits+misses than this is too little
    traffic for a ratio to mean anything).

    Outcomes, in order:

    - no hit/miss counters in INFO: ``Inconclusive``.
    - usage ``store``: ``Inconclusive`` ("not a cache"): misses are normal for a
      store or a queue (EXISTS probes, SET NX locks, polling empty lists), so the
      figure says nothing; switch RDS102 off for such a target. It is not a pass,
      because no cache was judged.
    - fewer than ``min_lookups`` lookups: ``Inconclusive``.
    - ratio >= ``min_ratio``: pass, whatever the usage (the figure is fine either way).
    - ratio < ``min_ratio``: a finding for a cache; ``Inconclusive`` when the usage
      is unknown (a low ratio only matters for a cache).
    """

    rule_id: ClassVar[str] = "RDS102"
    requires: ClassVar[tuple[str, ...]] = ("redis",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        redis = facts.redis
        assert redis is not None
        min_ratio = float(params.get("min_ratio", 0.8))
        min_lookups = int(params.get("min_lookups", 1000))
        hits, misses, lookups = redis.keyspace_hits, redis.keyspace_misses, redis.lookups
        if hits is None or misses is None or lookups is None:
            yield Inconclusive(f"INFO of {redis.target} has no keyspace_hits/keyspace_misses")
            return
        if redis.usage == "store":
            yield Inconclusive(
                f"{redis.target} is not a cache ({redis.usage_reason}): a store's hit ratio says nothing "
                "about caching; switch RDS102 off for it"
            )
            return
        uptime = redis.info.get("uptime_in_seconds")
        if lookups < min_lookups:
            yield Inconclusive(
                f"only {lookups} lookups since restart (or the last CONFIG RESETSTAT"
                + (f"; uptime {uptime} s" if uptime else "")
                + f"); too little traffic to judge (needs {min_lookups})"
            )
            return
        ratio = hits / lookups
        if ratio >= min_ratio:
            return
        if redis.usage == "unknown":
            yield Inconclusive(
                f"hit ratio {ratio:.1%} is below {min_ratio:.0%}, but it is not known whether "
                f"{redis.target} is a cache ({redis.usage_reason}); set redis.usage"
            )
            return
        yield Finding(
            rule_id=self.rule_id,
            message=(
                f"Redis cache hit ratio is {ratio:.1%} ({hits} hits, {misses} misses over {lookups} lookups), "
                f"below {min_ratio:.0%}"
            ),
            fix=(
                "Find the keys that miss (MONITOR briefly on a replica, or log cache misses in the app by key "
                "prefix); cache what is read often with a TTL longer than its re-read interval, warm the cache "
                "after deploys, and keep per-request values (timestamps, request ids) out of cache keys."
            ),
            key=f"{redis.target}:hit-ratio",
            location=redis.target,
            evidence={
                "keyspace_hits": hits,
                "keyspace_misses": misses,
                "lookups": lookups,
                "hit_ratio": round(ratio, 4),
                "min_ratio": min_ratio,
                "uptime_s": int(uptime) if uptime and uptime.isdigit() else None,
                "usage": redis.usage,
                "usage_reason": redis.usage_reason,
            },
        )
