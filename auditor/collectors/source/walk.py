"""Which files a source scan reads, what Python would call them, and reading them.

:meth:`SourceTree.walk` lists the ``.py`` files under a root (paths POSIX and
root-relative, in sorted order per directory) without entering excluded
directories, ``__pycache__`` or symbolic links to directories.
:meth:`SourceTree.parse` reads and parses one of them, skipping files over the
size limit; :func:`module_name` names a file the way an import would.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import os
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

# Virtualenvs, VCS and tool directories (".*": .git, .venv, .tox, .mypy_cache ...),
# installed packages, build output (copies of the project's own modules), Django
# migrations and test suites: none of them serve requests.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".venv", "venv", "node_modules", ".git", "site-packages", "migrations", "tests",
    ".*", "build", "dist", "__pypackages__",
)
MAX_FILE_BYTES = 1_000_000  # 1 MB: generated or vendored code, not a handler module


def excluded(rel: str, name: str, exclude: Iterable[str]) -> bool:
    """Is the file or directory ``name`` (at root-relative POSIX path ``rel``) excluded:
    named in ``exclude``, or matching one of its glob patterns by name or by path?"""
    for pat in exclude:
        if name == pat or fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(rel, pat):
            return True
    return False


def module_name(rel: str, package_dirs: set[str], root: Path) -> tuple[str, bool]:
    """(module name, is_package) of the file at root-relative ``rel``: its path from
    the nearest directory without an ``__init__.py`` (``package_dirs``: the
    root-relative directories that have one; ``""`` is the root). When the root is
    itself a package, the name climbs above it (at most 20 levels)."""
    p = Path(rel)
    is_package = p.name == "__init__.py"
    parts = [] if is_package else [p.stem]
    d = p.parent
    while True:
        rel_d = d.as_posix()
        rel_d = "" if rel_d == "." else rel_d
        if rel_d == "" or rel_d not in package_dirs:
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


@dataclass(eq=False)
class SourceTree:
    """The Python files under ``root`` and what reading them found.

    ``files``: root-relative POSIX paths of the ``.py`` files to scan.
    ``package_dirs``: root-relative directories holding an ``__init__.py`` (``""``:
    the root). ``errors``: (file or directory, why it was not read, parsed or
    scanned), in the order met; the scan appends to it. ``skipped_large``: files over
    ``max_file_bytes``, not read.
    """
    root: Path
    files: list[str]
    package_dirs: set[str]
    max_file_bytes: int = MAX_FILE_BYTES
    errors: list[tuple[str, str]] = field(default_factory=list)
    skipped_large: list[str] = field(default_factory=list)

    @classmethod
    def walk(cls, root: Path, exclude: tuple[str, ...], max_file_bytes: int) -> SourceTree:
        """List the tree; directories that cannot be read are recorded in ``errors``
        (``"unreadable: ..."``), never raised."""
        files: list[str] = []
        package_dirs: set[str] = set()
        errors: list[tuple[str, str]] = []

        def onerror(exc: OSError) -> None:
            where = os.path.relpath(exc.filename, root) if exc.filename else "."
            errors.append((Path(where).as_posix(), f"unreadable: {exc.strerror or exc}"))

        for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
            rel_dir = Path(os.path.relpath(dirpath, root)).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            dirnames[:] = sorted(
                d for d in dirnames
                if d != "__pycache__" and not excluded(f"{rel_dir}/{d}".lstrip("/"), d, exclude))
            if "__init__.py" in filenames:
                package_dirs.add(rel_dir)
            for name in sorted(filenames):
                rel = f"{rel_dir}/{name}".lstrip("/")
                if name.endswith(".py") and not excluded(rel, name, exclude):
                    files.append(rel)
        return cls(root, files, package_dirs, max_file_bytes, errors)

    def parse(self, rel: str) -> tuple[ast.Module, str] | None:
        """(tree, text) of the file at ``rel`` (decoded per its PEP 263 coding line);
        None, with the reason recorded in ``skipped_large`` or ``errors``, when it is
        too large, unreadable or not valid Python."""
        path = self.root / rel
        try:
            if path.stat().st_size > self.max_file_bytes:
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
