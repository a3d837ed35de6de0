"""Name resolution: an expression to the dotted name it stands for, through the
bindings of its scopes, the project's modules (imports, star imports, module
variables), and its classes (methods found along project base classes,
attributes typed by the constructor that built them)."""

from __future__ import annotations

import ast
from typing import Iterable

from auditor.collectors.source.scopes import Binding, Class, Module, Scope

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
_MAX_DEPTH = 16  # binding chains followed before a name is taken as it stands


def _join(head: str, tail: Iterable[str]) -> str:
    tail = list(tail)
    return ".".join([head, *tail]) if tail else head


def is_factory(name: str) -> bool:
    """Does calling ``name`` build an object whose methods we can name (a class, a client factory)?"""
    last = name.rsplit(".", 1)[-1]
    return name in CLIENT_FACTORIES or last[:1].isupper()


class Resolver:
    """The project's modules and classes by dotted name (filled by the scan) and the
    resolution of names through them. Every method returns a dotted name, or None
    when the expression goes through something of unknown type (an unannotated
    parameter, a call that is not a constructor); none raises."""

    def __init__(self) -> None:
        self.modules: dict[str, Module] = {}
        self.classes: dict[str, Class] = {}
        self._memo: dict[int, str | None] = {}  # id(binding) -> value, for lazy bindings
        self._mro: dict[str, list[Class]] = {}

    def lookup(self, scope: Scope, name: str) -> Binding | None:
        """The binding of ``name`` seen from ``scope``: its scopes outwards, then the
        module's star imports of project modules."""
        s: Scope | None = scope
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

    def value(self, b: Binding, depth: int = 0) -> str | None:
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

    def object_of(self, node: ast.AST, scope: Scope) -> str | None:
        """What a value expression denotes: an alias (``x = requests``) or an object
        built by a constructor/factory call (``x = smtplib.SMTP(h)`` -> ``smtplib.SMTP``)."""
        if isinstance(node, (ast.Name, ast.Attribute, ast.Call)):
            return self.expr(node, scope)
        return None

    def annotation(self, node: ast.AST, scope: Scope) -> str | None:
        """The type an annotation names: ``X``, ``"X"``, ``Optional[X]``,
        ``Annotated[X, ...]`` (the first subscript), ``X | None`` (the first side that resolves)."""
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

    def expr(self, node: ast.AST, scope: Scope) -> str | None:
        """Resolve a callee or receiver expression to a dotted name, or None."""
        if isinstance(node, ast.Name):
            b = self.lookup(scope, node.id)
            return self.value(b) if b is not None else None
        if isinstance(node, ast.Attribute):
            base = self.expr(node.value, scope)
            return self.canon(f"{base}.{node.attr}") if base is not None else None
        if isinstance(node, ast.Call):  # Client(...).send(...): the object a constructor built
            f = self.expr(node.func, scope)
            return f if f is not None and is_factory(f) else None
        return None

    def canon(self, dotted: str, depth: int = 0) -> str | None:
        """Follow project modules' bindings: ``shop.ext.mail.send`` where ``shop.ext``
        has ``mail = Mail()`` becomes ``flask_mail.Mail.send``; a method inherited
        from a project base class is named after the class that defines it.
        None when the name goes through a project variable of unknown type."""
        if depth > _MAX_DEPTH:
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
        """``cls.rest[0].rest[1]...``: a method named after the class (in the MRO) that
        defines it, a nested class, or an attribute followed to its type."""
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

    def mro(self, cls: str) -> list[Class]:
        """The class and its project base classes, depth first (external bases are left out)."""
        if cls in self._mro:
            return self._mro[cls]
        k = self.classes.get(cls)
        if k is None:
            return []
        self._mro[cls] = [k]  # breaks cycles (class A(B); class B(A))
        out = [k]
        for base in k.bases:
            name = self.expr(base, k.scope)
            if name in self.classes:
                out.extend(x for x in self.mro(name) if x not in out)
        self._mro[cls] = out
        return out

    def external_bases(self, cls: str) -> list[str]:
        """The resolved names of the non-project bases of ``cls`` and of its project bases."""
        out = []
        for k in self.mro(cls):
            for base in k.bases:
                name = self.expr(base, k.scope)
                if name and name not in self.classes:
                    out.append(name)
        return out
