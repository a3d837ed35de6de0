"""RDS101-RDS103 on facts collected from the machine's real Redis, shaped as a
healthy cache, a misconfigured cache and a store (tests/redis_state.py restores
the server afterwards). A few edge cases that a live server cannot show
(a Redis without ACL output, CONFIG and INFO memory both missing) use small
hand-made RedisFacts values, as the design allows for checks.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.metadata import entry_points

import pytest

from auditor import rules as rules_mod
from auditor.collectors.redis import RedisCollector
from auditor.facts import Facts
from auditor.facts.redis import RedisFacts
from auditor.model import Finding, Inconclusive, Severity
from auditor.registry import GROUP
from checks.redis_default_user import RedisDefaultUserNoPassword
from checks.redis_eviction import RedisEvictionPolicy
from checks.redis_hit_ratio import RedisHitRatio
from redis_state import redis_lab

PASSWORD = "chk-Pw-5d0c3a"
RULES = rules_mod.load()


def run(check, facts: RedisFacts, **params) -> list[Finding | Inconclusive]:
    merged = {**RULES[check.rule_id].params, **params}
    return list(check.run(Facts(redis=facts), merged))


@pytest.fixture
def lab(redis_url):
    with redis_lab(redis_url) as lab:
        yield lab


@pytest.fixture
def healthy(lab) -> RedisFacts:
    """64 MB, allkeys-lru, keys with TTLs, ~97 % hits over 2050 lookups, default user with a password."""
    lab.configure("64mb", "allkeys-lru")
    keys = lab.fill(300, ttl_s=3600)
    lab.add_user("app", PASSWORD, "~*", "&*", "+@all")
    lab.resetstat()
    lab.traffic(keys, hits=2000, misses=50)
    collector = RedisCollector(lab.url(user="auditor-test-app", password=PASSWORD))
    lab.default_password("dflt-" + PASSWORD)
    try:
        return collector.collect()
    finally:
        lab.default_restore()


@pytest.fixture
def misconfigured(lab) -> RedisFacts:
    """maxmemory 0, noeviction, default user nopass, keys with TTLs, ~40 % hits over 1500 lookups."""
    lab.configure("0", "noeviction")
    keys = lab.fill(200, ttl_s=600)
    lab.resetstat()
    lab.traffic(keys, hits=600, misses=900)
    return RedisCollector(lab.url()).collect()


@pytest.mark.redis
def test_healthy_cache_passes_everything(healthy):
    assert healthy.usage == "cache"
    for check in (RedisEvictionPolicy(), RedisHitRatio(), RedisDefaultUserNoPassword()):
        assert run(check, healthy) == [], check.rule_id


@pytest.mark.redis
def test_misconfigured_cache_fails_everything(misconfigured):
    [evict] = run(RedisEvictionPolicy(), misconfigured)
    assert isinstance(evict, Finding) and evict.rule_id == "RDS101"
    assert "maxmemory is 0" in evict.message and "noeviction" in evict.message
    assert "maxmemory-policy allkeys-lru" in evict.fix and "maxmemory 256mb" in evict.fix
    assert evict.evidence["maxmemory_bytes"] == 0 and evict.evidence["usage"] == "cache"
    assert evict.location == misconfigured.target

    [ratio] = run(RedisHitRatio(), misconfigured)
    assert isinstance(ratio, Finding) and ratio.rule_id == "RDS102"
    assert ratio.evidence["lookups"] >= 1500 and ratio.evidence["hit_ratio"] < 0.5
    assert "below 80%" in ratio.message and f"{ratio.evidence['keyspace_hits']} hits" in ratio.message

    [user] = run(RedisDefaultUserNoPassword(), misconfigured)
    assert isinstance(user, Finding) and user.severity is Severity.CRITICAL
    assert "+@all" in user.message and "ACL SETUSER default off" in user.fix

    # Baseline keys name the object only (no counts); evidence is JSON-serialisable.
    t = misconfigured.target
    assert [f.key for f in (evict, ratio, user)] == [
        f"{t}:cache-eviction", f"{t}:hit-ratio", f"{t}:default-user-nopass"]
    for f in (evict, ratio, user):
        json.dumps(dict(f.evidence))


@pytest.mark.redis
def test_cache_with_limit_but_noeviction(lab):
    lab.configure("64mb", "noeviction")
    lab.fill(10, ttl_s=60)
    [f] = run(RedisEvictionPolicy(), RedisCollector(lab.url()).collect())
    assert "noeviction" in f.message and "maxmemory is 0" not in f.message
    assert f.fix.endswith("maxmemory-policy allkeys-lru")


@pytest.mark.redis
def test_store_must_not_evict(lab):
    lab.fill(20, ttl_s=None)
    lab.configure("64mb", "allkeys-lru")
    evicting = RedisCollector(lab.url(), usage="store").collect()
    [f] = run(RedisEvictionPolicy(), evicting)
    assert f.severity is Severity.HIGH and "data loss" in f.message
    assert "noeviction" in f.fix

    lab.configure("0", "volatile-lru")
    [latent] = run(RedisEvictionPolicy(), RedisCollector(lab.url(), usage="store").collect())
    assert latent.severity is Severity.LOW

    lab.configure("64mb", "noeviction")
    store = RedisCollector(lab.url(), usage="store").collect()
    assert run(RedisEvictionPolicy(), store) == []
    [hr] = run(RedisHitRatio(), store)
    assert isinstance(hr, Inconclusive) and "not a cache" in hr.reason


@pytest.mark.redis
def test_unknown_usage_is_inconclusive(lab):
    lab.configure("0", "noeviction")
    keys = lab.fill(100, ttl_s=None)  # no TTLs: a cache or a store?
    lab.resetstat()
    lab.traffic(keys, hits=400, misses=800)
    facts = RedisCollector(lab.url()).collect()
    assert facts.usage == "unknown"
    [ev] = run(RedisEvictionPolicy(), facts)
    assert isinstance(ev, Inconclusive) and "cache or a store" in ev.reason and "redis.usage" in ev.reason
    [hr] = run(RedisHitRatio(), facts)
    assert isinstance(hr, Inconclusive) and "redis.usage" in hr.reason
    # A good ratio passes whatever the usage.
    assert run(RedisHitRatio(), facts, min_ratio=0.2) == []


@pytest.mark.redis
def test_too_little_traffic(lab):
    keys = lab.fill(10, ttl_s=60)
    lab.resetstat()
    lab.traffic(keys, hits=5, misses=5)
    facts = RedisCollector(lab.url()).collect()
    [inc] = run(RedisHitRatio(), facts)
    assert isinstance(inc, Inconclusive)
    assert inc.reason.startswith(f"only {facts.lookups} lookups since restart")
    assert "too little traffic to judge" in inc.reason


@pytest.mark.redis
def test_config_refused_uses_info(lab):
    lab.configure("0", "noeviction")
    lab.fill(10, ttl_s=60)
    lab.add_user("noconfig", PASSWORD, "~*", "&*", "+@all", "-config")
    facts = RedisCollector(lab.url(user="auditor-test-noconfig", password=PASSWORD)).collect()
    [f] = run(RedisEvictionPolicy(), facts)
    assert f.evidence["settings_source"] == "INFO memory"
    assert PASSWORD not in json.dumps(dict(f.evidence)) + f.message + f.fix + f.key


def _facts(**kw) -> RedisFacts:
    base = RedisFacts(target="redis://10.0.0.5:6379/0", version="7.2.4",
                      info={"keyspace_hits": "9000", "keyspace_misses": "1000"},
                      config={"maxmemory": "0", "maxmemory-policy": "noeviction"},
                      usage="cache", usage_reason="configured (redis.usage: cache)",
                      default_user_nopass=True, default_user_enabled=True, default_user_all_commands=False,
                      default_user_source="ACL GETUSER default")
    return replace(base, **kw)


def test_memory_settings_unreadable_is_inconclusive():
    facts = _facts(config={}, config_error="CONFIG GET not permitted: NOPERM ...")
    [inc] = run(RedisEvictionPolicy(), facts)
    assert isinstance(inc, Inconclusive) and "NOPERM" in inc.reason


def test_default_user_unknown_or_restricted():
    [inc] = run(RedisDefaultUserNoPassword(), _facts(default_user_nopass=None, default_user_source="NOPERM no ACL"))
    assert isinstance(inc, Inconclusive) and "NOPERM no ACL" in inc.reason
    [f] = run(RedisDefaultUserNoPassword(), _facts())
    assert f.severity is None  # the rule's own severity (high) when commands are restricted
    assert run(RedisDefaultUserNoPassword(), _facts(default_user_enabled=False)) == []
    assert run(RedisDefaultUserNoPassword(), _facts(default_user_nopass=False, default_user_enabled=None)) == []
    [inc] = run(RedisDefaultUserNoPassword(), _facts(default_user_enabled=None))
    assert isinstance(inc, Inconclusive)


def test_hit_ratio_without_counters():
    [inc] = run(RedisHitRatio(), _facts(info={}))
    assert isinstance(inc, Inconclusive)
    assert run(RedisHitRatio(), _facts()) == []  # 90 % over 10,000 lookups


def test_checks_are_registered_with_their_rules():
    # Only our three entry points: the full discover() also loads other kinds' checks.
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    for rid, cls in (("RDS101", RedisEvictionPolicy), ("RDS102", RedisHitRatio),
                     ("RDS103", RedisDefaultUserNoPassword)):
        assert eps[rid].load() is cls
        assert cls.rule_id == rid and cls.requires == ("redis",)
        assert rid in RULES


def test_bundled_demo_snapshot():
    """fixtures/demo/redis-snapshot.json (fixtures/snapshot_redis.py) fails all three rules."""
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "fixtures" / "demo" / "redis-snapshot.json"
    facts = RedisCollector(snapshot=path).collect()
    assert facts.usage == "cache" and facts.lookups >= 1000
    [evict] = run(RedisEvictionPolicy(), facts)
    [ratio] = run(RedisHitRatio(), facts)
    [user] = run(RedisDefaultUserNoPassword(), facts)
    assert all(isinstance(f, Finding) for f in (evict, ratio, user))
    assert 0.4 < ratio.evidence["hit_ratio"] < 0.6
    assert user.severity is Severity.CRITICAL
