"""The Redis collector: one INFO snapshot, the memory settings, the default
user, and a bounded keyspace sample. Read-only and bounded (DESIGN.md).

Commands sent, in this order, on one connection (socket timeouts on each):

1. ``INFO`` (first: the PTTL calls of step 4 count as keyspace hits/misses,
   so the counters are read before the collector's own traffic touches them).
2. ``CONFIG GET maxmemory*`` (a managed Redis may refuse it; then
   ``config_error`` says why and INFO's memory fields are used instead).
3. ``ACL GETUSER default``; without ACL support (Redis < 6) ``CONFIG GET
   requirepass``; when neither is permitted, an unauthenticated ``PING`` on a
   second connection tells whether anyone can run commands without a password.
4. ``SCAN cursor COUNT n`` over the URL's database, at most ``sample_keys``
   keys and a bounded number of calls, with the keys' ``PTTL`` read through
   a non-transactional pipeline (one round trip per SCAN batch).

Never: KEYS, CONFIG SET, any write. Passwords in the URL are registered with
:func:`auditor.redact.register_secret` and never reach facts, errors or logs.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

from auditor.errors import ConfigError, TargetUnreachable
from auditor.facts.redis import INFO_FIELDS, KeyspaceSample, RedisFacts, infer_usage
from auditor.redact import redact, redact_obj, register_secret

SNAPSHOT_FORMAT = "auditor.redis-snapshot"
SNAPSHOT_VERSION = 1

CONFIGURED_USAGES: tuple[str, ...] = ("cache", "store", "auto")

# SCAN COUNT hint per call (Redis' default is 10; a few hundred keeps each call
# well under a millisecond on a real server while needing few round trips).
SCAN_COUNT = 200


def _s(value: Any) -> str:
    """bytes -> str (UTF-8, undecodable bytes replaced); anything else -> str."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def parse_info(text: str) -> dict[str, str]:
    """Parse the text of ``INFO`` into {field: value}; keeps :data:`INFO_FIELDS`
    and every ``db<N>`` keyspace line (value e.g. ``"keys=3,expires=1,avg_ttl=0"``)."""
    out: dict[str, str] = {}
    wanted = set(INFO_FIELDS)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, _, value = line.partition(":")
        if name in wanted or (name.startswith("db") and name[2:].isdigit()):
            out[name] = value
    return out


def _reason(exc: BaseException) -> str:
    """The useful part of a redis-py error: the OS reason when there is one."""
    ctx = exc.__cause__ or exc.__context__
    if isinstance(ctx, OSError) and ctx.strerror:
        return ctx.strerror
    if isinstance(exc, redis_lib.TimeoutError):
        return "timed out"
    return str(exc).rstrip(".") or type(exc).__name__


def _error_text(exc: BaseException) -> str:
    """The server's error text; redis-py strips the NOPERM code into a class, put it back."""
    text = str(exc).rstrip(".") or type(exc).__name__
    if isinstance(exc, redis_lib.exceptions.NoPermissionError) and not text.startswith("NOPERM"):
        text = f"NOPERM {text}"
    return text


class RedisCollector:
    """Collect :class:`~auditor.facts.redis.RedisFacts` from a live Redis or a snapshot file.

    - ``url``: ``redis://[user:password@]host:port/db`` (also ``rediss://``, ``unix://``).
    - ``snapshot``: a JSON file written by :func:`save_snapshot`; exactly one of
      ``url`` and ``snapshot`` is given.
    - ``usage``: ``"cache"``, ``"store"`` or ``"auto"`` (infer from the TTLs of the
      sample: see :func:`auditor.facts.redis.infer_usage`). With a snapshot, ``auto``
      keeps the snapshot's usage and ``cache``/``store`` override it.
    - ``sample_keys``: most keys the SCAN sample looks at (default 1000; 0 = no sample).
    - ``timeout_s``: socket connect and read timeout, seconds.

    Raises ConfigError (in the constructor) for a bad URL, usage or bound;
    :meth:`collect` raises TargetUnreachable with a redacted message.
    """

    kind = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        snapshot: str | Path | None = None,
        usage: str = "auto",
        sample_keys: int = 1000,
        timeout_s: float = 3.0,
    ) -> None:
        if (url is None) == (snapshot is None):
            raise ConfigError("give either a Redis URL (redis.url) or a snapshot file (redis.snapshot), not both or neither")
        if usage not in CONFIGURED_USAGES:
            raise ConfigError(f"redis.usage must be one of {', '.join(CONFIGURED_USAGES)}, not {usage!r}")
        if not isinstance(sample_keys, int) or isinstance(sample_keys, bool) or sample_keys < 0:
            raise ConfigError(f"redis sample_keys must be a whole number >= 0, not {sample_keys!r}")
        if not timeout_s or timeout_s <= 0:
            raise ConfigError(f"redis timeout must be > 0 seconds, not {timeout_s!r}")
        self.usage = usage
        self.sample_keys = sample_keys
        self.timeout_s = float(timeout_s)
        self.snapshot = Path(snapshot) if snapshot is not None else None
        self._url = url
        self._params: dict[str, Any] = {}
        if url is not None:
            try:
                self._params = parse_url(url)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"invalid redis.url {redact(url)}: {redact(exc)}") from None
            register_secret(self._params.get("password"))
            if self._params.get("password"):
                register_secret(quote(str(self._params["password"]), safe=""))
        self.target = redact(url) if url is not None else str(self.snapshot)

    def __repr__(self) -> str:
        return f"RedisCollector({self.describe()!r})"

    def describe(self) -> str:
        """What is read, redacted: the URL, or the snapshot file."""
        if self.snapshot is not None:
            return f"Redis snapshot {self.snapshot}"
        return f"Redis {self.target}"

    # -- collection -----------------------------------------------------------

    def collect(self) -> RedisFacts:
        """Read the facts (live or from the snapshot). Raises TargetUnreachable."""
        if self.snapshot is not None:
            facts = load_snapshot(self.snapshot)
            if self.usage != "auto":
                facts = _with_usage(facts, self.usage, f"configured (redis.usage: {self.usage})")
            return facts
        return self._collect_live()

    def _client(self, *, anonymous: bool = False) -> redis_lib.Redis:
        """A client for the URL; ``anonymous`` drops the URL's user and password
        (built from the parsed URL: ``from_url`` lets URL parts win over arguments)."""
        kwargs: dict[str, Any] = dict(
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            decode_responses=False,
        )
        kwargs.update(self._params)
        if anonymous:
            kwargs.pop("username", None)
            kwargs.pop("password", None)
        client = redis_lib.Redis(connection_pool=redis_lib.ConnectionPool(**kwargs))
        client.set_response_callback("INFO", lambda resp, **_: resp)  # keep the raw text
        return client

    def _unreachable(self, exc: BaseException) -> TargetUnreachable:
        has_password = bool(self._params.get("password"))
        needs_auth = isinstance(exc, redis_lib.AuthenticationError)
        if needs_auth and not has_password:
            msg = (f"Redis at {self.target} requires a password: put it in redis.url "
                   "(redis://:PASSWORD@host:port/db or redis://USER:PASSWORD@host:port/db)")
        elif needs_auth:
            msg = (f"cannot authenticate to Redis at {self.target}: {_error_text(exc)}; "
                   "check the user and password in redis.url")
        elif isinstance(exc, redis_lib.exceptions.NoPermissionError):
            msg = (f"Redis at {self.target} refused INFO to this user ({_error_text(exc)}); "
                   "audit with a user allowed +info, +config|get, +acl|getuser, +scan and +pttl")
        elif isinstance(exc, redis_lib.TimeoutError):
            msg = (f"cannot connect to Redis at {self.target}: timed out after {self.timeout_s:g} s; "
                   "check redis.url and that the port is reachable")
        else:
            msg = f"cannot connect to Redis at {self.target}: {_reason(exc)}; check redis.url"
        return TargetUnreachable(redact(msg))

    def _collect_live(self) -> RedisFacts:
        collected_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        client = self._client()
        try:
            try:
                info_text = _s(client.execute_command("INFO"))
            except redis_lib.RedisError as exc:
                raise self._unreachable(exc) from None
            info = parse_info(info_text)
            try:
                config, config_error = self._config(client)
                nopass, enabled, all_cmds, user_source = self._default_user(client)
                sample = self._sample(client)
            except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
                raise self._unreachable(exc) from None
        finally:
            _close(client)

        if self.usage == "auto":
            usage, usage_reason = infer_usage(sample)
        else:
            usage, usage_reason = self.usage, f"configured (redis.usage: {self.usage})"
        facts = RedisFacts(
            target=self.target,
            version=info.get("redis_version", ""),
            info=info,
            config=config,
            config_error=config_error,
            default_user_nopass=nopass,
            default_user_enabled=enabled,
            default_user_all_commands=all_cmds,
            default_user_source=user_source,
            usage=usage,
            usage_reason=usage_reason,
            sample=sample,
            collected_at=collected_at,
        )
        return RedisFacts.from_dict(redact_obj(facts.to_dict()))  # belt and braces

    def _config(self, client: redis_lib.Redis) -> tuple[dict[str, str], str | None]:
        """CONFIG GET maxmemory* -> ({"maxmemory", "maxmemory-policy"}, None) or ({}, why)."""
        try:
            raw = client.execute_command("CONFIG", "GET", "maxmemory*")
        except redis_lib.ResponseError as exc:
            verb = "not permitted" if isinstance(exc, redis_lib.exceptions.NoPermissionError) else "failed"
            return {}, redact(f"CONFIG GET {verb}: {_error_text(exc)}")
        if isinstance(raw, dict):  # RESP3
            pairs = {_s(k): _s(v) for k, v in raw.items()}
        else:
            items = [_s(x) for x in raw or []]
            pairs = dict(zip(items[::2], items[1::2]))
        config = {k: pairs[k] for k in ("maxmemory", "maxmemory-policy") if k in pairs}
        if len(config) < 2:
            return config, "CONFIG GET maxmemory* did not return maxmemory and maxmemory-policy"
        return config, None

    def _default_user(self, client: redis_lib.Redis) -> tuple[bool | None, bool | None, bool | None, str]:
        """(nopass, enabled, all_commands, how it was told or why not)."""
        try:
            raw = client.execute_command("ACL", "GETUSER", "default")
        except redis_lib.ResponseError as exc:
            acl_error = _error_text(exc)
        else:
            if raw is None:
                acl_error = "ACL GETUSER default returned no user"
            else:
                if isinstance(raw, dict):  # RESP3
                    fields = {_s(k): v for k, v in raw.items()}
                else:
                    fields = {_s(k): v for k, v in zip(raw[::2], raw[1::2])}
                flags = [_s(f) for f in fields.get("flags") or []]
                commands = _s(fields.get("commands") or "").split()
                all_cmds = "+@all" in commands and not any(c.startswith("-") for c in commands)
                return "nopass" in flags, "on" in flags, all_cmds, "ACL GETUSER default"

        if "unknown command" in acl_error.lower():  # Redis < 6: requirepass is the only password
            try:
                raw = client.execute_command("CONFIG", "GET", "requirepass")
            except redis_lib.ResponseError as exc:
                acl_error += f"; CONFIG GET requirepass: {_error_text(exc)}"
            else:
                pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
                value = {_s(k): _s(v) for k, v in pairs}.get("requirepass")
                if value is not None:
                    register_secret(value)
                    return value == "", True, True, "CONFIG GET requirepass (no ACL support)"

        if not (self._params.get("password") or self._params.get("username")):
            # We are the default user, connected without a password, and INFO worked.
            return True, True, None, f"connected without a password ({redact(acl_error)})"

        # We authenticated; ask anonymously whether the port answers without one.
        anon = self._client(anonymous=True)
        try:
            anon.ping()
        except redis_lib.AuthenticationError as exc:
            return False, None, None, redact(f"unauthenticated PING refused: {_error_text(exc)}")
        except redis_lib.exceptions.NoPermissionError as exc:
            # Authenticated as default (no password) but PING is not in its ACL.
            return True, True, False, redact(f"unauthenticated connection accepted (PING: {_error_text(exc)})")
        except redis_lib.ResponseError as exc:
            return None, None, None, redact(f"ACL GETUSER default: {acl_error}; unauthenticated PING: {_error_text(exc)}")
        except redis_lib.RedisError as exc:
            return None, None, None, redact(f"ACL GETUSER default: {acl_error}; unauthenticated PING: {_reason(exc)}")
        else:
            return True, True, None, "an unauthenticated connection ran PING"
        finally:
            _close(anon)

    def _sample(self, client: redis_lib.Redis) -> KeyspaceSample:
        """Bounded SCAN of the URL's db: at most ``sample_keys`` keys get a PTTL
        and at most ``2 * ceil(sample_keys / SCAN_COUNT) + 10`` SCAN calls are made
        (SCAN's COUNT is only a hint); PTTL per batch in one pipeline round trip.
        A refused SCAN (NOPERM) ends the sample with ``error`` set."""
        db = int(self._params.get("db") or 0)
        cap = self.sample_keys
        if cap == 0:
            return KeyspaceSample(sample_cap=0, db=db)
        count = min(SCAN_COUNT, cap)
        max_calls = 2 * math.ceil(cap / count) + 10
        cursor: int | bytes = 0
        seen = with_ttl = without_ttl = calls = 0
        complete = False
        while seen < cap and calls < max_calls:
            try:
                cursor, keys = client.execute_command("SCAN", cursor, "COUNT", count)
            except redis_lib.ResponseError as exc:
                return KeyspaceSample(
                    scanned=with_ttl + without_ttl, with_ttl=with_ttl, without_ttl=without_ttl,
                    sample_cap=cap, complete=False, db=db, error=redact(f"SCAN: {_error_text(exc)}"))
            calls += 1
            keys = list(keys)[: cap - seen]
            if keys:
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.execute_command("PTTL", key)
                for ttl in pipe.execute(raise_on_error=False):
                    if isinstance(ttl, Exception):
                        continue
                    if ttl == -1:
                        without_ttl += 1
                    elif ttl >= 0:
                        with_ttl += 1
                    # -2: expired or deleted between SCAN and PTTL; not counted
                seen += len(keys)  # keys looked at, vanished ones included
            if int(cursor) == 0:
                complete = True
                break
        return KeyspaceSample(
            scanned=with_ttl + without_ttl, with_ttl=with_ttl, without_ttl=without_ttl,
            sample_cap=cap, complete=complete, db=db,
        )


def _close(client: redis_lib.Redis) -> None:
    """Close the client and its own pool (Redis.close leaves an injected pool open)."""
    client.close()
    client.connection_pool.disconnect()


def _with_usage(facts: RedisFacts, usage: str, reason: str) -> RedisFacts:
    return replace(facts, usage=usage, usage_reason=reason)


def save_snapshot(facts: RedisFacts, path: str | Path) -> Path:
    """Write ``facts`` as a JSON snapshot (redacted again on the way out). Returns the path.

    Format: ``{"format": "auditor.redis-snapshot", "version": 1, "facts": {...}}``.
    Written atomically (temporary file, then rename).
    """
    path = Path(path)
    doc = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "facts": redact_obj(facts.to_dict())}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_snapshot(path: str | Path) -> RedisFacts:
    """Read a snapshot written by :func:`save_snapshot`.

    Raises TargetUnreachable when the file is missing, unreadable or not a
    Redis snapshot (the message names the file and the problem).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetUnreachable(f"cannot read Redis snapshot {path}: {exc.strerror or exc}; check redis.snapshot") from None
    except ValueError as exc:
        raise TargetUnreachable(f"Redis snapshot {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
        raise TargetUnreachable(f"{path} is not a Redis snapshot (expected \"format\": \"{SNAPSHOT_FORMAT}\")")
    if doc.get("version") != SNAPSHOT_VERSION:
        raise TargetUnreachable(
            f"Redis snapshot {path} has version {doc.get('version')!r}; this auditor reads version {SNAPSHOT_VERSION}")
    try:
        return RedisFacts.from_dict(doc.get("facts"))  # type: ignore[arg-type]
    except ValueError as exc:
        raise TargetUnreachable(f"Redis snapshot {path} is malformed: {redact(exc)}") from None
