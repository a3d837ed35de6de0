"""Reading ``ast`` nodes: constant strings, call arguments, a node's source text, and
the statements of a body (without its expressions). No name resolution here."""

from __future__ import annotations

import ast
import re
from typing import Iterable

TEXT_CHARS = 160  # CallSite.text length
LINE_SPLIT = re.compile(r"\r\n|\r|\n")  # the line ends ast counts lines by
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")


def str_const(node: ast.AST | None) -> str | None:
    """The value of a string constant; None for any other node."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def kwarg(call: ast.Call, *names: str) -> ast.AST | None:
    """The value of the first keyword argument of ``call`` named in ``names``."""
    return next((k.value for k in call.keywords if k.arg in names), None)


def argument(call: ast.Call, index: int, keywords: tuple[str, ...] = ()) -> ast.AST | None:
    """Positional argument ``index`` of ``call``, or its keyword form (any of ``keywords``);
    None when absent or when a ``*args`` comes at or before it."""
    for k in call.keywords:
        if k.arg in keywords:
            return k.value
    if index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
        return call.args[index]
    return None


def str_list(node: ast.AST | None) -> tuple[str, ...]:
    """The string constants of a list, tuple or set literal, upper-cased (HTTP methods)."""
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return tuple(v.upper() for v in (str_const(e) for e in node.elts) if v)
    return ()


def callee_text(node: ast.AST) -> str:
    """The source of an expression rebuilt by ``ast.unparse``, whitespace collapsed,
    at most 80 characters (the name of a callee that could not be resolved)."""
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - unparse of exotic nodes
        text = type(node).__name__
    return re.sub(r"\s+", " ", text)[:80]


def segment(lines: list[str], node: ast.AST) -> str:
    """The source of ``node`` as written (``lines``: the file split by :data:`LINE_SPLIT`;
    col offsets are UTF-8 byte offsets), at most its first 5 lines, whitespace
    collapsed, cut to :data:`TEXT_CHARS` characters with "…"; "" when the position
    cannot be mapped."""
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


def statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """The statements of ``body`` and of the blocks nested in them (not the bodies of
    nested defs and classes), without walking expressions: cheaper than ast.walk."""
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
