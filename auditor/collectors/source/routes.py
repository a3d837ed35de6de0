"""Where a project registers its request handlers, met while its bodies are scanned:

- Flask: ``@app.route`` / ``@app.get`` ... on ``Flask`` and ``Blueprint`` objects
  (``url_prefix`` prepended), ``add_url_rule``, Flask-RESTful ``add_resource``;
- FastAPI: ``@app.get`` / ``@router.post`` / ``api_route`` on ``FastAPI`` and
  ``APIRouter`` objects (``prefix`` prepended), ``add_api_route``;
- Django: ``path()`` / ``re_path()`` / ``url()`` (``include()`` recorded for the
  prefixes), DRF ``router.register``, ``@require_GET``-style decorators, and
  ``def view(request, ...)`` in a ``views`` module as a fallback candidate.

A decorator on an object whose type cannot be resolved (``app = create_app()``)
counts when its first argument is a path (``"/..."``) and the module (or else the
project) imports exactly one of Flask and FastAPI.

Each registration becomes a :class:`Pending`: its target may be defined in a module
not scanned yet, so :mod:`.handlers` turns them into handlers at the end.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from auditor.collectors.source.bindings import FRAMEWORK_PACKAGES
from auditor.collectors.source.resolve import Resolver
from auditor.collectors.source.scopes import Module, Scope
from auditor.collectors.source.syntax import argument, callee_text, kwarg, str_const, str_list

VERBS = ("get", "post", "put", "patch", "delete", "head", "options")
_FLASK_DECORATORS = frozenset(("route",) + VERBS)
_FASTAPI_DECORATORS = frozenset(("api_route",) + VERBS)
_DJANGO_ROUTE_FUNCS = frozenset({
    "django.urls.path", "django.urls.re_path", "django.urls.conf.path", "django.urls.conf.re_path",
    "django.conf.urls.url",
})
# Django view decorators that restrict the HTTP methods.
_DJANGO_METHOD_DECORATORS: dict[str, tuple[str, ...]] = {
    "require_GET": ("GET",), "require_POST": ("POST",), "require_safe": ("GET", "HEAD"),
}
_REGISTRATION_METHODS = ("add_url_rule", "add_api_route", "add_resource", "register")


@dataclass(frozen=True)
class Pending:
    """A handler registration whose target is resolved once every module is scanned."""
    target: str  # dotted name of a function or class
    is_class: bool | None  # None: whichever it turns out to be
    framework: str
    route: str | None
    methods: tuple[str, ...]
    via: str
    actions: tuple[tuple[str, str], ...] = ()  # DRF as_view({"get": "list"}): (method, action)
    module: str = ""  # the module holding the registration (Django: to prepend include() prefixes)


def join_route(prefix: str | None, route: str | None) -> str | None:
    """``route`` under a Blueprint's / APIRouter's ``prefix`` (one "/" between them)."""
    if not prefix:
        return route
    if route is None:
        return prefix
    return prefix.rstrip("/") + "/" + route.lstrip("/") if route else prefix


class Routes:
    """The registrations found so far (``pending``), with what Django adds to them:
    ``view_methods`` (qualname -> methods its decorators allow), ``view_candidates``
    (``def view(request, ...)`` in views modules) and ``includes`` (URLconf module ->
    (the module including it, its route prefix))."""

    def __init__(self, names: Resolver) -> None:
        self.names = names
        self.pending: list[Pending] = []
        self.view_methods: dict[str, tuple[str, ...]] = {}
        self.view_candidates: list[str] = []
        self.includes: dict[str, tuple[str, str]] = {}

    # what the scanner reports ---------------------------------------------------------

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, qual: str, decorators: tuple[str, ...],
                 scope: Scope, m: Module, module_level: bool) -> None:
        """A def named ``qual`` in ``scope`` with its decorators' resolved names."""
        for d in node.decorator_list:
            self._route_decorator(d, qual, scope, m)
        methods = _django_methods(node.decorator_list, decorators)
        if methods:
            self.view_methods[qual] = methods
        positional = node.args.posonlyargs + node.args.args
        if module_level and m.is_views and positional and positional[0].arg == "request":
            self.view_candidates.append(qual)

    def call(self, call: ast.Call, callee: str | None, scope: Scope, m: Module) -> None:
        """A call (``callee``: its resolved name): add_url_rule / add_api_route /
        add_resource / router.register / Django path()."""
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in _REGISTRATION_METHODS:
            recv = self.names.expr(func.value, scope)
            fw = self._framework_of(recv) or (None if recv is not None else self._guess_framework(m))
            prefix = self._receiver_prefix(func.value, scope)
            methods = str_list(kwarg(call, "methods"))
            if func.attr == "add_url_rule" and fw == "flask":
                route = join_route(prefix, str_const(argument(call, 0, ("rule",))))
                self._view(argument(call, 2, ("view_func",)), scope, "flask", route, methods, "add_url_rule")
            elif func.attr == "add_api_route" and fw == "fastapi":
                route = join_route(prefix, str_const(argument(call, 0, ("path",))))
                self._view(argument(call, 1, ("endpoint",)), scope, "fastapi", route, methods or ("GET",),
                           "add_api_route")
            elif func.attr == "add_resource" and fw == "flask":
                route = str_const(argument(call, 1))
                self._view(argument(call, 0, ("resource",)), scope, "flask", route, (), "add_resource")
            elif func.attr == "register" and recv and recv.startswith("rest_framework.routers."):
                route = str_const(argument(call, 0, ("prefix",)))
                self._view(argument(call, 1, ("viewset",)), scope, "django", route, (), "router.register")
            return
        is_route = callee in _DJANGO_ROUTE_FUNCS or (
            callee is None and isinstance(func, ast.Name) and func.id in ("path", "re_path", "url")
            and m.urlpatterns)
        if is_route:
            self._django_path(call, scope, m)

    # frameworks -------------------------------------------------------------------------

    def _framework_of(self, dotted: str | None) -> str | None:
        """The framework of a resolved receiver: its package, or a project class's external bases'."""
        if dotted is None:
            return None
        fw = FRAMEWORK_PACKAGES.get(dotted.split(".")[0])
        if fw:
            return fw
        if dotted in self.names.classes:
            for base in self.names.external_bases(dotted):
                fw = FRAMEWORK_PACKAGES.get(base.split(".")[0])
                if fw:
                    return fw
        return None

    def _guess_framework(self, m: Module) -> str | None:
        """Flask or FastAPI when the module, or else the project, imports exactly one of them."""
        modules = self.names.modules.values()
        for pool in (m.frameworks, {fw for x in modules for fw in x.frameworks}):
            web = pool & {"flask", "fastapi"}
            if len(web) == 1:
                return next(iter(web))
        return None

    def _receiver_prefix(self, node: ast.AST, scope: Scope) -> str | None:
        """``url_prefix=`` of a Blueprint or ``prefix=`` of an APIRouter bound to ``node``."""
        if not isinstance(node, ast.Name):
            return None
        b = self.names.lookup(scope, node.id)
        for _ in range(8):  # follow imports: from app.main import bp
            if b is None:
                return None
            if isinstance(b.node, ast.Call):
                return str_const(kwarg(b.node, "url_prefix", "prefix"))
            if b.kind != "name":
                return None
            mod, _, name = b.value.rpartition(".")
            m = self.names.modules.get(mod)
            b = m.scope.names.get(name) if m is not None else None
        return None

    # registrations ----------------------------------------------------------------------

    def _route_decorator(self, dec: ast.AST, qual: str, scope: Scope, m: Module) -> None:
        if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)):
            return
        attr = dec.func.attr
        recv = self.names.expr(dec.func.value, scope)
        route = str_const(argument(dec, 0, ("rule", "path")))
        fw = self._framework_of(recv)
        if fw is None:
            if recv is not None or not (route or "").startswith("/"):
                return
            fw = self._guess_framework(m)
        if fw == "flask" and attr in _FLASK_DECORATORS or fw == "fastapi" and attr in _FASTAPI_DECORATORS:
            methods = str_list(kwarg(dec, "methods")) or (
                (attr.upper(),) if attr in VERBS else ("GET",))
            route = join_route(self._receiver_prefix(dec.func.value, scope), route)
            self.pending.append(Pending(qual, False, fw, route, methods, "decorator"))

    def _django_path(self, call: ast.Call, scope: Scope, m: Module) -> None:
        """``path(route, view)``; ``path(prefix, include("app.urls"))`` records the prefix."""
        route = str_const(argument(call, 0, ("route", "regex")))
        view = argument(call, 1, ("view",))
        if isinstance(view, ast.Call) and (self.names.expr(view.func, scope) or callee_text(view.func)).endswith(
                "include"):
            included = argument(view, 0, ("arg",))
            if isinstance(included, ast.Tuple) and included.elts:  # include(("app.urls", "app"))
                included = included.elts[0]
            target = str_const(included) or (
                self.names.expr(included, scope) if isinstance(included, (ast.Name, ast.Attribute)) else None)
            if target:
                self.includes.setdefault(target, (m.name, route or ""))
            return
        self._view(view, scope, "django", route, (), "urls.py", module=m.name)

    def _view(self, node: ast.AST | None, scope: Scope, fw: str, route: str | None,
              methods: tuple[str, ...], via: str, depth: int = 0, module: str = "") -> None:
        """Record the view a registration names: a function or class, ``View.as_view()``
        (DRF: with its action map), through up to 4 wrapping calls (``login_required(view)``)."""
        if node is None or depth > 4:
            return
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr == "as_view":
                cls = self.names.expr(f.value, scope)
                actions: tuple[tuple[str, str], ...] = ()
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Dict):
                    actions = tuple((k.value.upper(), v.value) for k, v in zip(first.keys, first.values)
                                    if str_const(k) and str_const(v))
                if cls:
                    self.pending.append(Pending(cls, True, fw, route, methods, via, actions, module))
                return
            callee = self.names.expr(f, scope) or callee_text(f)
            if callee.rsplit(".", 1)[-1] == "include":
                return
            if node.args:  # login_required(view), csrf_exempt(View.as_view())
                self._view(node.args[0], scope, fw, route, methods, via, depth + 1, module)
            return
        target = self.names.expr(node, scope) if isinstance(node, (ast.Name, ast.Attribute)) else str_const(node)
        if target:
            self.pending.append(Pending(self.names.canon(target) or target, None, fw, route, methods, via, (),
                                        module))


def _django_methods(nodes: list[ast.expr], names: tuple[str, ...]) -> tuple[str, ...]:
    """The methods allowed by ``@require_GET`` / ``@require_POST`` / ``@require_safe`` /
    ``@require_http_methods([...])`` / DRF ``@api_view([...])``; () when none."""
    for node, name in zip(nodes, names):
        last = name.rsplit(".", 1)[-1]
        if last in _DJANGO_METHOD_DECORATORS:
            return _DJANGO_METHOD_DECORATORS[last]
        if last in ("require_http_methods", "api_view") and isinstance(node, ast.Call):
            return str_list(argument(node, 0, ("request_method_list", "http_method_names")))
    return ()
