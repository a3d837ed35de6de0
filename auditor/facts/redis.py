"""Redis facts: what :class:`auditor.collectors.redis.RedisCollector` reads from one Redis.

Everything here is JSON-friendly (str, int, bool, None, flat dicts of str) so a
collected value can be saved as a snapshot and audited later
(:meth:`RedisFacts.to_dict` / :meth:`RedisFacts.from_dict`). The target URL is
stored redacted; no password ever reaches these values.

Counters (``keyspace_hits``, ``keyspace_misses``, ``evicted_keys``) are
server-wide (all databases) and count since the server started or since the
last ``CONFIG RESETSTAT``. Memory figures are bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

USAGES: tuple[str, ...] = ("cache", "store", "unknown")

# Share of sampled keys that must carry a TTL for ``usage: auto`` to infer a cache.
# Our own heuristic: a cache sets expiries on what it stores; a store or a queue
# mostly does not. Above one half ("most sampled keys") is the documented rule.
CACHE_TTL_SHARE = 0.5

# INFO fields the collector keeps (plus every ``db<N>`` keyspace line).
INFO_FIELDS: tuple[str, ...] = (
    "redis_version", "redis_mode", "role", "uptime_in_seconds", "connected_clients",
    "blocked_clients", "rejected_connections", "used_memory", "used_memory_peak",
    "total_system_memory", "maxmemory", "maxmemory_policy", "mem_fragmentation_ratio",
    "keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys",
    "total_commands_processed", "instantaneous_ops_per_sec",
)

# Eviction policies (https://redis.io/docs/latest/develop/reference/eviction/).
EVICTING_POLICIES: frozenset[str] = frozenset({
    "allkeys-lru", "allkeys-lfu", "allkeys-random",
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
})


@dataclass(frozen=True)
class KeyspaceSample:
    """What a bounded SCAN of the target database saw.

    ``scanned`` keys had their TTL read (``with_ttl + without_ttl``; keys that
    vanished between SCAN and TTL are not counted). ``sample_cap`` is the most
    keys the collector would look at; ``complete`` is True when SCAN walked the
    whole database before reaching the cap.
    """
    scanned: int = 0
    with_ttl: int = 0
    without_ttl: int = 0
    sample_cap: int = 0
    complete: bool = False
    db: int = 0
    error: str | None = None  # why sampling stopped early (e.g. SCAN not permitted)

    @property
    def ttl_share(self) -> float | None:
        """with_ttl / scanned in [0, 1]; None for an empty sample."""
        return self.with_ttl / self.scanned if self.scanned else None


@dataclass(frozen=True)
class RedisFacts:
    """One Redis as the collector saw it.

    - ``target``: the redacted URL (``redis://:***@host:6379/0``).
    - ``version``: ``redis_version`` from INFO, e.g. ``"7.0.15"``.
    - ``info``: selected INFO fields (:data:`INFO_FIELDS`) as strings, plus the
      keyspace lines (``"db0": "keys=12,expires=3,avg_ttl=0"``).
    - ``config``: ``{"maxmemory": "<bytes>", "maxmemory-policy": "..."}`` from
      CONFIG GET, or empty when CONFIG is not permitted (managed services);
      ``config_error`` then says why.
    - ``default_user_nopass`` / ``default_user_enabled`` /
      ``default_user_all_commands``: the ``default`` ACL user; None when it could
      not be told. ``default_user_source`` says how it was told or why not.
    - ``usage``: ``"cache"``, ``"store"`` or ``"unknown"``; ``usage_reason``
      says whether it was configured or inferred (and from what).
    - ``sample``: the bounded keyspace sample.
    - ``collected_at``: ISO 8601 UTC time of collection.
    """
    target: str
    version: str
    info: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, str] = field(default_factory=dict)
    config_error: str | None = None
    default_user_nopass: bool | None = None
    default_user_enabled: bool | None = None
    default_user_all_commands: bool | None = None
    default_user_source: str = ""
    usage: str = "unknown"
    usage_reason: str = ""
    sample: KeyspaceSample = field(default_factory=KeyspaceSample)
    collected_at: str | None = None

    # -- derived figures (pure; used by the checks) ---------------------------

    def _info_int(self, name: str) -> int | None:
        try:
            return int(self.info[name])
        except (KeyError, ValueError):
            return None

    @property
    def keyspace_hits(self) -> int | None:
        return self._info_int("keyspace_hits")

    @property
    def keyspace_misses(self) -> int | None:
        return self._info_int("keyspace_misses")

    @property
    def lookups(self) -> int | None:
        """keyspace_hits + keyspace_misses, or None when INFO lacked them."""
        h, m = self.keyspace_hits, self.keyspace_misses
        return None if h is None or m is None else h + m

    @property
    def hit_ratio(self) -> float | None:
        """keyspace_hits / (hits + misses) in [0, 1]; None without lookups."""
        total = self.lookups
        return None if not total else (self.keyspace_hits or 0) / total

    def memory_limit(self) -> tuple[int | None, str | None, str]:
        """``(maxmemory bytes, maxmemory-policy, source)``.

        From CONFIG GET when it was readable, else from INFO memory's
        ``maxmemory`` / ``maxmemory_policy`` (present since Redis 4), else
        ``(None, None, reason)``.
        """
        if "maxmemory" in self.config and "maxmemory-policy" in self.config:
            try:
                return int(self.config["maxmemory"]), self.config["maxmemory-policy"], "CONFIG GET"
            except ValueError:
                pass
        mm, pol = self.info.get("maxmemory"), self.info.get("maxmemory_policy")
        if mm is not None and pol:
            try:
                return int(mm), pol, "INFO memory"
            except ValueError:
                pass
        why = self.config_error or "maxmemory settings not in the collected evidence"
        return None, None, why

    # -- snapshots ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` reads it back to an equal value."""
        d = asdict(self)
        d["info"] = dict(self.info)
        d["config"] = dict(self.config)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RedisFacts":
        """Inverse of :meth:`to_dict`. Raises ValueError on a malformed mapping."""
        if not isinstance(data, Mapping):
            raise ValueError("expected a mapping of Redis facts")
        try:
            sample = data.get("sample") or {}
            if not isinstance(sample, Mapping):
                raise ValueError("'sample' must be a mapping")
            usage = str(data.get("usage", "unknown"))
            if usage not in USAGES:
                raise ValueError(f"'usage' must be one of {', '.join(USAGES)}, not {usage!r}")

            def opt_bool(key: str) -> bool | None:
                v = data.get(key)
                if v is not None and not isinstance(v, bool):
                    raise ValueError(f"{key!r} must be true, false or null")
                return v

            def str_map(key: str) -> dict[str, str]:
                v = data.get(key) or {}
                if not isinstance(v, Mapping):
                    raise ValueError(f"{key!r} must be a mapping")
                return {str(k): str(x) for k, x in v.items()}

            return cls(
                target=str(data["target"]),
                version=str(data.get("version", "")),
                info=str_map("info"),
                config=str_map("config"),
                config_error=None if data.get("config_error") is None else str(data["config_error"]),
                default_user_nopass=opt_bool("default_user_nopass"),
                default_user_enabled=opt_bool("default_user_enabled"),
                default_user_all_commands=opt_bool("default_user_all_commands"),
                default_user_source=str(data.get("default_user_source", "")),
                usage=usage,
                usage_reason=str(data.get("usage_reason", "")),
                sample=KeyspaceSample(
                    scanned=int(sample.get("scanned", 0)),
                    with_ttl=int(sample.get("with_ttl", 0)),
                    without_ttl=int(sample.get("without_ttl", 0)),
                    sample_cap=int(sample.get("sample_cap", 0)),
                    complete=bool(sample.get("complete", False)),
                    db=int(sample.get("db", 0)),
                    error=None if sample.get("error") is None else str(sample["error"]),
                ),
                collected_at=None if data.get("collected_at") is None else str(data["collected_at"]),
            )
        except KeyError as exc:
            raise ValueError(f"missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None


def infer_usage(sample: KeyspaceSample) -> tuple[str, str]:
    """``usage: auto``: ``("cache", reason)`` when most sampled keys have a TTL
    (share above :data:`CACHE_TTL_SHARE`), else ``("unknown", reason)``.

    A store is never inferred: keys without a TTL are also what a cache under
    ``allkeys-lru`` holds, so only the user can say "store".
    """
    if not sample.scanned:
        why = f"the keyspace sample failed ({sample.error})" if sample.error else (
            "no keys were sampled" if sample.sample_cap == 0 else f"db {sample.db} has no keys to sample")
        return "unknown", f"inferred: {why}; set redis.usage to cache or store"
    share = sample.with_ttl / sample.scanned
    seen = f"{sample.with_ttl} of {sample.scanned} sampled keys in db {sample.db} have a TTL"
    if share > CACHE_TTL_SHARE:
        return "cache", f"inferred: {seen}"
    return "unknown", f"inferred: only {seen}; set redis.usage to cache or store"
