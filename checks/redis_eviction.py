"""RDS101: a Redis cache needs a memory limit and an evicting policy; a store must not evict."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.redis import EVICTING_POLICIES
from auditor.model import Finding, Inconclusive, Severity

MB = 1024 * 1024


class RedisEvictionPolicy(BaseCheck):
    """Judge ``maxmemory`` / ``maxmemory-policy`` against what the Redis is used for.

    Reads ``facts.redis``: the memory settings (CONFIG GET, else INFO memory;
    bytes) and ``usage`` (configured, or inferred from the TTLs of the sample).

    - usage ``cache``: a finding when ``maxmemory`` is 0 (no limit: the cache grows
      until the OOM killer ends Redis) and/or the policy is ``noeviction`` (writes
      fail with OOM errors at the limit). Source: Redis' eviction docs, which
      recommend ``allkeys-lru`` for a cache.
    - usage ``store`` (queue, sessions of record, locks): ``noeviction`` passes; an
      evicting policy (``allkeys-*``/``volatile-*``) is a finding, since eviction
      silently deletes data. Severity high when ``maxmemory`` is set (eviction can
      happen now), low when it is 0 (it starts as soon as a limit is set). A
      store's ``maxmemory 0`` is capacity planning, not eviction: not judged here.
    - usage ``unknown``: the right policy depends on the usage, so ``Inconclusive``
      with the reason (set ``redis.usage``).
    - memory settings unreadable: ``Inconclusive``.

    No params.
    """

    rule_id: ClassVar[str] = "RDS101"
    requires: ClassVar[tuple[str, ...]] = ("redis",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        redis = facts.redis
        assert redis is not None
        maxmemory, policy, source = redis.memory_limit()
        if maxmemory is None or policy is None:
            yield Inconclusive(f"cannot read maxmemory / maxmemory-policy of {redis.target}: {source}")
            return
        evidence: dict[str, Any] = {
            "maxmemory_bytes": maxmemory,
            "maxmemory_policy": policy,
            "settings_source": source,
            "usage": redis.usage,
            "usage_reason": redis.usage_reason,
            "used_memory_bytes": _int(redis.info.get("used_memory")),
            "sampled_keys": redis.sample.scanned,
            "sampled_keys_with_ttl": redis.sample.with_ttl,
        }
        if redis.usage == "unknown":
            yield Inconclusive(
                f"cannot tell whether {redis.target} is a cache or a store ({redis.usage_reason}); "
                "a cache must evict and a store must not, so set redis.usage"
            )
            return
        if redis.usage == "store":
            if policy in EVICTING_POLICIES:
                now = maxmemory > 0
                yield Finding(
                    rule_id=self.rule_id,
                    message=(
                        f"Redis used as a store has maxmemory-policy {policy}: "
                        + (f"at {_mb(maxmemory)} it silently deletes keys (data loss)" if now else
                           "with maxmemory 0 nothing is evicted yet, but keys are deleted as soon as a limit is set")
                    ),
                    fix="In redis.conf: maxmemory-policy noeviction  # a store must fail writes, not lose data; "
                        "size maxmemory and alert on used_memory instead",
                    key=f"{redis.target}:evicting-store",
                    location=redis.target,
                    severity=Severity.HIGH if now else Severity.LOW,
                    evidence=evidence,
                )
            return

        # cache
        problems: list[str] = []
        fixes: list[str] = []
        if maxmemory == 0:
            problems.append("maxmemory is 0 (no limit): the cache grows until the machine swaps or the OOM killer ends Redis")
            used = _int(redis.info.get("used_memory"))
            now = f"; used_memory is {_mb(used)} now" if used else ""
            fixes.append(f"maxmemory 256mb  # an example: what the cache may use, leaving headroom for the OS and forks{now}")
        if policy == "noeviction":
            problems.append("maxmemory-policy is noeviction: at the limit writes fail with OOM errors instead of evicting old keys")
        if problems and policy not in EVICTING_POLICIES:
            fixes.append("maxmemory-policy allkeys-lru")
        if problems:
            yield Finding(
                rule_id=self.rule_id,
                message=f"Redis cache: {'; '.join(problems)}",
                fix="In redis.conf (or your provider's parameter group):\n" + "\n".join(fixes),
                key=f"{redis.target}:cache-eviction",
                location=redis.target,
                evidence=evidence,
            )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / MB:.1f} MB"
