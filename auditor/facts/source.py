"""Source facts: what the source scanner (:mod:`auditor.collectors.source`) extracts
from a Python project's files with the ``ast`` module. Nothing here is executed.

Names are *dotted names resolved through the module's imports and bindings*:

- an import target: ``requests.post`` (``import requests as r; r.post(...)``),
  ``stripe.Charge.create`` (``from stripe import Charge; Charge.create(...)``);
- a type followed by an attribute when the receiver is an object the scanner can
  type (a constructor call ``smtplib.SMTP(...)``, a client factory such as
  ``boto3.client(...)``, a parameter annotation ``tasks: BackgroundTasks``):
  ``smtplib.SMTP.send_message``, ``boto3.client.send_email``,
  ``fastapi.BackgroundTasks.add_task``;
- a project function: ``shop.billing.charge``, ``shop.views.OrderView.post``,
  nested ones as Python spells them: ``app.create_app.<locals>.checkout``.

Module names are those Python would import: a file's path from the nearest
directory (the scanned root or below it) without an ``__init__.py``. File paths
are POSIX, relative to the scanned root. Line numbers are 1-based.

All values are JSON-friendly (str, int, bool, None, tuples, dicts of those):
``dataclasses.asdict(facts)`` serialises them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CallSite:
    """One call expression inside a function body (calls in nested ``def``s belong
    to the nested function; calls in a ``lambda`` belong to the enclosing one)."""
    name: str  # resolved dotted name ("requests.post"); the source text of the callee when not resolved
    line: int
    text: str  # the call's source, whitespace collapsed, at most 160 characters
    resolved: bool = True  # False: the callee could not be resolved (unknown local, builtin, dynamic)
    awaited: bool = False  # the call is the operand of ``await`` or an ``async with`` / ``async for`` item
    within: str | None = None  # name of the innermost call whose arguments contain this call
    deferred_by: str | None = None  # inside a lambda passed to a call: that call's name (e.g. "fastapi.BackgroundTasks.add_task")
    keywords: tuple[str, ...] = ()  # names of the keyword arguments given ("timeout", "json" ...)


@dataclass(frozen=True)
class Function:
    """A ``def`` or ``async def`` (module function, method, or nested function)."""
    qualname: str  # "pkg.module.func", "pkg.module.Class.method", "pkg.module.outer.<locals>.inner"
    file: str
    line: int  # line of the ``def`` keyword
    calls: tuple[CallSite, ...] = ()  # in source order
    is_async: bool = False
    decorators: tuple[str, ...] = ()  # resolved names; for ``@x(...)`` the name of ``x``


@dataclass(frozen=True)
class Handler:
    """A function the web framework calls for a request."""
    qualname: str  # a key of SourceFacts.functions
    framework: str  # "flask" | "fastapi" | "django"
    route: str | None  # the path as declared, with a Blueprint's url_prefix / an APIRouter's prefix
    #                    prepended (Django: include() prefixes and a leading "/"); None if unknown
    methods: tuple[str, ...]  # upper-case HTTP methods as declared or implied; () when any / unknown
    file: str
    line: int
    via: str  # how it was found: "decorator", "add_url_rule", "add_api_route", "add_resource",
    #           "urls.py", "router.register", "views.py" (the fallback: def view(request, ...))


@dataclass(frozen=True)
class SourceFacts:
    root: str  # the scanned directory as given
    files_scanned: int  # Python files read and parsed
    functions: dict[str, Function] = field(default_factory=dict)  # qualname -> Function
    handlers: tuple[Handler, ...] = ()  # one per registration (a function routed twice appears twice)
    modules: dict[str, str] = field(default_factory=dict)  # module name -> file
    parse_errors: tuple[tuple[str, str], ...] = ()  # (file or directory, why it was not read or parsed)
    skipped_large: tuple[str, ...] = ()  # files over the size limit, not read
    frameworks: tuple[str, ...] = ()  # web frameworks imported anywhere: "django", "fastapi", "flask"
