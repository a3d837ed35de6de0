"""Mask the values a SQL statement binds to secret-named columns, before it is shown.

Findings keep "an example with its values": a statement as the query log (or
pg_stat_statements) holds it, with its bind parameters. :mod:`auditor.redact` masks
secrets of a known shape (DSN passwords, ``PASSWORD '...'``, password hashes, vendor
API keys), but a plain secret has no shape: ``'hunter2'`` is only a secret because it
goes into the ``password`` column. This module finds which literal or ``$n``
parameter is bound to which column, with sqlglot (dialect ``postgres``), and masks the
values bound to a column, key or alias whose name looks secret (:func:`is_secret_name`):

- ``INSERT INTO t (c1, c2, ...) VALUES (...), (...)`` and ``INSERT ... SELECT``, by
  position (also ``(VALUES ...) AS v(c1, c2)``);
- ``UPDATE ... SET c = ...`` and ``ON CONFLICT ... DO UPDATE SET c = ...``;
- comparisons anywhere (``=``, ``<>``, ``IN``, ``LIKE``, ``BETWEEN``, ``IS``, ...) in
  WHERE, ON, HAVING, ``SET name = ...``: when one side names a secret column (or a
  JSON key, ``data->>'password'``), every value in the comparison is masked;
- ``expr AS secret_name`` in a select list;
- key/value shapes: a string literal that is itself a secret name masks the other
  values of its row, call or statement (``jsonb_build_object('api_key', $1)``,
  ``set_config('app.token', '...', false)``, ``VALUES ('api_token', '...')``,
  ``WHERE key = 'api_token'``).

A ``$n`` placeholder so bound masks the n-th bind value. Statements sqlglot cannot
parse (a log's truncated text, syntax it parses as a bare command such as ``ALTER
ROLE``), longer than :data:`MAX_PARSE_CHARS`, or whose value it cannot locate in the
text (``INTERVAL '1 day'``, ``'a' 'b'``), fall back to the conservative
answer: when the text mentions a secret name at all, every literal and every bind
value is masked. Text that mentions no secret name is returned unchanged without
being parsed. Known gap: ``INSERT INTO t VALUES (...)`` without a column list names
no column, so nothing is masked there (beyond :mod:`auditor.redact`'s shapes).

Checks see the real statements (they analyse their columns); only output is masked:
:func:`mask_examples` runs on the JSON form of a report (auditor.reporters.json, which
the terminal and HTML reporters render from) and on ``auditor logs`` summaries.
Nothing here raises for bad SQL.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Sequence

# sqlglot (about 80 ms to import) is imported by _load_sqlglot(), the first time a
# statement that mentions a secret name has to be parsed
sqlglot: Any = None
exp: Any = None
SqlglotError: Any = None

__all__ = ["SECRET_WORDS", "SECRET_PAIRS", "SECRET_STEMS", "NOT_SECRET_LAST",
           "is_secret_name", "mask_statement", "mask_sql", "mask_examples", "Masked",
           "quiet_sqlglot"]

MASK = "***"
MASKED_LITERAL = "'***'"
#: Longer statements that mention a secret name are not parsed: every value is masked.
MAX_PARSE_CHARS = 100_000

#: A name is secret when one of its words (split at ``_``, ``-``, ``.``, camelCase) is one
#: of these ...
SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "pwd", "pass", "passphrase", "passcode",
    "secret", "secrets", "token", "tokens", "apikey", "apikeys", "accesskey",
    "privatekey", "sessionkey", "authtoken", "credential", "credentials", "auth",
    "authorization", "bearer", "jwt", "cookie", "otp", "totp", "hotp", "mfa", "pin",
    "ssn", "cvv", "cvv2", "cvc", "iban",
})
#: ... or two of its words, in this order, are one of these pairs ...
SECRET_PAIRS = frozenset({
    ("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"),
    ("session", "key"), ("session", "id"), ("encryption", "key"), ("signing", "key"),
    ("master", "key"), ("license", "key"), ("client", "secret"), ("card", "number"),
    ("card", "no"), ("cc", "number"), ("credit", "card"), ("account", "number"),
    ("social", "security"), ("security", "code"), ("recovery", "code"),
    ("backup", "code"), ("verification", "code"), ("reset", "code"),
})
#: ... or the whole name (lower case, ``_``/``-`` removed) contains one of these
#: (glued names: ``userpassword``, ``x_api_key``, ``clientsecret``).
SECRET_STEMS = ("password", "passwd", "secret", "apikey", "privatekey", "accesskey",
                "credential", "authtoken", "sessionkey")
#: A name ending in one of these words describes a secret without holding it
#: (``token_count``, ``password_changed_at``, ``token_type``, ``otp_enabled``).
NOT_SECRET_LAST = frozenset({
    "at", "on", "date", "time", "count", "counts", "type", "kind", "length", "len",
    "enabled", "required", "expires", "expiry", "expired", "changed", "updated",
    "created", "version", "policy", "attempts", "algorithm", "algo", "scheme",
})

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_NAMELIKE = re.compile(r"^[A-Za-z_][\w.\-{}\[\]$]*$")


@lru_cache(maxsize=8192)
def is_secret_name(name: str) -> bool:
    """True when the column, key, parameter or alias ``name`` looks like it holds a
    secret: by :data:`SECRET_WORDS`, :data:`SECRET_PAIRS` and :data:`SECRET_STEMS`,
    unless its last word is in :data:`NOT_SECRET_LAST`. Case-insensitive; a dotted
    name (``app.api_token``, ``users.password``) is judged by its parts."""
    if not name:
        return False
    for part in re.split(r"[.\s{}\[\]\"]+", name):
        words = [w.lower() for w in _WORD.findall(part)]
        if not words or words[-1] in NOT_SECRET_LAST:
            continue
        if any(w in SECRET_WORDS for w in words):
            return True
        if any(pair in SECRET_PAIRS for pair in zip(words, words[1:])):
            return True
        glued = re.sub(r"[^a-z0-9]", "", part.lower())
        if any(stem in glued for stem in SECRET_STEMS):
            return True
    return False


# -- lexing: literal spans in the original text ----------------------------------------
_LEX = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<dollar>\$(?P<tag>[A-Za-z_]\w*)?\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<estring>[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z))
    | (?P<string>(?:[BbXxNn]|[Uu]&)?'(?:[^']|'')*(?:'|\Z))
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z))
    | (?P<param>\$\d+)
    | (?P<word>[A-Za-z_][\w$]*)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    """,
    re.S | re.X,
)
_LITERAL_KINDS = ("dollar", "estring", "string", "number")


def _lex(sql: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of each token that matters here, end exclusive."""
    out = []
    for m in _LEX.finditer(sql):
        kind = m.lastgroup if m.lastgroup != "tag" else "dollar"
        out.append((kind, m.start(), m.end()))
    return out


def _mentions_secret(sql: str, tokens: list[tuple[str, int, int]]) -> bool:
    for kind, a, b in tokens:
        if kind in ("word", "ident") and is_secret_name(sql[a:b].strip('"')):
            return True
        if kind in ("string", "estring", "dollar"):
            inner = _unquote(sql[a:b])
            if _NAMELIKE.match(inner) and is_secret_name(inner):
                return True
    return False


def _unquote(token: str) -> str:
    """The value of a literal token as written (quotes and prefixes removed)."""
    m = re.match(r"^\$(\w*)\$(.*?)(?:\$\1\$)?$", token, re.S)
    if token.startswith("$") and m:
        return m.group(2)
    q = token.find("'")
    if q < 0:
        return token
    body = token[q + 1:]
    if body.endswith("'"):
        body = body[:-1]
    return body.replace("''", "'")


# -- binding with sqlglot ---------------------------------------------------------------
@dataclass(frozen=True)
class _Bindings:
    spans: tuple[tuple[int, int], ...] = ()  # literal tokens to mask, in the original text
    params: frozenset[int] = frozenset()  # 1-based $n to mask
    all_params: bool = False  # fallback: mask every bind value


_NOTHING = _Bindings()
_VALUE_TYPES: tuple = ()


def _load_sqlglot() -> None:
    global sqlglot, exp, SqlglotError, _VALUE_TYPES
    if exp is not None:
        return
    import sqlglot as _sqlglot
    from sqlglot import exp as _exp
    from sqlglot.errors import SqlglotError as _error
    sqlglot, exp, SqlglotError = _sqlglot, _exp, _error
    _VALUE_TYPES = (exp.Literal, exp.National, exp.RawString, exp.HexString, exp.BitString,
                    exp.ByteString, exp.UnicodeString)
_PARAM_NAME = re.compile(r"^p(\d+)$")


class _Unlocatable(Exception):
    """A value to mask has no position in the text: use the fallback."""


def _prepare(sql: str, tokens: list[tuple[str, int, int]]) -> tuple[str, list[int]]:
    """``$n`` → ``:pn`` (sqlglot reads ``$2,$3`` as a dollar string), and the positions
    in the new text where each replacement starts (each adds one character)."""
    parts, starts, pos, shift = [], [], 0, 0
    for kind, a, b in tokens:
        if kind == "param":
            parts.append(sql[pos:a])
            starts.append(a + shift)
            parts.append(":p" + sql[a + 1:b])
            pos, shift = b, shift + 1
    parts.append(sql[pos:])
    return "".join(parts), starts


def _fallback(sql: str, tokens: list[tuple[str, int, int]]) -> _Bindings:
    return _Bindings(tuple((a, b) for k, a, b in tokens if k in _LITERAL_KINDS),
                     frozenset(), True)


def _names_secret(node: exp.Expression) -> bool:
    """A column, JSON key or named thing in ``node`` whose name looks secret."""
    for n in node.walk():
        if isinstance(n, exp.Column) and is_secret_name(n.name):
            return True
        if isinstance(n, exp.JSONPathKey) and isinstance(n.this, str) and is_secret_name(n.this):
            return True
        if isinstance(n, (exp.Parameter, exp.SessionParameter)) and is_secret_name(n.name):
            return True
    return False


def _secret_name_literal(node: exp.Expression) -> bool:
    return (isinstance(node, exp.Literal) and node.is_string and _NAMELIKE.match(node.this or "")
            is not None and is_secret_name(node.this))


def _to_mask(stmt: exp.Expression) -> tuple[list[exp.Expression], list[exp.Expression]]:
    """The subtrees of ``stmt`` whose values are bound to a secret name, and those
    (key/value shapes) whose values are masked except the literals naming a secret."""
    out: list[exp.Expression] = []
    but_names: list[exp.Expression] = []
    for node in stmt.walk():
        if isinstance(node, exp.Insert):
            schema = node.this
            cols = ([e.name for e in schema.expressions] if isinstance(schema, exp.Schema) else [])
            secret = [i for i, c in enumerate(cols) if is_secret_name(c)]
            src = node.expression
            if secret and src is not None:
                if isinstance(src, exp.Values):
                    out.extend(_positional(src.expressions, secret))
                elif isinstance(src, exp.Select):
                    out.extend(src.selects[i] for i in secret if i < len(src.selects))
                else:  # a CTE, a UNION ...: which value goes where is not plain
                    out.append(src)
        elif isinstance(node, exp.Values):
            alias = node.args.get("alias")
            cols = [c.name for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
            secret = [i for i, c in enumerate(cols) if is_secret_name(c)]
            if secret:
                out.extend(_positional(node.expressions, secret))
        elif isinstance(node, exp.Predicate):
            if _names_secret(node):
                out.append(node)
            elif isinstance(node, (exp.EQ, exp.In)) and any(
                    _secret_name_literal(n) for n in _operands(node)):
                but_names.append(stmt)  # WHERE key = 'api_token': the row's values too
        elif isinstance(node, exp.Alias) and is_secret_name(node.alias):
            out.append(node.this)
        elif isinstance(node, (exp.Func, exp.Tuple)):
            args = [a for a in node.iter_expressions()]
            if any(_secret_name_literal(a) for a in args):
                out.extend(a for a in args if not _secret_name_literal(a))
    return out, but_names


def _operands(node: exp.Expression) -> list[exp.Expression]:
    ops = [node.this, node.args.get("expression"), *(node.args.get("expressions") or ())]
    return [o for o in ops if isinstance(o, exp.Expression)]


def _positional(rows: Iterable[exp.Expression], secret: list[int]) -> list[exp.Expression]:
    out = []
    for row in rows:
        values = row.expressions if isinstance(row, exp.Tuple) else [row]
        out.extend(values[i] for i in secret if i < len(values))
    return out


@lru_cache(maxsize=4096)
def _bindings(sql: str) -> _Bindings:
    tokens = _lex(sql)
    if not _mentions_secret(sql, tokens):
        return _NOTHING
    if len(sql) > MAX_PARSE_CHARS:  # a bulk INSERT of thousands of rows: do not parse
        return _fallback(sql, tokens)
    prepared, starts = _prepare(sql, tokens)
    _load_sqlglot()
    try:
        with quiet_sqlglot():
            statements = sqlglot.parse(prepared, read="postgres")
    except (SqlglotError, RecursionError, ValueError, TypeError):
        return _fallback(sql, tokens)
    literal_at = {a: (a, b) for k, a, b in tokens if k in _LITERAL_KINDS}
    literal_starts = sorted(literal_at)
    spans: set[tuple[int, int]] = set()
    params: set[int] = set()
    try:
        for stmt in statements:
            if stmt is None:
                continue
            if isinstance(stmt, exp.Command):
                return _fallback(sql, tokens)
            subtrees, but_names = _to_mask(stmt)
            for sub, keep_names in [(s, False) for s in subtrees] + [(s, True) for s in but_names]:
                for n in sub.walk():
                    if isinstance(n, exp.Placeholder):
                        m = _PARAM_NAME.match(str(n.name))
                        if m:
                            params.add(int(m.group(1)))
                    elif isinstance(n, _VALUE_TYPES):
                        if keep_names and _secret_name_literal(n):
                            continue
                        spans.add(_span(n, starts, literal_at, literal_starts))
    except _Unlocatable:
        return _fallback(sql, tokens)
    except (SqlglotError, RecursionError):
        return _fallback(sql, tokens)
    return _Bindings(tuple(sorted(spans)), frozenset(params))


def _span(node: exp.Expression, starts: list[int], literal_at: dict[int, tuple[int, int]],
          literal_starts: list[int]) -> tuple[int, int]:
    """The literal token of ``node`` in the original text (sqlglot's ``meta`` holds its
    start in the prepared text). Raises _Unlocatable."""
    start = node.meta.get("start") if node.meta else None
    if start is None:
        raise _Unlocatable
    orig = start - bisect.bisect_left(starts, start)
    # the token that holds this position (a prefix such as E' or N' starts it)
    i = bisect.bisect_right(literal_starts, orig) - 1
    if i < 0:
        raise _Unlocatable
    a, b = literal_at[literal_starts[i]]
    if not a <= orig < b:
        raise _Unlocatable
    return a, b


class quiet_sqlglot:
    """``with quiet_sqlglot(): sqlglot.parse(...)``: sqlglot logs a statement it can only
    parse as a bare command, with its whole text (an ``ALTER ROLE ... PASSWORD '...'``),
    as a warning, which Python prints on stderr when logging is not configured. Parse
    inside this to keep statements off stderr."""

    def __enter__(self):
        self._logger = logging.getLogger("sqlglot")
        self._was = self._logger.disabled
        self._logger.disabled = True

    def __exit__(self, *exc):
        self._logger.disabled = self._was


# -- the public functions ---------------------------------------------------------------
@dataclass(frozen=True)
class Masked:
    """A statement with its secret values masked: ``query`` (each masked literal is
    ``'***'``, a masked number ``***``), ``params`` (masked bind values are ``***``),
    ``values``: the values masked, as written (for masking them elsewhere too), and
    ``fallback``: True when the statement could not be bound and every value of it was
    masked (its ``values`` are then mostly not secrets)."""
    query: str
    params: tuple[str, ...]
    values: frozenset[str]
    fallback: bool = False


def mask_statement(sql: str, params: Sequence[Any] = ()) -> Masked:
    """Mask what ``sql`` binds to secret names (see the module docstring): its
    literals, and the ``params`` (``params[n-1]`` is the value of ``$n``) of its
    placeholders. Never raises for bad SQL; a non-str ``sql`` is returned as ``str``."""
    sql = sql if isinstance(sql, str) else str(sql)
    b = _bindings(sql)
    values: set[str] = set()
    out_params = []
    for n, v in enumerate(params, 1):
        if b.all_params or n in b.params:
            if v is not None:
                values.add(str(v))
            out_params.append(MASK)
        else:
            out_params.append(v)
    if not b.spans:
        return Masked(sql, tuple(out_params), frozenset(values), b.all_params)
    pieces, pos = [], 0
    for a, e in b.spans:
        if a < pos:
            continue
        token = sql[a:e]
        pieces.append(sql[pos:a])
        if "'" in token or token.startswith("$"):
            values.add(_unquote(token))
            pieces.append(MASKED_LITERAL)
        else:
            values.add(token)
            pieces.append(MASK)
        pos = e
    pieces.append(sql[pos:])
    return Masked("".join(pieces), tuple(out_params), frozenset(values), b.all_params)


def mask_sql(sql: str) -> str:
    """``sql`` with the literals it binds to secret names masked (no bind values)."""
    return mask_statement(sql).query


# keys whose string values (or lists of strings) are SQL text
_SQL_KEYS = frozenset({"query", "queries", "statement", "statements", "sql", "normalized",
                       "example"})
# keys of prose that quotes statements in `code spans` (a finding's message and fix),
# possibly cut short ("... reset_token = 'abc...`": masked by the fallback)
_PROSE_KEYS = frozenset({"message", "fix"})
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_MIN_RAW = 6  # shorter masked values are only masked elsewhere when quoted
_UNMASKABLE = {"", "NULL", MASK, MASKED_LITERAL}


def mask_examples(doc: Any) -> Any:
    """Mask secret values in the statement examples of a JSON-like ``doc`` (the findings
    of a report, or a log summary, in their dict form), then wherever else those
    values appear in ``doc``.

    Every dict with a ``query`` string (and optionally a ``params`` list) goes through
    :func:`mask_statement`; every other string (or list of strings) under a SQL key
    (``normalized``, ``statement``, ``sql``, ...) through :func:`mask_sql`, and so does
    each `code span` of a ``message`` or ``fix`` (findings quote statements there,
    sometimes cut short: a cut literal is masked by the fallback). The values
    masked are then removed from every string of ``doc`` (a finding's message may quote
    them, e.g. ``$1 = 'hunter2'``): quoted (``'v'``, ``"v"``) always, and bare when at
    least 6 characters long and bound to a secret name (not masked by the fallback,
    which masks every value of a statement it cannot bind). Returns a new structure;
    ``doc`` is not changed."""
    bound: set[str] = set()
    loose: set[str] = set()
    masked = _walk(doc, bound, loose, sql_context=False)
    bound -= _UNMASKABLE
    loose -= _UNMASKABLE | bound
    if not bound and not loose:
        return masked
    rules = sorted([(v, len(v) >= _MIN_RAW) for v in bound] + [(v, False) for v in loose],
                   key=lambda r: -len(r[0]))
    return _replace(masked, rules)


def _walk(obj: Any, bound: set[str], loose: set[str], sql_context: bool) -> Any:
    if isinstance(obj, dict):
        example = None
        if isinstance(obj.get("query"), str):
            params = obj.get("params")
            example = mask_statement(obj["query"],
                                     params if isinstance(params, (list, tuple)) else ())
            (loose if example.fallback else bound).update(example.values)
        out = {}
        for k, v in obj.items():
            if example is not None and k == "query":
                out[k] = example.query
            elif example is not None and k == "params" and isinstance(v, (list, tuple)):
                out[k] = list(example.params)
            elif k in _PROSE_KEYS and isinstance(v, str):
                out[k] = _CODE_SPAN.sub(lambda m: _mask_span(m, bound, loose), v)
            else:
                out[k] = _walk(v, bound, loose, isinstance(k, str) and k in _SQL_KEYS)
        return out
    if isinstance(obj, (list, tuple)):
        return [_walk(v, bound, loose, sql_context) for v in obj]
    if sql_context and isinstance(obj, str):
        m = mask_statement(obj)
        (loose if m.fallback else bound).update(m.values)
        return m.query
    return obj


def _mask_span(m: re.Match, bound: set[str], loose: set[str]) -> str:
    masked = mask_statement(m.group(1))
    (loose if masked.fallback else bound).update(masked.values)
    return f"`{masked.query}`"


def _replace(obj: Any, rules: list[tuple[str, bool]]) -> Any:
    if isinstance(obj, str):
        for v, bare in rules:
            if v not in obj:
                continue
            if bare:
                obj = obj.replace(v, MASK)
            else:
                obj = obj.replace(f"'{v}'", MASKED_LITERAL).replace(f'"{v}"', f'"{MASK}"')
        return obj
    if isinstance(obj, dict):
        return {k: _replace(v, rules) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_replace(v, rules) for v in obj]
    return obj
