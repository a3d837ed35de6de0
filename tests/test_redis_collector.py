"""RedisCollector against the machine's real Redis (no mocks).

Every test that shapes the server runs inside ``redis_lab`` (tests/redis_state.py),
which restores maxmemory, maxmemory-policy and the default user afterwards and
only writes keys to db 13.
"""

from __future__ import annotations

import json
import math
import socket
import time

import pytest

from auditor.collectors.redis import SCAN_COUNT, RedisCollector, load_snapshot, save_snapshot
from auditor.errors import ConfigError, TargetUnreachable
from auditor.facts.redis import KeyspaceSample, RedisFacts
from redis_state import TEST_DB, redis_lab

pytestmark = pytest.mark.redis

APP_PASSWORD = "app-Pw-7c1e9b2f"
DEFAULT_PASSWORD = "dflt-Pw-41aa0e"


@pytest.fixture
def lab(redis_url):
    with redis_lab(redis_url) as lab:
        yield lab


def _all_text(facts: RedisFacts, collector: RedisCollector) -> str:
    return "\n".join([json.dumps(facts.to_dict()), str(facts), repr(facts), collector.describe(), repr(collector)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthy_cache_behind_a_password(lab):
    lab.configure("64mb", "allkeys-lru")
    keys = lab.fill(300, ttl_s=3600)
    lab.add_user("app", APP_PASSWORD, "~*", "&*", "+@all")
    lab.resetstat()
    lab.traffic(keys, hits=2000, misses=50)
    url = lab.url(user="auditor-test-app", password=APP_PASSWORD)
    collector = RedisCollector(url)
    lab.default_password(DEFAULT_PASSWORD)  # anonymous clients are refused from here on
    try:
        facts = collector.collect()
        with pytest.raises(TargetUnreachable) as no_pw:
            RedisCollector(lab.url()).collect()
        with pytest.raises(TargetUnreachable) as wrong_pw:
            RedisCollector(lab.url(user="auditor-test-app", password="not-" + APP_PASSWORD)).collect()
    finally:
        lab.default_restore()  # at once: keep the window for other clients short
    assert facts.target == f"redis://auditor-test-app:***@{lab.host}:{lab.port}/{TEST_DB}"
    assert facts.version.startswith("7.")
    assert facts.config == {"maxmemory": str(64 * 1024 * 1024), "maxmemory-policy": "allkeys-lru"}
    assert facts.config_error is None
    assert facts.memory_limit() == (64 * 1024 * 1024, "allkeys-lru", "CONFIG GET")
    assert facts.default_user_nopass is False and facts.default_user_enabled is True
    assert facts.default_user_source == "ACL GETUSER default"
    assert facts.sample == KeyspaceSample(scanned=300, with_ttl=300, without_ttl=0, sample_cap=1000,
                                          complete=True, db=TEST_DB)
    assert facts.usage == "cache" and "300 of 300 sampled keys" in facts.usage_reason
    assert facts.info[f"db{TEST_DB}"].startswith("keys=300,expires=300")
    # INFO is read before the 300 PTTL calls (which count as keyspace hits).
    assert 2000 <= facts.keyspace_hits < 2300
    assert facts.lookups >= 2050 and facts.hit_ratio > 0.9
    assert "requires a password" in str(no_pw.value) and "redis.url" in str(no_pw.value)
    assert "cannot authenticate" in str(wrong_pw.value)
    for text in (_all_text(facts, collector), str(no_pw.value), str(wrong_pw.value)):
        assert APP_PASSWORD not in text and DEFAULT_PASSWORD not in text


def test_misconfigured_cache(lab):
    lab.configure("0", "noeviction")
    keys = lab.fill(200, ttl_s=600)
    lab.resetstat()
    lab.traffic(keys, hits=600, misses=900)
    facts = RedisCollector(lab.url()).collect()
    assert facts.config == {"maxmemory": "0", "maxmemory-policy": "noeviction"}
    assert (facts.default_user_nopass, facts.default_user_enabled, facts.default_user_all_commands) == (True, True, True)
    assert facts.usage == "cache"
    assert facts.lookups >= 1500 and facts.hit_ratio < 0.5


def test_usage_configured_or_unknown(lab):
    lab.fill(50, ttl_s=None)
    auto = RedisCollector(lab.url()).collect()
    assert auto.usage == "unknown"
    assert "only 0 of 50 sampled keys" in auto.usage_reason and "redis.usage" in auto.usage_reason
    store = RedisCollector(lab.url(), usage="store").collect()
    assert (store.usage, store.usage_reason) == ("store", "configured (redis.usage: store)")
    empty = RedisCollector(lab.url(db=TEST_DB + 1), sample_keys=0).collect()
    assert empty.sample.scanned == 0 and empty.usage == "unknown"


def test_config_get_not_permitted_falls_back_to_info(lab):
    lab.configure("32mb", "allkeys-lfu")
    lab.add_user("noconfig", APP_PASSWORD, "~*", "&*", "+@all", "-config")
    collector = RedisCollector(lab.url(user="auditor-test-noconfig", password=APP_PASSWORD))
    facts = collector.collect()
    assert facts.config == {}
    assert facts.config_error and "NOPERM" in facts.config_error
    assert facts.memory_limit() == (32 * 1024 * 1024, "allkeys-lfu", "INFO memory")
    assert APP_PASSWORD not in _all_text(facts, collector)


def test_acl_getuser_not_permitted_probes_anonymously(lab):
    lab.add_user("noacl", APP_PASSWORD, "~*", "&*", "+@all", "-acl")
    collector = RedisCollector(lab.url(user="auditor-test-noacl", password=APP_PASSWORD))
    lab.default_password("nopass-off")
    try:
        locked = collector.collect()
    finally:
        lab.default_restore()
    open_ = collector.collect()
    # ACL GETUSER is refused, so the collector tries a second connection without credentials.
    assert locked.default_user_nopass is False and locked.default_user_enabled is None
    assert locked.default_user_source.startswith("unauthenticated PING refused")
    assert open_.default_user_nopass is True and open_.default_user_enabled is True
    assert open_.default_user_source == "an unauthenticated connection ran PING"


def test_unreachable_port_redacts_the_password():
    port = _free_port()
    collector = RedisCollector(f"redis://:s3cret-Pass-9@127.0.0.1:{port}/0", timeout_s=1)
    assert collector.describe() == f"Redis redis://:***@127.0.0.1:{port}/0"
    with pytest.raises(TargetUnreachable) as err:
        collector.collect()
    assert str(err.value) == (
        f"cannot connect to Redis at redis://:***@127.0.0.1:{port}/0: Connection refused; check redis.url")
    assert "s3cret-Pass-9" not in str(err.value) and "s3cret-Pass-9" not in repr(err.value)


def test_silent_server_times_out():
    """A loopback port that accepts TCP but never answers: the socket timeout bounds the wait."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        collector = RedisCollector(f"redis://:s3cret-Pass-9@127.0.0.1:{port}/0", timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(TargetUnreachable) as err:
            collector.collect()
        assert time.monotonic() - started < 3  # no retries multiplying the timeout
    assert str(err.value).startswith(f"cannot connect to Redis at redis://:***@127.0.0.1:{port}/0: timed out after 0.5 s")


def test_scan_is_bounded(lab):
    lab.fill(5000, ttl_s=None, prefix="big")
    before = lab.commandstats()
    facts = RedisCollector(lab.url(), sample_keys=1000).collect()
    after = lab.commandstats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    assert facts.sample.sample_cap == 1000
    assert facts.sample.scanned == 1000 and facts.sample.complete is False
    assert 1 <= delta.get("scan", 0) <= 2 * math.ceil(1000 / SCAN_COUNT) + 10
    assert delta.get("pttl", 0) == 1000  # one PTTL per sampled key, no more
    assert delta.get("keys", 0) == 0 and delta.get("config|set", 0) == 0
    assert delta.get("info", 0) >= 1 and delta.get("config|get", 0) >= 1

    before = lab.commandstats()
    RedisCollector(lab.url(), sample_keys=0).collect()
    after = lab.commandstats()
    assert after.get("scan", 0) == before.get("scan", 0)


def test_snapshot_round_trip(lab, tmp_path):
    lab.fill(20, ttl_s=100)
    lab.add_user("snap", APP_PASSWORD, "~*", "&*", "+@all")
    facts = RedisCollector(lab.url(user="auditor-test-snap", password=APP_PASSWORD)).collect()
    path = save_snapshot(facts, tmp_path / "sub" / "redis.json")
    text = path.read_text()
    assert APP_PASSWORD not in text
    doc = json.loads(text)
    assert doc["format"] == "auditor.redis-snapshot" and doc["version"] == 1
    assert load_snapshot(path) == facts
    assert RedisFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts
    from_file = RedisCollector(snapshot=path)
    assert from_file.describe() == f"Redis snapshot {path}"
    assert from_file.collect() == facts
    overridden = RedisCollector(snapshot=path, usage="store").collect()
    assert overridden.usage == "store" and overridden.sample == facts.sample


def test_snapshot_errors(tmp_path):
    with pytest.raises(TargetUnreachable, match="cannot read Redis snapshot"):
        RedisCollector(snapshot=tmp_path / "missing.json").collect()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TargetUnreachable, match="not valid JSON"):
        RedisCollector(snapshot=bad).collect()
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(TargetUnreachable, match="is not a Redis snapshot"):
        load_snapshot(bad)
    bad.write_text(json.dumps({"format": "auditor.redis-snapshot", "version": 1, "facts": {"usage": "cache"}}))
    with pytest.raises(TargetUnreachable, match="malformed: missing key 'target'"):
        load_snapshot(bad)


def test_constructor_errors():
    with pytest.raises(ConfigError):
        RedisCollector()
    with pytest.raises(ConfigError):
        RedisCollector("redis://127.0.0.1:6379/0", snapshot="x.json")
    with pytest.raises(ConfigError, match="redis.usage"):
        RedisCollector("redis://127.0.0.1:6379/0", usage="queue")
    with pytest.raises(ConfigError, match="sample_keys"):
        RedisCollector("redis://127.0.0.1:6379/0", sample_keys=-1)
    with pytest.raises(ConfigError) as err:
        RedisCollector("http://:hunter22@127.0.0.1/0")
    assert "hunter22" not in str(err.value)
