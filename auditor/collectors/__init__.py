"""Collectors own all I/O against the audited systems and files.

A collector is created per run with its target and injected into the engine;
nothing connects at import time. ``collect()`` returns the facts for its kind
(see auditor.facts) or raises:

- TargetUnreachable: the target cannot be reached or read (message redacted,
  says what to do); the kind's checklist items become ``not verified``.
- ConfigError: the target's configuration is wrong.

Collectors are read-only and bounded (DESIGN.md).
"""

from __future__ import annotations

from typing import Any, Protocol


class Collector(Protocol):
    kind: str  # one of auditor.facts.KINDS

    def describe(self) -> str:
        """What this collector reads, redacted (for the report's sources section).
        Called before :meth:`collect` (progress) and again after it, so a collector may
        add what it learned while reading (e.g. rows it left out)."""
        ...

    def collect(self) -> Any:
        ...
