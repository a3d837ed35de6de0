"""Registrations to :class:`~auditor.facts.source.Handler` records, once every module
is scanned: a function registration names the function; a class-based view (Django
View, DRF APIView / ViewSet, Flask MethodView) names each of its request methods
(:data:`CBV_METHODS`, DRF ``@action`` methods, or the actions of
``as_view({"get": "list"})``), found along its project base classes. Django routes
get their ``include()`` prefixes and a leading "/". ``def view(request, ...)`` in a
``views`` module that nothing registered is a handler with no route (via "views.py").
"""

from __future__ import annotations

from typing import Callable

from auditor.collectors.source.resolve import Resolver
from auditor.collectors.source.routes import VERBS, Pending, Routes
from auditor.facts.source import Function, Handler

# Methods of a class-based view (Django View / DRF APIView and ViewSet / Flask
# MethodView and View) that the framework calls for a request, with the HTTP
# methods they serve (() = any). From the Django, DRF and Flask docs.
CBV_METHODS: dict[str, tuple[str, ...]] = {
    **{v: (v.upper(),) for v in VERBS},
    "dispatch": (), "dispatch_request": (),
    "form_valid": ("POST",), "form_invalid": ("POST",),
    "get_queryset": (), "get_object": (), "get_context_data": ("GET",),
    "list": ("GET",), "retrieve": ("GET",), "create": ("POST",), "update": ("PUT",),
    "partial_update": ("PATCH",), "destroy": ("DELETE",),
    "perform_create": ("POST",), "perform_update": ("PUT", "PATCH"), "perform_destroy": ("DELETE",),
}
_MAX_INCLUDES = 10  # include() levels followed for a Django route's prefix


def handlers(routes: Routes, functions: dict[str, Function], names: Resolver) -> list[Handler]:
    """The handlers of every registration in ``routes`` whose target is a scanned
    function or class (one per registration and method-bearing function, in
    registration order), then the unregistered Django view candidates."""
    out: list[Handler] = []

    def add(qual: str, p: Pending, methods: tuple[str, ...]) -> None:
        fn = functions.get(qual)
        if fn is not None:
            route = django_route(routes.includes, p.module, p.route) if p.via == "urls.py" else p.route
            out.append(Handler(qual, p.framework, route, methods, fn.file, fn.line, p.via))

    for p in routes.pending:
        if p.is_class is not True and p.target in functions:
            add(p.target, p, p.methods or routes.view_methods.get(p.target, ()))
        elif p.is_class is not False and p.target in names.classes:
            _class_handlers(p, add, functions, names)
    seen = {h.qualname for h in out}
    for qual in routes.view_candidates:
        if qual not in seen:
            fn = functions[qual]
            out.append(Handler(qual, "django", None, routes.view_methods.get(qual, ()), fn.file, fn.line,
                               "views.py"))
    return out


def django_route(includes: dict[str, tuple[str, str]], module: str, route: str | None) -> str | None:
    """The full path of a route declared in URLconf ``module``: the prefixes of the
    ``include()`` chain leading to it prepended (``includes``: URLconf -> (including
    module, prefix)), regex anchors dropped where pieces join, with a leading "/"."""
    if route is None:
        return None
    pieces = [route]
    seen = {module}
    while module in includes and len(seen) < _MAX_INCLUDES:
        module, prefix = includes[module]
        if module in seen:
            break
        seen.add(module)
        pieces.insert(0, prefix)
    return "/" + "".join(p.lstrip("^").removesuffix("$") if i < len(pieces) - 1 else p.lstrip("^")
                         for i, p in enumerate(pieces)).lstrip("/")


def _class_handlers(p: Pending, add: Callable[[str, Pending, tuple[str, ...]], None],
                    functions: dict[str, Function], names: Resolver) -> None:
    mro = names.mro(p.target)

    def defining(name: str) -> str | None:
        for k in mro:
            if name in k.methods:
                return f"{k.qualname}.{name}"
        return None

    if p.actions:
        for method, action in p.actions:
            q = defining(action)
            if q:
                add(q, p, (method,))
        return
    for name, methods in CBV_METHODS.items():
        q = defining(name)
        if q:
            add(q, p, methods)
    for k in mro:  # DRF @action methods
        for name in sorted(k.methods):
            fn = functions.get(f"{k.qualname}.{name}")
            if fn and name not in CBV_METHODS and any(
                    d.rsplit(".", 1)[-1] == "action" for d in fn.decorators):
                add(fn.qualname, p, ())
