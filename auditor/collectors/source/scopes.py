"""What the scan knows about names: bindings, the scopes that hold them, and the
project's modules and classes. Filled by :mod:`.bindings` (module and class level)
and :mod:`.functions` (function level); read by :mod:`.resolve`."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Binding:
    """A binding of a name in a scope.

    kind: "def" (value: the qualname of a def/class here), "name" (value: a dotted
    name, canonicalised on use), "expr" (value: (node, scope), evaluated lazily:
    module and class level), "type" (value: (annotation, scope), lazily) or
    "unknown" (shadows outer names; resolves to nothing).
    """
    kind: str
    value: Any = None
    node: ast.AST | None = None  # the bound call, for route prefixes


class Scope:
    """Names bound in a module, class body or function; ``parent``: the enclosing
    scope names are looked up in next (a class body is skipped by its methods)."""
    __slots__ = ("module", "parent", "names")

    def __init__(self, module: Module, parent: Scope | None = None) -> None:
        self.module = module
        self.parent = parent
        self.names: dict[str, Binding] = {}


@dataclass(eq=False)
class Module:
    """One scanned file. ``stars``: modules it star-imports; ``urlpatterns``: it assigns
    ``urlpatterns`` (a Django URLconf); ``frameworks``: web frameworks it imports."""
    name: str
    file: str
    is_package: bool
    scope: Scope = field(init=False)
    stars: list[str] = field(default_factory=list)
    urlpatterns: bool = False
    frameworks: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.scope = Scope(self)

    @property
    def is_views(self) -> bool:
        """A Django ``views`` module, or a module in a ``views`` package."""
        parts = self.name.split(".")
        return parts[-1] == "views" or "views" in parts[:-1]


@dataclass(eq=False)
class Class:
    """A project class: its bases (resolved on use), the names of its methods and
    nested classes, and its attributes (class-level and ``self.x = ...``)."""
    qualname: str
    scope: Scope  # the scope the class statement is in
    bases: list[ast.expr]
    methods: set[str] = field(default_factory=set)
    attrs: dict[str, Binding] = field(default_factory=dict)
    nested: set[str] = field(default_factory=set)
