"""The exception root. Findings are values, never exceptions; these are for
conditions a user has to act on (a bad config, a target that cannot be reached)."""

from __future__ import annotations


class AuditorError(Exception):
    """Root of every error the auditor raises on purpose.

    ``str(err)`` is a message a user can act on; it never contains a secret
    (callers pass DSNs and URLs through :func:`auditor.redact.redact` first).
    """


class ConfigError(AuditorError):
    """Invalid configuration or command line. Exit code 2."""


class TargetUnreachable(AuditorError):
    """A collector could not reach or read its target (a server, a file).

    The audit goes on; the target's checklist items become ``not verified``
    with this message as the reason.
    """


class CheckCrashed(AuditorError):
    """A check raised instead of returning findings. Its item becomes ``error``."""


class RegistryError(AuditorError):
    """The check registry is inconsistent (duplicate rule id, check without rule)."""
