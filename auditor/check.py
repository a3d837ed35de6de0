"""The check API. A check is a small class registered under the entry-point
group ``auditor.checks`` with its rule id as the entry-point name::

    [project.entry-points."auditor.checks"]
    PG101 = "checks.missing_index:MissingIndex"

A check does no I/O: it reads :class:`auditor.facts.Facts` and yields
:class:`~auditor.model.Finding` values (or one :class:`~auditor.model.Inconclusive`
when its evidence cannot settle the question). Yielding nothing means pass.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping, Protocol, runtime_checkable

from auditor.facts import Facts
from auditor.model import Finding, Inconclusive


@runtime_checkable
class Check(Protocol):
    rule_id: ClassVar[str]
    # Evidence kinds that must all be present (see auditor.facts.KINDS).
    requires: ClassVar[tuple[str, ...]]
    # If non-empty, at least one of these kinds must be present as well.
    requires_one_of: ClassVar[tuple[str, ...]]

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        """Yield findings for ``facts``; ``params`` are the rule's params merged with config."""
        ...


class BaseCheck:
    """Convenience base: defaults for the class attributes of :class:`Check`."""
    rule_id: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    requires_one_of: ClassVar[tuple[str, ...]] = ()

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        raise NotImplementedError
