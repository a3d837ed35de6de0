"""Discover checks through the ``auditor.checks`` entry-point group.

Built-in checks (``checks/``) and third-party ones are found the same way. A
rule id registered twice is a hard error (flake8 silently lets one win; we do not).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from auditor.check import Check
from auditor.errors import RegistryError
from auditor.facts import KINDS

GROUP = "auditor.checks"


@dataclass(frozen=True)
class Registered:
    rule_id: str
    check: Check
    origin: str  # "<distribution> (<module:attr>)"


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = dist.metadata["Name"] if dist is not None else "?"
    return f"{name} ({ep.value})"


def discover(group: str = GROUP) -> dict[str, Registered]:
    """Load every check of ``group``. Returns {rule_id: Registered}.

    Raises RegistryError on a duplicate rule id, a check whose ``rule_id``
    differs from its entry-point name, or an entry point that does not load.
    """
    found: dict[str, Registered] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        origin = _origin(ep)
        if ep.name in found:
            if found[ep.name].origin == origin:  # the same dist seen twice on sys.path
                continue
            raise RegistryError(
                f"rule id {ep.name} is registered twice: by {found[ep.name].origin} and by {origin}; "
                "uninstall one of them or give the third-party check another id"
            )
        try:
            obj = ep.load()
            check = obj() if isinstance(obj, type) else obj
        except Exception as exc:  # noqa: BLE001 - report which plugin is broken
            raise RegistryError(f"check {ep.name} from {origin} failed to load: {exc}") from exc
        if getattr(check, "rule_id", None) != ep.name:
            raise RegistryError(
                f"check {origin} is registered as {ep.name} but declares rule_id "
                f"{getattr(check, 'rule_id', None)!r}"
            )
        if not isinstance(check, Check):
            raise RegistryError(f"check {ep.name} from {origin} lacks rule_id/requires/run")
        unknown = [k for k in (*check.requires, *check.requires_one_of) if k not in KINDS]
        if unknown:
            raise RegistryError(f"check {ep.name} from {origin} requires unknown evidence kind(s) "
                                f"{', '.join(map(repr, unknown))}; expected: {', '.join(KINDS)}")
        found[ep.name] = Registered(ep.name, check, origin)
    return found
