"""RDS103: the Redis default user must not accept connections without a password."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.model import Finding, Inconclusive, Severity


class RedisDefaultUserNoPassword(BaseCheck):
    """A finding when the ``default`` user is enabled (``on``) with ``nopass``:
    every client that reaches the port is that user, without authenticating.

    Severity: the rule's (high); critical when the default user may also run
    every command (``+@all`` with no exclusions: FLUSHALL, CONFIG SET, ...).
    Source: Redis' security guide (requirepass or ACL users, default user off).

    Reads ``facts.redis.default_user_*`` (from ``ACL GETUSER default``, else
    ``CONFIG GET requirepass`` on Redis < 6, else an unauthenticated PING).
    ``Inconclusive`` when ``default_user_nopass`` is None, or when it is True
    but whether the user is enabled is unknown. No params.
    """

    rule_id: ClassVar[str] = "RDS103"
    requires: ClassVar[tuple[str, ...]] = ("redis",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        redis = facts.redis
        assert redis is not None
        nopass, enabled = redis.default_user_nopass, redis.default_user_enabled
        if nopass is None:
            yield Inconclusive(
                f"cannot tell whether the default user of {redis.target} has a password: {redis.default_user_source}"
            )
            return
        if not nopass or enabled is False:
            return
        if enabled is None:
            yield Inconclusive(
                f"the default user of {redis.target} has nopass, but whether it is enabled is unknown "
                f"({redis.default_user_source})"
            )
            return
        all_commands = redis.default_user_all_commands is True
        yield Finding(
            rule_id=self.rule_id,
            message=(
                f"Redis default user has no password (nopass, on)"
                + (" and may run every command (+@all), including FLUSHALL and CONFIG SET" if all_commands else "")
                + ": anyone who reaches the port can use it"
            ),
            fix=(
                "Create an ACL user for the app and switch the default user off (or give it a password):\n"
                "ACL SETUSER app on >LONG-RANDOM-PASSWORD ~* &* +@all -@dangerous\n"
                "ACL SETUSER default off\n"
                "then persist it (ACL SAVE with an aclfile, or requirepass in redis.conf) and use "
                "redis://app:PASSWORD@host:6379/0 in the app."
            ),
            key=f"{redis.target}:default-user-nopass",
            location=redis.target,
            severity=Severity.CRITICAL if all_commands else None,
            evidence={
                "default_user_nopass": nopass,
                "default_user_enabled": enabled,
                "default_user_all_commands": redis.default_user_all_commands,
                "source": redis.default_user_source,
            },
        )
