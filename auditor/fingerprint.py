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

Both functions are cached (an LRU keyed by the text): logs repeat the same text. Texts
longer than :data:`_CACHE_MAX_CHARS` (8 KB) are not cached, here or by :func:`shape`:
they are rare and would make the caches' size in bytes unbounded (entries are counted,
not weighed).
Neither raises on bad SQL; both raise ``TypeError`` for a non-``str`` argument.

:func:`shape` is the log reader's fast path to the same id. Statements logged with
their literals inline (``WHERE aid = 58665``) rarely repeat as text, so it also caches
by a cheap literal-stripped key (:func:`literal_key`: string literals cut out with
``str.split``, digits masked with ``bytes.translate``) and asks libpg_query only once
per key. A key
is only used where stripping cannot change what libpg_query sees: DML statements
without comments, backslashes, ``$`` (parameters, dollar quotes), ``float(p)`` type
modifiers (p picks float4 or float8), ``UESCAPE``, digits glued to words or inside
quoted identifiers; every other text is cached by its own text. So ``shape(sql) ==
fingerprint(sql)`` always (tests hold it over libpg_query's own cases).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from pglast import parser as _pg

__all__ = ["fingerprint", "normalize", "fallback_key", "FALLBACK_PREFIX", "shape",
           "literal_key"]

FALLBACK_PREFIX = "r"
_CACHE_SIZE = 65_536  # distinct texts kept; a few MB at most
_SHAPE_CACHE = 20_000  # entries of each shape() cache; the oldest half goes when full
_CACHE_MAX_CHARS = 8192  # longer texts (and literal keys) are computed, never cached

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


def _fingerprint(sql: str) -> str:
    try:
        return _pg.fingerprint(sql)
    except Exception:  # noqa: BLE001 - any parser failure means: use the fallback
        digest = hashlib.blake2b(fallback_key(sql).encode("utf-8", "surrogatepass"), digest_size=8)
        return FALLBACK_PREFIX + digest.hexdigest()


_fingerprint_cached = lru_cache(maxsize=_CACHE_SIZE)(_fingerprint)


def fingerprint(sql: str) -> str:
    """The shape id of ``sql``: libpg_query's 16-hex-digit fingerprint, or for text it
    cannot parse ``"r"`` + 16 hex digits of BLAKE2b over :func:`fallback_key`."""
    if not isinstance(sql, str):
        raise TypeError(f"fingerprint() takes SQL text, not {type(sql).__name__}")
    if len(sql) > _CACHE_MAX_CHARS:
        return _fingerprint(sql)
    return _fingerprint_cached(sql)


fingerprint.cache_info = _fingerprint_cached.cache_info  # type: ignore[attr-defined]
fingerprint.cache_clear = _fingerprint_cached.cache_clear  # type: ignore[attr-defined]


# -- the reader's fast path ------------------------------------------------------------
_DIGITS = re.compile(r"[0-9]")
_DIGIT_BYTES = bytes.maketrans(b"0123456789", b"\x00" * 10)
# properties of a key that make it unusable (they are outside literals, so every text
# with that key has them): digits glued to a word (t1, 1e5, 0x1F; any non-ASCII byte
# counts as a letter), float(p), UESCAPE
_UNSAFE_KEY = re.compile(rb"[A-Za-z_\x80-\xff]\x00|(?i:float)\s*\(|(?i:uescape)")
_DML = re.compile(rb"[\s(]*(?:select|insert|update|delete|with|values|merge)\b", re.I)
_UNUSABLE = ""  # _BY_KEY value for a key that must not be used
_BY_TEXT: dict[str, str] = {}
_BY_KEY: dict[bytes, str] = {}


def literal_key(sql: str) -> bytes | None:
    """A cheap key that is equal for texts differing only in their literal values (and
    in a trailing ``/* ... */`` comment, e.g. sqlcommenter tags): each string literal
    becomes a ``\\x01`` byte and each digit a ``\\x00`` byte (so ``42`` and ``17``
    agree, ``42`` and ``170`` do not: a few more keys, no regex). None for text where
    such stripping could be wrong (comments inside, backslashes, ``$``, quotes that do
    not pair up, digits inside quoted identifiers, NUL or \\x01 characters). Used by
    :func:`shape`, which adds the checks of the key itself."""
    s = sql
    if s[-2:] == "*/" or s[-3:] == "*/;":
        i = s.rfind("/*")
        end = len(s) - (2 if s[-1] == "/" else 3)
        if i >= 0 and "*/" not in s[i + 2:end]:
            s = s[:i] + s[end + 2:]
    if "\\" in s or "$" in s or "--" in s or "/*" in s or "\x00" in s or "\x01" in s:
        return None
    if "'" in s:
        parts = s.split("'")
        if not len(parts) & 1:
            return None  # an unterminated string
        outside = parts[0::2]
        if '"' in s:
            for p in parts[1::2]:
                if '"' in p:
                    return None
            for p in outside:
                if p.count('"') & 1:
                    return None
        s = "\x01".join(outside)
    if '"' in s:
        idents = s.split('"')[1::2]
        if idents and _DIGITS.search("".join(idents)):
            return None
    return s.encode("utf-8", "surrogatepass").translate(_DIGIT_BYTES)


def _compiled_literal_key():
    """The C :func:`literal_key` (``auditor/_speedups.c``, same results, tests/test_scan.py)
    unless it is not built or ``AUDITOR_PURE_PYTHON=1``."""
    import os
    if os.environ.get("AUDITOR_PURE_PYTHON", "") not in ("", "0"):
        return literal_key
    try:
        from auditor._speedups import literal_key as compiled
    except ImportError:
        return literal_key
    return compiled


_literal_key = _compiled_literal_key()


def shape(sql: str) -> str:
    """:func:`fingerprint`, cached for log reading (see the module docstring); the
    caches are bounded (:data:`_SHAPE_CACHE` entries each)."""
    fp = _BY_TEXT.get(sql)
    if fp is not None:
        return fp
    return shape_uncached(sql)


def shape_uncached(sql: str) -> str:
    """:func:`shape` for a text the caller already looked up in ``_BY_TEXT``."""
    key = _literal_key(sql)
    if key is not None:
        fp = _BY_KEY.get(key)
        if fp:
            return fp
        if fp is None:  # a new key
            fp = _fingerprint(sql)
            usable = _DML.match(key) is not None and _UNSAFE_KEY.search(key) is None
            _remember(_BY_KEY, key, fp if usable else _UNUSABLE)
            if usable:
                return fp
            _remember(_BY_TEXT, sql, fp)
            return fp
    fp = _fingerprint(sql)
    _remember(_BY_TEXT, sql, fp)
    return fp


def _remember(cache: dict, key, value: str) -> None:
    if len(key) > _CACHE_MAX_CHARS:
        return  # a long text (or key) is not kept: see _CACHE_MAX_CHARS
    if len(cache) >= _SHAPE_CACHE:
        for old in list(cache)[:_SHAPE_CACHE // 2]:
            del cache[old]
    cache[key] = value


def normalize(sql: str) -> str:
    """``sql`` with each literal replaced by a ``$n`` placeholder (libpg_query's
    normaliser; existing ``$n`` parameters keep their numbers and new ones follow them).
    For text the parser rejects, a regex pass does the same from left to right."""
    if not isinstance(sql, str):
        raise TypeError(f"normalize() takes SQL text, not {type(sql).__name__}")
    if len(sql) > _CACHE_MAX_CHARS:
        return _normalize(sql)
    return _normalize_cached(sql)


def _normalize(sql: str) -> str:
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


_normalize_cached = lru_cache(maxsize=_CACHE_SIZE)(_normalize)
normalize.cache_info = _normalize_cached.cache_info  # type: ignore[attr-defined]
normalize.cache_clear = _normalize_cached.cache_clear  # type: ignore[attr-defined]
