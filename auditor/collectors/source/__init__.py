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

    SourceCollector("src/").collect()      # -> SourceFacts; TargetUnreachable if src/ is not a readable dir

The modules, in the order a scan uses them: :mod:`.walk` (files, excludes, size
limit, module names), pass 1 in :mod:`.bindings` (imports, module and class
bindings; :mod:`.scopes` holds them), pass 2 in :mod:`.functions` (functions and
call sites, names resolved by :mod:`.resolve`; registrations noted by
:mod:`.routes`), pass 3 in :mod:`.handlers` (registrations to handlers).
:mod:`.syntax` reads AST nodes for all of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from auditor.collectors.source.bindings import FRAMEWORK_PACKAGES, declare
from auditor.collectors.source.functions import BodyScanner
from auditor.collectors.source.handlers import CBV_METHODS, handlers
from auditor.collectors.source.resolve import CLIENT_FACTORIES, Resolver
from auditor.collectors.source.routes import Routes
from auditor.collectors.source.scopes import Module
from auditor.collectors.source.syntax import LINE_SPLIT, TEXT_CHARS
from auditor.collectors.source.walk import DEFAULT_EXCLUDE, MAX_FILE_BYTES, SourceTree, module_name
from auditor.errors import TargetUnreachable
from auditor.facts.source import Function, SourceFacts

__all__ = ["SourceCollector", "DEFAULT_EXCLUDE", "MAX_FILE_BYTES", "TEXT_CHARS", "CLIENT_FACTORIES",
           "FRAMEWORK_PACKAGES", "CBV_METHODS"]


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
        return _scan(SourceTree.walk(root, self.exclude, self.max_file_bytes))


def _scan(tree: SourceTree) -> SourceFacts:
    """One scan of a listed tree: pass 1 declares every module's bindings, pass 2
    scans the bodies (functions, calls, registrations), pass 3 resolves handlers.
    Never raises for a file: what cannot be read, parsed or scanned is recorded in
    ``parse_errors``."""
    names = Resolver()
    routes = Routes(names)
    functions: dict[str, Function] = {}
    # Each file is parsed twice (once per pass) rather than holding every tree in
    # memory: memory then grows with the facts, not with the size of the code.
    # Shallow files first: when two files map to one module name, the one nearer
    # the root keeps it (the other gets its path as name).
    for rel in sorted(tree.files, key=lambda r: (r.count("/"), r)):
        parsed = tree.parse(rel)
        if parsed is not None:
            m = _add_module(tree, names.modules, rel)
            if m is not None:
                declare(parsed[0].body, m.scope, m.name, m, names.classes)
    for m in names.modules.values():
        parsed = tree.parse(m.file)
        if parsed is None:
            continue
        module_tree, text = parsed
        try:
            BodyScanner(names, routes, functions, m, m.scope, m.name, "module",
                        LINE_SPLIT.split(text)).scan(module_tree.body)
        except RecursionError:  # an expression nested thousands deep (generated code)
            tree.errors.append((m.file, "nested too deeply to scan"))
    found = handlers(routes, functions, names)
    modules = names.modules.values()
    return SourceFacts(
        root=str(tree.root),
        files_scanned=len(names.modules),
        functions=functions,
        handlers=tuple(found),
        modules={m.name: m.file for m in modules},
        parse_errors=tuple(tree.errors),
        skipped_large=tuple(tree.skipped_large),
        frameworks=tuple(sorted({fw for m in modules for fw in m.frameworks})),
    )


def _add_module(tree: SourceTree, modules: dict[str, Module], rel: str) -> Module | None:
    """Name the file at ``rel`` and add it to ``modules``; a name already taken falls
    back to the file's path (dots for slashes); None (recorded) when that is taken too."""
    name, is_package = module_name(rel, tree.package_dirs, tree.root)
    if not name or name in modules:
        name = str(Path(rel).with_suffix("")).replace(os.sep, ".").replace("/", ".")
        if name in modules:
            tree.errors.append((rel, f"module name {name} is taken by {modules[name].file}"))
            return None
    m = modules[name] = Module(name, rel, is_package)
    return m
