"""What names are bound to: import statements (absolute and relative), and the
module- and class-level bindings of pass 1 (defs, classes, assignments,
``self.x = ...`` in methods), recorded before any body is scanned so that a call
can resolve to a name defined later in the file or in another module."""

from __future__ import annotations

import ast

from auditor.collectors.source.scopes import Binding, Class, Module, Scope
from auditor.collectors.source.syntax import statements

# Top-level packages that identify a web framework.
FRAMEWORK_PACKAGES: dict[str, str] = {
    "flask": "flask", "flask_restful": "flask", "flask_smorest": "flask",
    "fastapi": "fastapi", "starlette": "fastapi",
    "django": "django", "rest_framework": "django",
}


def import_bindings(stmt: ast.Import | ast.ImportFrom, m: Module) -> list[tuple[str, Binding]]:
    """(bound name, "name" binding to the dotted name imported) per name of an import
    in module ``m``; ``"*"`` for a star import (value: the module). A relative import
    is resolved against ``m``'s package; one that climbs above the top yields nothing.
    Adds the web frameworks imported to ``m.frameworks``."""
    out: list[tuple[str, Binding]] = []
    if isinstance(stmt, ast.Import):
        for a in stmt.names:
            top = a.name.split(".")[0]
            if top in FRAMEWORK_PACKAGES:
                m.frameworks.add(FRAMEWORK_PACKAGES[top])
            if a.asname:
                out.append((a.asname, Binding("name", a.name)))
            else:
                out.append((top, Binding("name", top)))
        return out
    if stmt.level:
        base_parts = m.name.split(".") if m.is_package else m.name.split(".")[:-1]
        up = stmt.level - 1
        if up > len(base_parts):
            return out
        base_parts = base_parts[: len(base_parts) - up] if up else base_parts
        base = ".".join(base_parts + ([stmt.module] if stmt.module else []))
    else:
        base = stmt.module or ""
        top = base.split(".")[0]
        if top in FRAMEWORK_PACKAGES:
            m.frameworks.add(FRAMEWORK_PACKAGES[top])
    for a in stmt.names:
        if a.name == "*":
            out.append(("*", Binding("name", base)))
        else:
            out.append((a.asname or a.name, Binding("name", f"{base}.{a.name}" if base else a.name)))
    return out


def declare(body: list[ast.stmt], scope: Scope, prefix: str, m: Module, classes: dict[str, Class],
            cls: Class | None = None) -> None:
    """Pass 1 over a module body (``cls`` None: bindings go to ``scope``) or a class
    body (into ``cls``): imports, defs, classes (registered in ``classes``, qualname
    ``prefix.Name``) and assignments, looking into ``if``/``try``/``with`` blocks.
    Values are kept as expressions, resolved on first use."""
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for name, b in import_bindings(stmt, m):
                if name == "*":
                    m.stars.append(b.value)
                elif cls is None:
                    scope.names[name] = b
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if cls is not None:
                cls.methods.add(stmt.name)
                _self_attrs(stmt, cls)
            else:
                scope.names[stmt.name] = Binding("def", f"{prefix}.{stmt.name}")
        elif isinstance(stmt, ast.ClassDef):
            qual = f"{prefix}.{stmt.name}"
            register_class(stmt, qual, m, scope, classes)
            if cls is not None:
                cls.nested.add(stmt.name)
            else:
                scope.names[stmt.name] = Binding("def", qual)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if not isinstance(t, ast.Name):
                    continue
                if t.id == "urlpatterns" and cls is None:
                    m.urlpatterns = True
                if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
                    b = Binding("type", (stmt.annotation, scope))
                elif stmt.value is not None:
                    b = Binding("expr", (stmt.value, scope), node=stmt.value)
                else:
                    continue
                if cls is not None:
                    cls.attrs.setdefault(t.id, b)
                else:
                    scope.names[t.id] = b
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            if stmt.target.id == "urlpatterns" and cls is None:
                m.urlpatterns = True
        elif isinstance(stmt, ast.If):
            declare(stmt.body + stmt.orelse, scope, prefix, m, classes, cls)
        elif isinstance(stmt, (ast.Try, ast.TryStar)):
            handlers_body = [s for h in stmt.handlers for s in h.body]
            declare(stmt.body + handlers_body + stmt.orelse + stmt.finalbody, scope, prefix, m, classes, cls)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            declare(stmt.body, scope, prefix, m, classes, cls)


def register_class(node: ast.ClassDef, qual: str, m: Module, scope: Scope, classes: dict[str, Class]) -> Class:
    """The :class:`Class` named ``qual`` (its statement in ``scope``), declared and
    added to ``classes`` the first time; the first definition of a name wins."""
    k = classes.get(qual)
    if k is None:
        k = classes[qual] = Class(qual, scope, list(node.bases))
        declare(node.body, Scope(m, scope), qual, m, classes, cls=k)
    return k


def _self_attrs(fn: ast.FunctionDef | ast.AsyncFunctionDef, cls: Class) -> None:
    """``self.x = value`` in a method types the attribute ``x`` of the class."""
    params = fn.args.posonlyargs + fn.args.args
    if not params:
        return
    me = params[0].arg
    for node in statements(fn.body):
        if isinstance(node, ast.Assign):
            targets, value, ann = node.targets, node.value, None
        elif isinstance(node, ast.AnnAssign):
            targets, value, ann = [node.target], node.value, node.annotation
        else:
            continue
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == me:
                if ann is not None:
                    b = Binding("type", (ann, cls.scope))
                elif value is not None:
                    b = Binding("expr", (value, cls.scope), node=value)
                else:
                    continue
                cls.attrs.setdefault(t.attr, b)
