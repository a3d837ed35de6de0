"""Query fingerprints: one id per query *shape* (literals and parameters removed).

    >>> fingerprint("select * from t where id = 1") == fingerprint("SELECT * FROM t WHERE id=2")
    True
    >>> normalize("select * from t where id = 1 and s = 'x'")
    'select * from t where id = $1 and s = $2'

:func:`fingerprint` is libpg_query's fingerprint (through pglast): 16 lower-case hex
digits computed from the parse tree, so whitespace, case, comments, literal values and
the length of ``IN (...)`` lists do not change it, and PostgreSQL's own grammar decides
what a literal is. Statements libpg_query cannot parse (a log's truncated statement,
another dialect) fall back to a regex normaliser (:func:`fallback_key`) hashed with
BLAKE2b and prefixed ``r``: 17 characters, so a fallback id never equals a parser id.
A truncated statement therefore gets a different id than the complete one; that is the
price of not guessing.

Both functions are cached (an LRU keyed by the text): logs repeat the same text.
Neither raises on bad SQL; both raise ``TypeError`` for a non-``str`` argument.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from pglast import parser as _pg

__all__ = ["fingerprint", "normalize", "fallback_key", "FALLBACK_PREFIX"]

FALLBACK_PREFIX = "r"
_CACHE_SIZE = 65_536  # distinct texts kept; a few MB at most

# -- the fallback normaliser ---------------------------------------------------------
# One alternation, scanned left to right, so a quote inside a comment or a digit inside
# an identifier is never mistaken for a literal.
_TOKEN = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<dollar>\$(?P<tag>[A-Za-z_]\w*)?\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<string>[EeBbXxNn]?'(?:[^']|'')*(?:'|\Z))
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z))
    | (?P<param>\$\d+)
    | (?P<word>[A-Za-z_][\w$]*)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<space>\s+)
    """,
    re.S | re.X,
)
_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*(?:\)|\Z)")  # a truncated list too
_VALUES_ROWS = re.compile(r"(\(\.\.\.\))(?:\s*,\s*\(\.\.\.\))+")


def _tokens(sql: str, placeholder):
    """Yield the pieces of ``sql`` with literals replaced by ``placeholder()``."""
    pos = 0
    for m in _TOKEN.finditer(sql):
        if m.start() > pos:  # operators and punctuation between tokens
            yield sql[pos:m.start()]
        pos = m.end()
        kind = m.lastgroup if m.lastgroup != "tag" else "dollar"
        text = m.group()
        if kind == "comment":
            yield " "
        elif kind in ("dollar", "string", "number", "param"):
            yield placeholder(text)
        elif kind == "space":
            yield " "
        else:
            yield text
    if pos < len(sql):
        yield sql[pos:]


def fallback_key(sql: str) -> str:
    """The canonical text the fallback fingerprint hashes.

    Comments dropped; string, dollar-quoted and numeric literals and ``$n`` parameters
    become ``?``; ``IN (?, ?, ...)`` lists and multi-row ``VALUES`` collapse to one
    element; whitespace is collapsed; unquoted words are lower-cased.
    """
    parts = []
    for piece in _tokens(sql, lambda _t: "?"):
        if piece[:1] != '"':
            piece = piece.lower()
        parts.append(piece)
    text = re.sub(r"\s+", " ", "".join(parts)).strip().rstrip(";").strip()
    text = _IN_LIST.sub("(...)", text)
    text = _VALUES_ROWS.sub(r"\1", text)
    return text


@lru_cache(maxsize=_CACHE_SIZE)
def fingerprint(sql: str) -> str:
    """The shape id of ``sql``: libpg_query's 16-hex-digit fingerprint, or for text it
    cannot parse ``"r"`` + 16 hex digits of BLAKE2b over :func:`fallback_key`."""
    if not isinstance(sql, str):
        raise TypeError(f"fingerprint() takes SQL text, not {type(sql).__name__}")
    try:
        return _pg.fingerprint(sql)
    except Exception:  # noqa: BLE001 - any parser failure means: use the fallback
        digest = hashlib.blake2b(fallback_key(sql).encode("utf-8", "surrogatepass"), digest_size=8)
        return FALLBACK_PREFIX + digest.hexdigest()


@lru_cache(maxsize=_CACHE_SIZE)
def normalize(sql: str) -> str:
    """``sql`` with each literal replaced by a ``$n`` placeholder (libpg_query's
    normaliser; existing ``$n`` parameters keep their numbers and new ones follow them).
    For text the parser rejects, a regex pass does the same from left to right."""
    if not isinstance(sql, str):
        raise TypeError(f"normalize() takes SQL text, not {type(sql).__name__}")
    try:
        return _pg.normalize(sql)
    except Exception:  # noqa: BLE001
        pass
    existing = [int(n) for n in re.findall(r"\$(\d+)", sql)]
    counter = [max(existing, default=0)]

    def placeholder(text: str) -> str:
        if text.startswith("$") and text[1:].isdigit():
            return text
        counter[0] += 1
        return f"${counter[0]}"

    return "".join(_tokens(sql, placeholder)).strip()
