"""Pass 2: function records and their call sites.

:class:`BodyScanner` walks one body (module, class or function) in source order.
Each ``def`` becomes a :class:`~auditor.facts.source.Function` whose calls are
resolved through the bindings known at that point: pass 1's module and class
bindings and the function's own (parameters typed by their annotations,
assignments, ``with ... as``, local imports and defs), so a name rebound later in
the body resolves to its later value from there on. Defs and calls are reported
to :class:`~auditor.collectors.source.routes.Routes` as handler registrations.
"""

from __future__ import annotations

import ast
from typing import Any

from auditor.collectors.source.bindings import import_bindings, register_class
from auditor.collectors.source.resolve import Resolver
from auditor.collectors.source.routes import Routes
from auditor.collectors.source.scopes import Binding, Class, Module, Scope
from auditor.collectors.source.syntax import callee_text, segment
from auditor.facts.source import CallSite, Function


class BodyScanner(ast.NodeVisitor):
    """Walks one body (``kind``: "module", "class" or "function") in source order,
    recording functions into ``functions`` (qualname -> Function; the first
    definition of a qualname wins), calls and local bindings (function bodies only)
    and handler registrations. ``prefix``: the qualname defs here are named under;
    ``lines``: the file's lines (for call text)."""

    def __init__(self, names: Resolver, routes: Routes, functions: dict[str, Function], m: Module,
                 scope: Scope, prefix: str, kind: str, lines: list[str], cls: Class | None = None) -> None:
        self.names, self.routes, self.functions = names, routes, functions
        self.m, self.scope, self.prefix, self.kind, self.cls = m, scope, prefix, kind, cls
        self.lines = lines
        self.calls: list[CallSite] = []
        self._awaited: set[int] = set()
        self._within: list[str] = []
        self._deferred: list[str | None] = []

    def _nested(self, scope: Scope, prefix: str, kind: str, cls: Class | None = None) -> BodyScanner:
        return BodyScanner(self.names, self.routes, self.functions, self.m, scope, prefix, kind, self.lines, cls)

    def scan(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.visit(stmt)

    # faster than NodeVisitor's: one dict lookup per node type, no field reflection
    _dispatch: dict[type, Any] = {}

    def visit(self, node: ast.AST) -> None:
        method = self._dispatch.get(type(node))
        if method is None:
            method = getattr(type(self), "visit_" + type(node).__name__, None) or type(self).generic_visit
            self._dispatch[type(node)] = method
        method(self, node)

    def generic_visit(self, node: ast.AST) -> None:
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                self.visit(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)

    def visit_Constant(self, node: ast.Constant) -> None:
        pass

    def visit_Name(self, node: ast.Name) -> None:
        pass

    # definitions ---------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        qual = f"{self.prefix}.{node.name}"
        if self.kind == "function":
            self.scope.names[node.name] = Binding("def", qual)
        decorators = tuple(self._decorator_name(d) for d in node.decorator_list)
        outer = self.scope.parent if self.kind == "class" else self.scope
        fscope = Scope(self.m, outer)
        a = node.args
        positional = a.posonlyargs + a.args
        for arg in positional + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]:
            t = self.names.annotation(arg.annotation, self.scope) if arg.annotation is not None else None
            fscope.names[arg.arg] = Binding("name", t) if t else Binding("unknown")
        if self.kind == "class" and positional and not any(d.endswith("staticmethod") for d in decorators):
            fscope.names[positional[0].arg] = Binding("def", self.cls.qualname)
        body = self._nested(fscope, f"{qual}.<locals>", "function")
        body.scan(node.body)
        self.functions.setdefault(qual, Function(
            qual, self.m.file, node.lineno, tuple(body.calls),
            isinstance(node, ast.AsyncFunctionDef), decorators))
        self.routes.function(node, qual, decorators, self.scope, self.m, module_level=self.kind == "module")

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        for b in node.bases:
            self.visit(b)
        qual = f"{self.prefix}.{node.name}"
        k = register_class(node, qual, self.m, self.scope, self.names.classes)
        if self.kind == "function":
            self.scope.names[node.name] = Binding("def", qual)
        self._nested(Scope(self.m, self.scope), qual, "class", cls=k).scan(node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._deferred.append(self._within[-1] if self._within else None)
        self.visit(node.body)
        self._deferred.pop()

    def _decorator_name(self, d: ast.AST) -> str:
        target = d.func if isinstance(d, ast.Call) else d
        return self.names.expr(target, self.scope) or callee_text(target)

    # calls --------------------------------------------------------------------------

    def visit_Await(self, node: ast.Await) -> None:
        if isinstance(node.value, ast.Call):
            self._awaited.add(id(node.value))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.names.expr(node.func, self.scope)
        if self.kind == "function":
            self.calls.append(CallSite(
                name=name if name is not None else callee_text(node.func),
                line=node.lineno,
                text=segment(self.lines, node),
                resolved=name is not None,
                awaited=id(node) in self._awaited,
                within=self._within[-1] if self._within else None,
                deferred_by=self._deferred[-1] if self._deferred else None,
                keywords=tuple(kw.arg for kw in node.keywords if kw.arg),
            ))
        self.routes.call(node, name, self.scope, self.m)
        self.visit(node.func)
        self._within.append(name if name is not None else callee_text(node.func))
        for a in node.args:
            self.visit(a)
        for kw in node.keywords:
            self.visit(kw.value)
        self._within.pop()

    # bindings (function scopes; module and class bindings come from pass 1) ---------

    def _bind(self, target: ast.AST, b: Binding) -> None:
        if self.kind != "function":
            return
        if isinstance(target, ast.Name):
            self.scope.names[target.id] = b
        elif isinstance(target, (ast.Tuple, ast.List)):
            for e in target.elts:
                self._bind(e.value if isinstance(e, ast.Starred) else e, Binding("unknown"))

    def _binding_for(self, value: ast.AST | None) -> Binding:
        if value is None:
            return Binding("unknown")
        t = self.names.object_of(value, self.scope)
        return Binding("name", t, node=value) if t else Binding("unknown", node=value)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for t in node.targets:
            if isinstance(t, (ast.Attribute, ast.Subscript)):
                self.visit(t)
            self._bind(t, self._binding_for(node.value))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        t = self.names.annotation(node.annotation, self.scope)
        self._bind(node.target, Binding("name", t) if t else self._binding_for(node.value))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._bind(node.target, self._binding_for(node.value))

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for name, b in import_bindings(node, self.m):
            if name != "*":
                self._bind(ast.Name(id=name), b)

    visit_ImportFrom = visit_Import

    def _with(self, node: ast.With | ast.AsyncWith, is_async: bool) -> None:
        for item in node.items:
            if is_async and isinstance(item.context_expr, ast.Call):
                self._awaited.add(id(item.context_expr))
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._bind(item.optional_vars, self._binding_for(item.context_expr))
        self.scan(node.body)

    def visit_With(self, node: ast.With) -> None:
        self._with(node, False)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self._with(node, True)

    def _for(self, node: ast.For | ast.AsyncFor, is_async: bool) -> None:
        if is_async and isinstance(node.iter, ast.Call):
            self._awaited.add(id(node.iter))
        self.visit(node.iter)
        self._bind(node.target, Binding("unknown"))
        self.scan(node.body)
        self.scan(node.orelse)

    def visit_For(self, node: ast.For) -> None:
        self._for(node, False)

    def visit_AsyncFor(self, node: ast.AsyncFor) -> None:
        self._for(node, True)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(ast.Name(id=node.name), Binding("unknown"))
        self.scan(node.body)
