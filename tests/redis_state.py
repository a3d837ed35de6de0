"""Test helper: put the machine's real Redis into a scenario and always put it back.

:func:`redis_lab` records the settings the Redis tests change (maxmemory,
maxmemory-policy, the default user's password and on/off state), runs the
test, and restores them in ``finally`` through a dedicated admin ACL user, so
a test that gave the default user a password cannot leave the server locked
for the rest of the suite. Keys are written only to db 13 (``TEST_DB``),
which is flushed before and after. A lock key in db 15 serialises concurrent
runs (two pytest processes recording each other's half-changed state would
otherwise "restore" the wrong thing).

Not a fixture file of its own: tests/test_redis_*.py import it.
"""

from __future__ import annotations

import secrets
import time
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import quote

import redis as redis_lib
from redis.connection import parse_url

TEST_DB = 13
LOCK_DB = 15
LOCK_KEY = "auditor-test:redis-state-lock"
LOCK_TTL_MS = 300_000
USER_PREFIX = "auditor-test-"
ADMIN_USER = f"{USER_PREFIX}admin"


def _client(base_url: str, db: int, **overrides) -> redis_lib.Redis:
    """A client for ``base_url``'s server on database ``db`` (from_url would let the
    URL's own /db win over a ``db=`` argument, so build it from the parsed URL)."""
    params = parse_url(base_url)
    params.update(db=db, socket_timeout=5, decode_responses=True, **overrides)
    return redis_lib.Redis(**params)


def _acl_default(client: redis_lib.Redis) -> dict:
    raw = client.execute_command("ACL", "GETUSER", "default")
    fields = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2]))
    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    dec = lambda x: x.decode() if isinstance(x, bytes) else x  # noqa: E731
    return {"flags": sorted(dec(f) for f in fields["flags"]),
            "passwords": sorted(dec(p) for p in fields["passwords"])}


class RedisLab:
    """Handle a test gets: URLs for the real server and helpers to shape it."""

    def __init__(self, base_url: str, admin: redis_lib.Redis, orig_default: dict) -> None:
        self._orig_default = orig_default
        p = parse_url(base_url)
        self.host = p.get("host", "127.0.0.1")
        self.port = int(p.get("port", 6379))
        self.admin = admin  # the admin ACL user, on TEST_DB, decode_responses=True
        self._users: set[str] = set()

    def url(self, *, db: int = TEST_DB, user: str | None = None, password: str | None = None) -> str:
        auth = ""
        if user or password:
            auth = f"{quote(user or '', safe='')}:{quote(password or '', safe='')}@"
        return f"redis://{auth}{self.host}:{self.port}/{db}"

    # -- server settings ----------------------------------------------------------
    def configure(self, maxmemory: str, policy: str) -> None:
        self.admin.config_set("maxmemory", maxmemory)
        self.admin.config_set("maxmemory-policy", policy)

    def resetstat(self) -> None:
        self.admin.execute_command("CONFIG", "RESETSTAT")

    def add_user(self, name: str, password: str, *rules: str) -> str:
        """Create (or reset) an ACL user ``auditor-test-<name>``; deleted on exit."""
        full = f"{USER_PREFIX}{name}"
        self.admin.execute_command("ACL", "SETUSER", full, "reset", "on", f">{password}", *rules)
        self._users.add(full)
        return full

    def default_password(self, password: str) -> None:
        """Give the default user a password (restored on exit, and by :meth:`default_restore`)."""
        self.admin.execute_command("ACL", "SETUSER", "default", "resetpass", f">{password}")

    def default_restore(self) -> None:
        """Put the default user's passwords and on/off back as recorded (never ACL
        ``reset``: it would add the sanitize-payload flag the original may lack)."""
        orig = self._orig_default
        rules = ["resetpass"]
        rules += ["nopass"] if "nopass" in orig["flags"] else [f"#{h}" for h in orig["passwords"]]
        rules.append("on" if "on" in orig["flags"] else "off")
        self.admin.execute_command("ACL", "SETUSER", "default", *rules)

    # -- data -----------------------------------------------------------------------
    def fill(self, n: int, *, ttl_s: int | None, prefix: str = "k") -> list[str]:
        keys = [f"{prefix}:{i}" for i in range(n)]
        pipe = self.admin.pipeline(transaction=False)
        for i, key in enumerate(keys):
            pipe.set(key, f"v{i}", ex=ttl_s)
            if len(pipe) >= 1000:
                pipe.execute()
        pipe.execute()
        return keys

    def traffic(self, keys: list[str], *, hits: int, misses: int) -> None:
        """``hits`` GETs of existing keys and ``misses`` GETs of absent ones (keyspace counters)."""
        pipe = self.admin.pipeline(transaction=False)
        for i in range(hits):
            pipe.get(keys[i % len(keys)])
            if len(pipe) >= 1000:
                pipe.execute()
        for i in range(misses):
            pipe.get(f"absent:{i}")
            if len(pipe) >= 1000:
                pipe.execute()
        pipe.execute()

    def commandstats(self) -> dict[str, int]:
        """{command: calls} from INFO commandstats (server-wide)."""
        stats = self.admin.info("commandstats")
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


@contextmanager
def redis_lab(base_url: str) -> Iterator[RedisLab]:
    """Record, yield a :class:`RedisLab`, restore. Raises AssertionError when the
    restore did not bring back the recorded state (so a leak fails loudly)."""
    base = _client(base_url, TEST_DB)
    lock = _client(base_url, LOCK_DB)
    token = secrets.token_hex(8)
    deadline = time.monotonic() + LOCK_TTL_MS / 1000
    while not lock.set(LOCK_KEY, token, nx=True, px=LOCK_TTL_MS):
        if time.monotonic() > deadline:
            raise RuntimeError(f"another run holds {LOCK_KEY} in db {LOCK_DB}")
        time.sleep(0.1)
    admin = None
    try:
        orig_config = {k: base.config_get(k)[k] for k in ("maxmemory", "maxmemory-policy")}
        orig_default = _acl_default(base)
        admin_pw = secrets.token_hex(16)
        base.execute_command("ACL", "SETUSER", ADMIN_USER, "reset", "on", f">{admin_pw}", "~*", "&*", "+@all")
        admin = _client(base_url, TEST_DB, username=ADMIN_USER, password=admin_pw)
        assert admin.connection_pool.connection_kwargs["db"] == TEST_DB  # never flush another db
        admin.flushdb()
        lab = RedisLab(base_url, admin, orig_default)
        try:
            yield lab
        finally:
            lab.default_restore()  # 1. the default user
            # 2. memory settings, 3. our users and keys
            for key, value in orig_config.items():
                admin.config_set(key, value)
            for user in admin.execute_command("ACL", "USERS"):
                if user.startswith(USER_PREFIX) and user != ADMIN_USER:
                    admin.execute_command("ACL", "DELUSER", user)
            admin.flushdb()
            now_config = {k: admin.config_get(k)[k] for k in orig_config}
            now_default = _acl_default(admin)
            assert now_config == orig_config, f"Redis config not restored: {now_config} != {orig_config}"
            assert now_default == orig_default, f"Redis default user not restored: {now_default} != {orig_default}"
    finally:
        try:
            if admin is not None:
                try:
                    admin.execute_command("ACL", "DELUSER", ADMIN_USER)  # deleting itself drops the connection
                except redis_lib.ConnectionError:
                    pass
                admin.close()
        finally:
            if lock.get(LOCK_KEY) == token:
                lock.delete(LOCK_KEY)
            lock.close()
            base.close()
