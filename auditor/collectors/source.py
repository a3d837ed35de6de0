"""The source scanner: reads a Python project's files with the ``ast`` module
(nothing is imported or executed) and returns :class:`~auditor.facts.source.SourceFacts`.

What it extracts:

- every ``def`` / ``async def`` (module functions, methods, nested functions)
  with the calls in its body, each callee resolved to a dotted name through
  the module's imports (``import requests as r``, ``from stripe import Charge``,
  relative ``from .billing import charge``), module-level and local bindings
  (``app = Flask(__name__)``, ``with smtplib.SMTP(host) as s``), parameter
  annotations (``tasks: BackgroundTasks``), ``self.x = Client()`` attributes and
  project base classes;
- request handlers:

  - Flask: ``@app.route`` / ``@app.get`` ... on ``Flask`` and ``Blueprint``
    objects (``url_prefix`` prepended), ``add_url_rule``, Flask-RESTful
    ``add_resource``, ``MethodView.as_view``;
  - FastAPI: ``@app.get`` / ``@router.post`` / ``api_route`` on ``FastAPI`` and
    ``APIRouter`` objects (``prefix`` prepended), ``add_api_route``;
  - Django: views referenced by ``path()`` / ``re_path()`` / ``url()`` (function
    views, class-based views' ``get``/``post``/... and common hooks such as
    ``form_valid``, DRF viewset actions), DRF ``router.register``, and as a
    fallback any module-level ``def view(request, ...)`` in a ``views`` module.

  A decorator on an object whose type cannot be resolved (``app = create_app()``)
  counts when its first argument is a path (``"/..."``) and the module (or else
  the project) imports exactly one of Flask and FastAPI.

Bounds: files over ``max_file_bytes`` (default 1 MB) are not read and are listed
in ``skipped_large``; a file that cannot be read or parsed is listed in
``parse_errors`` and skipped. Directories named in ``exclude`` (or matching one
of its glob patterns, e.g. ``"scripts/*"``) are not entered. Symbolic links to
directories are not followed.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import os
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from auditor.errors import TargetUnreachable
from auditor.facts.source import CallSite, Function, Handler, SourceFacts

# Virtualenvs, VCS and tool directories (".*": .git, .venv, .tox, .mypy_cache ...),
# installed packages, build output (copies of the project's own modules), Django
# migrations and test suites: none of them serve requests.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".venv", "venv", "node_modules", ".git", "site-packages", "migrations", "tests",
    ".*", "build", "dist", "__pypackages__",
)
MAX_FILE_BYTES = 1_000_000  # 1 MB: generated or vendored code, not a handler module
TEXT_CHARS = 160  # CallSite.text length

# Calls that return a client object rather than data, so that a variable bound
# to their result is typed with their name (``ses = boto3.client("ses")`` makes
# ``ses.send_email`` resolve to ``boto3.client.send_email``). Besides these, any
# call whose last name segment is CapWords (a class: ``smtplib.SMTP(...)``,
# ``httpx.Client()``, ``Flask(__name__)``) types its result the same way. From
# the libraries' documentation (boto3, requests, urllib, urllib3, Django).
CLIENT_FACTORIES: frozenset[str] = frozenset({
    "boto3.client", "boto3.resource",
    "boto3.Session.client", "boto3.Session.resource",
    "boto3.session.Session.client", "boto3.session.Session.resource",
    "requests.session", "requests.sessions.session",
    "urllib.request.build_opener",
    "urllib3.connection_from_url",
    "django.core.mail.get_connection",
})

# Top-level packages that identify a web framework.
FRAMEWORK_PACKAGES: dict[str, str] = {
    "flask": "flask", "flask_restful": "flask", "flask_smorest": "flask",
    "fastapi": "fastapi", "starlette": "fastapi",
    "django": "django", "rest_framework": "django",
}
_VERBS = ("get", "post", "put", "patch", "delete", "head", "options")
_FLASK_DECORATORS = frozenset(("route",) + _VERBS)
_FASTAPI_DECORATORS = frozenset(("api_route",) + _VERBS)
_DJANGO_ROUTE_FUNCS = frozenset({
    "django.urls.path", "django.urls.re_path", "django.urls.conf.path", "django.urls.conf.re_path",
    "django.conf.urls.url",
})
# Methods of a class-based view (Django View / DRF APIView and ViewSet / Flask
# MethodView and View) that the framework calls for a request, with the HTTP
# methods they serve (() = any). From the Django, DRF and Flask docs.
CBV_METHODS: dict[str, tuple[str, ...]] = {
    **{v: (v.upper(),) for v in _VERBS},
    "dispatch": (), "dispatch_request": (),
    "form_valid": ("POST",), "form_invalid": ("POST",),
    "get_queryset": (), "get_object": (), "get_context_data": ("GET",),
    "list": ("GET",), "retrieve": ("GET",), "create": ("POST",), "update": ("PUT",),
    "partial_update": ("PATCH",), "destroy": ("DELETE",),
    "perform_create": ("POST",), "perform_update": ("PUT", "PATCH"), "perform_destroy": ("DELETE",),
}
# Django view decorators that restrict the HTTP methods.
_DJANGO_METHOD_DECORATORS: dict[str, tuple[str, ...]] = {
    "require_GET": ("GET",), "require_POST": ("POST",), "require_safe": ("GET", "HEAD"),
}


@dataclass(eq=False)
class _B:
    """A binding of a name in a scope.

    kind: "def" (value: the qualname of a def/class here), "name" (value: a dotted
    name, canonicalised on use), "expr" (value: (node, scope), evaluated lazily:
    module and class level), "type" (value: (annotation, scope), lazily) or
    "unknown" (shadows outer names; resolves to nothing).
    """
    kind: str
    value: Any = None
    node: ast.AST | None = None  # the bound call, for route prefixes


class _Scope:
    __slots__ = ("module", "parent", "names")

    def __init__(self, module: "_Module", parent: "_Scope | None" = None) -> None:
        self.module = module
        self.parent = parent
        self.names: dict[str, _B] = {}


@dataclass(eq=False)
class _Module:
    name: str
    file: str
    is_package: bool
    scope: _Scope = field(init=False)
    stars: list[str] = field(default_factory=list)
    urlpatterns: bool = False
    frameworks: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.scope = _Scope(self)

    @property
    def is_views(self) -> bool:
        parts = self.name.split(".")
        return parts[-1] == "views" or "views" in parts[:-1]


@dataclass(eq=False)
class _Class:
    qualname: str
    module: _Module
    scope: _Scope  # the scope the class statement is in
    bases: list[ast.expr]
    methods: set[str] = field(default_factory=set)
    attrs: dict[str, _B] = field(default_factory=dict)
    nested: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Pending:
    """A handler registration whose target is resolved once every module is scanned."""
    target: str  # dotted name of a function or class
    is_class: bool | None  # None: whichever it turns out to be
    framework: str
    route: str | None
    methods: tuple[str, ...]
    via: str
    actions: tuple[tuple[str, str], ...] = ()  # DRF as_view({"get": "list"}): (method, action)
    module: str = ""  # the module holding the registration (Django: to prepend include() prefixes)


class SourceCollector:
    """Scan the Python sources under ``root`` (a directory).

    ``exclude``: directory names (or glob patterns on the root-relative path)
    not entered. ``max_file_bytes``: larger files are skipped and counted.

    ``collect()`` returns :class:`SourceFacts`; raises
    :class:`~auditor.errors.TargetUnreachable` when ``root`` does not exist or is
    not a readable directory.
    """

    kind = "source"

    def __init__(self, root: str | Path, *, exclude: Iterable[str] = DEFAULT_EXCLUDE,
                 max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = Path(root)
        self.exclude = tuple(exclude)
        self.max_file_bytes = max_file_bytes

    def describe(self) -> str:
        ex = ", ".join(self.exclude) if self.exclude else "nothing"
        return f"Python source under {self.root} (excluded: {ex})"

    def collect(self) -> SourceFacts:
        root = self.root
        if not root.exists():
            raise TargetUnreachable(
                f"source tree {root} does not exist; give the directory that holds the application's "
                "Python code (source: in auditor.yaml or --source)")
        if not root.is_dir():
            raise TargetUnreachable(
                f"source path {root} is not a directory; give the directory that holds the application's "
                "Python code (source: in auditor.yaml or --source)")
        if not os.access(root, os.R_OK | os.X_OK):
            raise TargetUnreachable(f"source tree {root} is not readable by this user; check its permissions")
        files, package_dirs, errors = self._walk()
        return _Collection(root, files, package_dirs, errors, self.max_file_bytes).run()

    # -- walking ---------------------------------------------------------------

    def _excluded(self, rel: str, name: str) -> bool:
        for pat in self.exclude:
            if name == pat or fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(rel, pat):
                return True
        return False

    def _walk(self) -> tuple[list[str], set[str], list[tuple[str, str]]]:
        """Returns (python files, directories holding an __init__.py, walk errors); paths root-relative."""
        files: list[str] = []
        package_dirs: set[str] = set()
        errors: list[tuple[str, str]] = []

        def onerror(exc: OSError) -> None:
            where = os.path.relpath(exc.filename, self.root) if exc.filename else "."
            errors.append((Path(where).as_posix(), f"unreadable: {exc.strerror or exc}"))

        for dirpath, dirnames, filenames in os.walk(self.root, onerror=onerror):
            rel_dir = Path(os.path.relpath(dirpath, self.root)).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames[:] = sorted(
                d for d in dirnames
                if d != "__pycache__" and not self._excluded(f"{rel_dir}/{d}".lstrip("/"), d))
            if "__init__.py" in filenames:
                package_dirs.add(rel_dir)
            for name in sorted(filenames):
                rel = f"{rel_dir}/{name}".lstrip("/")
                if name.endswith(".py") and not self._excluded(rel, name):
                    files.append(rel)
        return files, package_dirs, errors


# -- helpers -------------------------------------------------------------------

def _join(head: str, tail: Iterable[str]) -> str:
    tail = list(tail)
    return ".".join([head, *tail]) if tail else head


def _is_factory(name: str) -> bool:
    """Does calling ``name`` build an object whose methods we can name (a class, a client factory)?"""
    last = name.rsplit(".", 1)[-1]
    return name in CLIENT_FACTORIES or last[:1].isupper()


def _callee_text(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - unparse of exotic nodes
        text = type(node).__name__
    return re.sub(r"\s+", " ", text)[:80]


_LINE_SPLIT = re.compile(r"\r\n|\r|\n")


def _segment(lines: list[str], node: ast.AST) -> str:
    """The source of ``node`` (col offsets are UTF-8 byte offsets), collapsed and cut."""
    try:
        l0, c0 = node.lineno, node.col_offset
        l1, c1 = node.end_lineno or l0, node.end_col_offset
        if l1 - l0 > 4:
            l1, c1 = l0 + 4, None
        parts = []
        for ln in range(l0, l1 + 1):
            raw = lines[ln - 1].encode("utf-8")
            start = c0 if ln == l0 else 0
            end = c1 if ln == l1 and c1 is not None else len(raw)
            parts.append(raw[start:end].decode("utf-8", "replace").strip())
        text = re.sub(r"\s+", " ", " ".join(parts)).strip()
    except Exception:  # noqa: BLE001 - a position we cannot map is not worth failing the scan
        text = ""
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """The statements of ``body`` and of the blocks nested in them (not nested defs),
    without walking expressions: cheaper than ast.walk."""
    stack = list(reversed(body))
    while stack:
        stmt = stack.pop()
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for name in _BLOCK_FIELDS:
            block = getattr(stmt, name, None)
            if block:
                stack.extend(reversed(block))


def _str_const(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kw(call: ast.Call, *names: str) -> ast.AST | None:
    """The value of the first keyword argument of ``call`` named in ``names``."""
    return next((kw.value for kw in call.keywords if kw.arg in names), None)


def _arg(call: ast.Call, index: int, keywords: tuple[str, ...] = ()) -> ast.AST | None:
    """Positional argument ``index`` of ``call``, or its keyword form (any of ``keywords``)."""
    for kw in call.keywords:
        if kw.arg in keywords:
            return kw.value
    if index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
        return call.args[index]
    return None


def _str_list(node: ast.AST | None) -> tuple[str, ...]:
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return tuple(v.upper() for v in (_str_const(e) for e in node.elts) if v)
    return ()


def _join_route(prefix: str | None, route: str | None) -> str | None:
    if not prefix:
        return route
    if route is None:
        return prefix
    return prefix.rstrip("/") + "/" + route.lstrip("/") if route else prefix


def _module_name(rel: str, package_dirs: set[str], root: Path) -> tuple[str, bool]:
    """(module name, is_package): the path from the nearest directory without __init__.py."""
    p = Path(rel)
    is_package = p.name == "__init__.py"
    parts = [] if is_package else [p.stem]
    d = p.parent
    while True:
        rel_d = d.as_posix()
        rel_d = "" if rel_d == "." else rel_d
        if rel_d == "":
            break
        if rel_d not in package_dirs:
            break
        parts.insert(0, d.name)
        d = d.parent
    if rel_d == "" and "" in package_dirs:  # the root itself is a package: climb above it
        up = root.resolve()
        for _ in range(20):
            if not (up / "__init__.py").exists():
                break
            parts.insert(0, up.name)
            up = up.parent
    return ".".join(parts), is_package


# -- the scan ------------------------------------------------------------------

class _Collection:
    """One scan: parse (pass 1: module bindings), scan bodies (pass 2), resolve handlers (pass 3)."""

    def __init__(self, root: Path, files: list[str], package_dirs: set[str],
                 errors: list[tuple[str, str]], max_bytes: int) -> None:
        self.root = root
        self.files = files
        self.package_dirs = package_dirs
        self.errors = errors
        self.max_bytes = max_bytes
        self.skipped_large: list[str] = []
        self.modules: dict[str, _Module] = {}
        self.classes: dict[str, _Class] = {}
        self.functions: dict[str, Function] = {}
        self.pending: list[_Pending] = []
        self.view_methods: dict[str, tuple[str, ...]] = {}  # django decorators' methods per function
        self.view_candidates: list[str] = []  # def view(request, ...) in views modules
        self.includes: dict[str, tuple[str, str]] = {}  # urls module -> (including module, route prefix)
        self._memo: dict[int, str | None] = {}
        self._mro: dict[str, list[_Class]] = {}

    def run(self) -> SourceFacts:
        # Each file is parsed twice (once per pass) rather than holding every tree in
        # memory: memory then grows with the facts, not with the size of the code.
        # Shallow files first: when two files map to one module name, the one nearer
        # the root keeps it (the other gets its path as name).
        for rel in sorted(self.files, key=lambda r: (r.count("/"), r)):
            parsed = self._parse(rel)
            if parsed is not None:
                m = self._module(rel)
                if m is not None:
                    self._declare(parsed[0].body, m.scope, m.name, m)
        for m in list(self.modules.values()):
            parsed = self._parse(m.file)
            if parsed is None:
                continue
            tree, text = parsed
            try:
                _Scanner(self, m, m.scope, m.name, "module", _LINE_SPLIT.split(text)).scan(tree.body)
            except RecursionError:  # an expression nested thousands deep (generated code)
                self.errors.append((m.file, "nested too deeply to scan"))
        handlers = self._handlers()
        frameworks = sorted({fw for m in self.modules.values() for fw in m.frameworks})
        return SourceFacts(
            root=str(self.root),
            files_scanned=len(self.modules),
            functions=self.functions,
            handlers=tuple(handlers),
            modules={name: m.file for name, m in self.modules.items()},
            parse_errors=tuple(self.errors),
            skipped_large=tuple(self.skipped_large),
            frameworks=tuple(frameworks),
        )

    # pass 0: read and parse --------------------------------------------------

    def _parse(self, rel: str) -> tuple[ast.Module, str] | None:
        """(tree, text) of a file; None (and the reason recorded) when it is too large,
        unreadable or not valid Python."""
        path = self.root / rel
        try:
            if path.stat().st_size > self.max_bytes:
                self.skipped_large.append(rel)
                return None
            data = path.read_bytes()
        except OSError as exc:
            self.errors.append((rel, f"unreadable: {exc.strerror or exc}"))
            return None
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            text = data.decode(encoding)
            return ast.parse(text, filename=rel), text
        except SyntaxError as exc:
            self.errors.append((rel, f"syntax error at line {exc.lineno}: {exc.msg}"))
        except (UnicodeDecodeError, LookupError, ValueError, RecursionError, MemoryError) as exc:
            self.errors.append((rel, f"not parseable: {type(exc).__name__}: {exc}"))
        return None

    def _module(self, rel: str) -> _Module | None:
        name, is_package = _module_name(rel, self.package_dirs, self.root)
        if not name or name in self.modules:
            name = str(Path(rel).with_suffix("")).replace(os.sep, ".").replace("/", ".")
            if name in self.modules:
                self.errors.append((rel, f"module name {name} is taken by {self.modules[name].file}"))
                return None
        m = self.modules[name] = _Module(name, rel, is_package)
        return m

    # pass 1: module-level bindings --------------------------------------------

    def _declare(self, body: list[ast.stmt], scope: _Scope, prefix: str, m: _Module,
                 cls: _Class | None = None) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for name, b in self._import_bindings(stmt, m):
                    if name == "*":
                        m.stars.append(b.value)
                    elif cls is None:
                        scope.names[name] = b
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}.{stmt.name}"
                if cls is not None:
                    cls.methods.add(stmt.name)
                    self._self_attrs(stmt, cls)
                else:
                    scope.names[stmt.name] = _B("def", qual)
            elif isinstance(stmt, ast.ClassDef):
                qual = f"{prefix}.{stmt.name}"
                self._register_class(stmt, qual, m, scope)
                if cls is not None:
                    cls.nested.add(stmt.name)
                else:
                    scope.names[stmt.name] = _B("def", qual)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    if not isinstance(t, ast.Name):
                        continue
                    if t.id == "urlpatterns" and cls is None:
                        m.urlpatterns = True
                    if isinstance(stmt, ast.AnnAssign) and stmt.annotation is not None and stmt.value is None:
                        b = _B("type", (stmt.annotation, scope))
                    elif stmt.value is not None:
                        b = _B("expr", (stmt.value, scope), node=stmt.value)
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
                self._declare(stmt.body + stmt.orelse, scope, prefix, m, cls)
            elif isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                handlers_body = [s for h in stmt.handlers for s in h.body]
                self._declare(stmt.body + handlers_body + stmt.orelse + stmt.finalbody, scope, prefix, m, cls)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                self._declare(stmt.body, scope, prefix, m, cls)

    def _register_class(self, node: ast.ClassDef, qual: str, m: _Module, scope: _Scope) -> _Class:
        k = self.classes.get(qual)
        if k is None:
            k = self.classes[qual] = _Class(qual, m, scope, list(node.bases))
            self._declare(node.body, _Scope(m, scope), qual, m, cls=k)
        return k

    def _self_attrs(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, cls: _Class) -> None:
        """``self.x = value`` in a method types the attribute ``x`` of the class."""
        params = fn.args.posonlyargs + fn.args.args
        if not params:
            return
        me = params[0].arg
        for node in _statements(fn.body):
            if isinstance(node, ast.Assign):
                targets, value, ann = node.targets, node.value, None
            elif isinstance(node, ast.AnnAssign):
                targets, value, ann = [node.target], node.value, node.annotation
            else:
                continue
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == me:
                    if ann is not None:
                        b = _B("type", (ann, cls.scope))
                    elif value is not None:
                        b = _B("expr", (value, cls.scope), node=value)
                    else:
                        continue
                    cls.attrs.setdefault(t.attr, b)

    def _import_bindings(self, stmt: ast.Import | ast.ImportFrom, m: _Module) -> list[tuple[str, _B]]:
        out: list[tuple[str, _B]] = []
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                top = a.name.split(".")[0]
                if top in FRAMEWORK_PACKAGES:
                    m.frameworks.add(FRAMEWORK_PACKAGES[top])
                if a.asname:
                    out.append((a.asname, _B("name", a.name)))
                else:
                    out.append((top, _B("name", top)))
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
                out.append(("*", _B("name", base)))
            else:
                out.append((a.asname or a.name, _B("name", f"{base}.{a.name}" if base else a.name)))
        return out

    # resolution -------------------------------------------------------------------

    def lookup(self, scope: _Scope, name: str) -> _B | None:
        s: _Scope | None = scope
        while s is not None:
            b = s.names.get(name)
            if b is not None:
                return b
            s = s.parent
        for star in scope.module.stars:
            sm = self.modules.get(star)
            if sm is not None and sm is not scope.module and name in sm.scope.names:
                return sm.scope.names[name]
        return None

    def value(self, b: _B, depth: int = 0) -> str | None:
        """The dotted name a binding stands for (a def, an import, the type of an object), or None."""
        if b.kind == "def":
            return b.value
        if b.kind == "unknown":
            return None
        if b.kind == "name":
            return self.canon(b.value, depth + 1)
        key = id(b)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = None  # breaks cycles (a = b; b = a)
        node, scope = b.value
        result = self.annotation(node, scope) if b.kind == "type" else self.object_of(node, scope)
        self._memo[key] = result
        return result

    def object_of(self, node: ast.AST, scope: _Scope) -> str | None:
        """What a value expression denotes: an alias (``x = requests``) or an object
        built by a constructor/factory call (``x = smtplib.SMTP(h)`` -> ``smtplib.SMTP``)."""
        if isinstance(node, ast.Call):
            f = self.expr(node.func, scope)
            return f if f is not None and _is_factory(f) else None
        if isinstance(node, (ast.Name, ast.Attribute)):
            return self.expr(node, scope)
        return None

    def annotation(self, node: ast.AST, scope: _Scope) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.Subscript):  # Optional[X], Annotated[X, ...]
            inner = node.slice.elts[0] if isinstance(node.slice, ast.Tuple) and node.slice.elts else node.slice
            return self.annotation(inner, scope)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | None
            left = self.annotation(node.left, scope)
            return left if left is not None else self.annotation(node.right, scope)
        if isinstance(node, (ast.Name, ast.Attribute)):
            return self.expr(node, scope)
        return None

    def expr(self, node: ast.AST, scope: _Scope) -> str | None:
        """Resolve a callee or receiver expression to a dotted name, or None."""
        if isinstance(node, ast.Name):
            b = self.lookup(scope, node.id)
            return self.value(b) if b is not None else None
        if isinstance(node, ast.Attribute):
            base = self.expr(node.value, scope)
            return self.canon(f"{base}.{node.attr}") if base is not None else None
        if isinstance(node, ast.Call):  # Client(...).send(...): the object a constructor built
            f = self.expr(node.func, scope)
            return f if f is not None and _is_factory(f) else None
        return None

    def canon(self, dotted: str, depth: int = 0) -> str | None:
        """Follow project modules' bindings: ``shop.ext.mail.send`` where ``shop.ext``
        has ``mail = Mail()`` becomes ``flask_mail.Mail.send``; a method inherited
        from a project base class is named after the class that defines it.
        None when the name goes through a project variable of unknown type."""
        if depth > 16:
            return dotted
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            mod = ".".join(parts[:i])
            m = self.modules.get(mod)
            if m is None:
                continue
            if i == len(parts):
                return dotted
            head, rest = ".".join(parts[: i + 1]), parts[i + 1:]
            if head in self.modules:
                return dotted
            b = self.lookup(m.scope, parts[i])
            if b is None:
                return dotted
            target = self.value(b, depth + 1)
            if target is None:
                return None
            if target != head:
                return self.canon(_join(target, rest), depth + 1)
            if rest and head in self.classes:
                return self.class_attr(head, rest, depth + 1)
            return dotted
        # a class defined inside a function: "mod.f.<locals>.C.attr"
        if "<locals>" in parts:
            for i in range(len(parts) - 1, 0, -1):
                head = ".".join(parts[:i])
                if head in self.classes:
                    return self.class_attr(head, parts[i:], depth + 1)
        return dotted

    def class_attr(self, cls: str, rest: list[str], depth: int) -> str | None:
        attr, tail = rest[0], rest[1:]
        for k in self.mro(cls):
            if attr in k.methods:
                return _join(f"{k.qualname}.{attr}", tail)
            if attr in k.nested:
                nested = f"{k.qualname}.{attr}"
                return self.class_attr(nested, tail, depth + 1) if tail else nested
            if attr in k.attrs:
                t = self.value(k.attrs[attr], depth + 1)
                return self.canon(_join(t, tail), depth + 1) if t is not None else None
        return _join(f"{cls}.{attr}", tail)

    def mro(self, cls: str) -> list[_Class]:
        """The class and its project base classes, depth first (external bases are left out)."""
        if cls in self._mro:
            return self._mro[cls]
        self._mro[cls] = [self.classes[cls]] if cls in self.classes else []
        k = self.classes.get(cls)
        if k is None:
            return []
        out = [k]
        for base in k.bases:
            name = self.expr(base, k.scope)
            if name in self.classes:
                out.extend(x for x in self.mro(name) if x not in out)
        self._mro[cls] = out
        return out

    def external_bases(self, cls: str) -> list[str]:
        out = []
        for k in self.mro(cls):
            for base in k.bases:
                name = self.expr(base, k.scope)
                if name and name not in self.classes:
                    out.append(name)
        return out

    # handlers -----------------------------------------------------------------

    def framework_of(self, dotted: str | None) -> str | None:
        if dotted is None:
            return None
        fw = FRAMEWORK_PACKAGES.get(dotted.split(".")[0])
        if fw:
            return fw
        if dotted in self.classes:
            for base in self.external_bases(dotted):
                fw = FRAMEWORK_PACKAGES.get(base.split(".")[0])
                if fw:
                    return fw
        return None

    def guess_framework(self, m: _Module) -> str | None:
        for pool in (m.frameworks, {fw for x in self.modules.values() for fw in x.frameworks}):
            web = pool & {"flask", "fastapi"}
            if len(web) == 1:
                return next(iter(web))
        return None

    def receiver_prefix(self, node: ast.AST, scope: _Scope) -> str | None:
        """``url_prefix=`` of a Blueprint or ``prefix=`` of an APIRouter bound to ``node``."""
        if not isinstance(node, ast.Name):
            return None
        b = self.lookup(scope, node.id)
        for _ in range(8):  # follow imports: from app.main import bp
            if b is None:
                return None
            if isinstance(b.node, ast.Call):
                return _str_const(_kw(b.node, "url_prefix", "prefix"))
            if b.kind != "name":
                return None
            mod, _, name = b.value.rpartition(".")
            m = self.modules.get(mod)
            b = m.scope.names.get(name) if m is not None else None
        return None

    def route_decorator(self, dec: ast.AST, qual: str, scope: _Scope, m: _Module) -> None:
        if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)):
            return
        attr = dec.func.attr
        recv = self.expr(dec.func.value, scope)
        route = _str_const(_arg(dec, 0, ("rule", "path")))
        fw = self.framework_of(recv)
        if fw is None:
            if recv is not None or not (route or "").startswith("/"):
                return
            fw = self.guess_framework(m)
        if fw == "flask" and attr in _FLASK_DECORATORS or fw == "fastapi" and attr in _FASTAPI_DECORATORS:
            methods = _str_list(_kw(dec, "methods")) or (
                (attr.upper(),) if attr in _VERBS else ("GET",))
            route = _join_route(self.receiver_prefix(dec.func.value, scope), route)
            self.pending.append(_Pending(qual, False, fw, route, methods, "decorator"))

    def registration(self, call: ast.Call, callee: str | None, scope: _Scope, m: _Module) -> None:
        """add_url_rule / add_api_route / add_resource / router.register / Django path()."""
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in (
                "add_url_rule", "add_api_route", "add_resource", "register"):
            recv = self.expr(func.value, scope)
            fw = self.framework_of(recv) or (None if recv is not None else self.guess_framework(m))
            prefix = self.receiver_prefix(func.value, scope)
            methods = _str_list(_kw(call, "methods"))
            if func.attr == "add_url_rule" and fw == "flask":
                route = _join_route(prefix, _str_const(_arg(call, 0, ("rule",))))
                self._view(_arg(call, 2, ("view_func",)), scope, "flask", route, methods, "add_url_rule")
            elif func.attr == "add_api_route" and fw == "fastapi":
                route = _join_route(prefix, _str_const(_arg(call, 0, ("path",))))
                self._view(_arg(call, 1, ("endpoint",)), scope, "fastapi", route, methods or ("GET",),
                           "add_api_route")
            elif func.attr == "add_resource" and fw == "flask":
                route = _str_const(_arg(call, 1, ()))
                self._view(_arg(call, 0, ("resource",)), scope, "flask", route, (), "add_resource")
            elif func.attr == "register" and recv and recv.startswith("rest_framework.routers."):
                route = _str_const(_arg(call, 0, ("prefix",)))
                self._view(_arg(call, 1, ("viewset",)), scope, "django", route, (), "router.register")
            return
        is_route = callee in _DJANGO_ROUTE_FUNCS or (
            callee is None and isinstance(func, ast.Name) and func.id in ("path", "re_path", "url")
            and m.urlpatterns)
        if is_route:
            route = _str_const(_arg(call, 0, ("route", "regex")))
            view = _arg(call, 1, ("view",))
            if isinstance(view, ast.Call) and (self.expr(view.func, scope) or _callee_text(view.func)).endswith(
                    "include"):
                included = _arg(view, 0, ("arg",))
                if isinstance(included, ast.Tuple) and included.elts:  # include(("app.urls", "app"))
                    included = included.elts[0]
                target = _str_const(included) or (
                    self.expr(included, scope) if isinstance(included, (ast.Name, ast.Attribute)) else None)
                if target:
                    self.includes.setdefault(target, (m.name, route or ""))
                return
            self._view(view, scope, "django", route, (), "urls.py", module=m.name)

    def django_route(self, module: str, route: str | None) -> str | None:
        """The full path of a urls.py route: include() prefixes prepended, with a leading "/"."""
        if route is None:
            return None
        pieces = [route]
        seen = {module}
        while module in self.includes and len(seen) < 10:
            module, prefix = self.includes[module]
            if module in seen:
                break
            seen.add(module)
            pieces.insert(0, prefix)
        return "/" + "".join(p.lstrip("^").removesuffix("$") if i < len(pieces) - 1 else p.lstrip("^")
                             for i, p in enumerate(pieces)).lstrip("/")

    def _view(self, node: ast.AST | None, scope: _Scope, fw: str, route: str | None,
              methods: tuple[str, ...], via: str, depth: int = 0, module: str = "") -> None:
        if node is None or depth > 4:
            return
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr == "as_view":
                cls = self.expr(f.value, scope)
                actions: tuple[tuple[str, str], ...] = ()
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Dict):
                    actions = tuple((k.value.upper(), v.value) for k, v in zip(first.keys, first.values)
                                    if _str_const(k) and _str_const(v))
                if cls:
                    self.pending.append(_Pending(cls, True, fw, route, methods, via, actions, module))
                return
            callee = self.expr(f, scope) or _callee_text(f)
            if callee.rsplit(".", 1)[-1] == "include":
                return
            if node.args:  # login_required(view), csrf_exempt(View.as_view())
                self._view(node.args[0], scope, fw, route, methods, via, depth + 1, module)
            return
        target = self.expr(node, scope) if isinstance(node, (ast.Name, ast.Attribute)) else _str_const(node)
        if target:
            self.pending.append(_Pending(self.canon(target) or target, None, fw, route, methods, via, (), module))

    def _handlers(self) -> list[Handler]:
        out: list[Handler] = []

        def add(qual: str, p: _Pending, methods: tuple[str, ...]) -> None:
            fn = self.functions.get(qual)
            if fn is not None:
                route = self.django_route(p.module, p.route) if p.via == "urls.py" else p.route
                out.append(Handler(qual, p.framework, route, methods, fn.file, fn.line, p.via))

        for p in self.pending:
            if p.is_class is not True and p.target in self.functions:
                add(p.target, p, p.methods or self.view_methods.get(p.target, ()))
            elif p.is_class is not False and p.target in self.classes:
                self._class_handlers(p, add)
        seen = {h.qualname for h in out}
        for qual in self.view_candidates:
            if qual not in seen:
                fn = self.functions[qual]
                out.append(Handler(qual, "django", None, self.view_methods.get(qual, ()), fn.file, fn.line,
                                   "views.py"))
        return out

    def _class_handlers(self, p: _Pending, add) -> None:
        def defining(name: str) -> str | None:
            for k in self.mro(p.target):
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
        for k in self.mro(p.target):  # DRF @action methods
            for name in sorted(k.methods):
                fn = self.functions.get(f"{k.qualname}.{name}")
                if fn and name not in CBV_METHODS and any(
                        d.rsplit(".", 1)[-1] == "action" for d in fn.decorators):
                    add(fn.qualname, p, ())


class _Scanner(ast.NodeVisitor):
    """Walks one body (module, class or function) in source order, recording calls
    (for functions), local bindings (for functions) and handler registrations."""

    def __init__(self, c: _Collection, m: _Module, scope: _Scope, prefix: str, kind: str,
                 lines: list[str], cls: _Class | None = None) -> None:
        self.c, self.m, self.scope, self.prefix, self.kind, self.cls = c, m, scope, prefix, kind, cls
        self.lines = lines
        self.calls: list[CallSite] = []
        self._awaited: set[int] = set()
        self._within: list[str] = []
        self._deferred: list[str | None] = []

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

    def _qual(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        qual = self._qual(node.name)
        if self.kind == "function":
            self.scope.names[node.name] = _B("def", qual)
        decorators = tuple(self._decorator_name(d) for d in node.decorator_list)
        outer = self.scope.parent if self.kind == "class" else self.scope
        fscope = _Scope(self.m, outer)
        a = node.args
        positional = a.posonlyargs + a.args
        for arg in positional + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]:
            t = self.c.annotation(arg.annotation, self.scope) if arg.annotation is not None else None
            fscope.names[arg.arg] = _B("name", t) if t else _B("unknown")
        if self.kind == "class" and positional and not any(d.endswith("staticmethod") for d in decorators):
            fscope.names[positional[0].arg] = _B("def", self.cls.qualname)
        body = _Scanner(self.c, self.m, fscope, f"{qual}.<locals>", "function", self.lines)
        body.scan(node.body)
        self.c.functions.setdefault(qual, Function(
            qual, self.m.file, node.lineno, tuple(body.calls),
            isinstance(node, ast.AsyncFunctionDef), decorators))
        for d in node.decorator_list:
            self.c.route_decorator(d, qual, self.scope, self.m)
        methods = self._django_methods(node.decorator_list, decorators)
        if methods:
            self.c.view_methods[qual] = methods
        if self.kind == "module" and self.m.is_views and positional and positional[0].arg == "request":
            self.c.view_candidates.append(qual)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        for b in node.bases:
            self.visit(b)
        qual = self._qual(node.name)
        k = self.c._register_class(node, qual, self.m, self.scope)
        if self.kind == "function":
            self.scope.names[node.name] = _B("def", qual)
        _Scanner(self.c, self.m, _Scope(self.m, self.scope), qual, "class", self.lines, cls=k).scan(node.body)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._deferred.append(self._within[-1] if self._within else None)
        self.visit(node.body)
        self._deferred.pop()

    def _decorator_name(self, d: ast.AST) -> str:
        target = d.func if isinstance(d, ast.Call) else d
        return self.c.expr(target, self.scope) or _callee_text(target)

    @staticmethod
    def _django_methods(nodes: list[ast.expr], names: tuple[str, ...]) -> tuple[str, ...]:
        for node, name in zip(nodes, names):
            last = name.rsplit(".", 1)[-1]
            if last in _DJANGO_METHOD_DECORATORS:
                return _DJANGO_METHOD_DECORATORS[last]
            if last in ("require_http_methods", "api_view") and isinstance(node, ast.Call):
                return _str_list(_arg(node, 0, ("request_method_list", "http_method_names")))
        return ()

    # calls --------------------------------------------------------------------------

    def visit_Await(self, node: ast.Await) -> None:
        if isinstance(node.value, ast.Call):
            self._awaited.add(id(node.value))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.c.expr(node.func, self.scope)
        if self.kind == "function":
            self.calls.append(CallSite(
                name=name if name is not None else _callee_text(node.func),
                line=node.lineno,
                text=_segment(self.lines, node),
                resolved=name is not None,
                awaited=id(node) in self._awaited,
                within=self._within[-1] if self._within else None,
                deferred_by=self._deferred[-1] if self._deferred else None,
                keywords=tuple(kw.arg for kw in node.keywords if kw.arg),
            ))
        self.c.registration(node, name, self.scope, self.m)
        self.visit(node.func)
        self._within.append(name if name is not None else _callee_text(node.func))
        for a in node.args:
            self.visit(a)
        for kw in node.keywords:
            self.visit(kw.value)
        self._within.pop()

    # bindings (function scopes; module and class bindings come from pass 1) ---------

    def _bind(self, target: ast.AST, b: _B) -> None:
        if self.kind != "function":
            return
        if isinstance(target, ast.Name):
            self.scope.names[target.id] = b
        elif isinstance(target, (ast.Tuple, ast.List)):
            for e in target.elts:
                self._bind(e.value if isinstance(e, ast.Starred) else e, _B("unknown"))

    def _binding_for(self, value: ast.AST | None) -> _B:
        if value is None:
            return _B("unknown")
        t = self.c.object_of(value, self.scope)
        return _B("name", t, node=value) if t else _B("unknown", node=value)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for t in node.targets:
            if isinstance(t, (ast.Attribute, ast.Subscript)):
                self.visit(t)
            self._bind(t, self._binding_for(node.value))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        t = self.c.annotation(node.annotation, self.scope)
        self._bind(node.target, _B("name", t) if t else self._binding_for(node.value))

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._bind(node.target, self._binding_for(node.value))

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for name, b in self.c._import_bindings(node, self.m):
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
        self._bind(node.target, _B("unknown"))
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
            self._bind(ast.Name(id=node.name), _B("unknown"))
        self.scan(node.body)
