"""Keep secrets out of every output.

Every string that may carry a DSN, URL, or exception text from a client library
goes through :func:`redact` before it reaches a report, a log line or an error.
Collectors also register the literal secrets they were given
(:func:`register_secret`) so that a password echoed back by a driver in an
unexpected shape is still masked.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_secrets: set[str] = set()

# scheme://user:password@host  -> scheme://user:***@host
# (the scheme is anchored and capped at 32 characters: unbounded, a long run of letters
# such as a bytea hex literal made the search quadratic)
_URL_PASSWORD = re.compile(
    r"(?P<pre>(?<![\w+.\-])[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
# key=value DSNs and query strings: password=..., sslpassword=..., access_token=...,
# client_secret=..., api_key=... (any word ending in one of the secret names). A SQL
# placeholder ($1, ?, %s) is no value: `SET api_token = $1` keeps its $1, and the
# backtick that closes a quoted statement in a message is not part of a value.
_KV_SECRET = re.compile(
    r"(?i)(?P<key>\b\w*?(?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key)\s*[=:]\s*)"
    r"(?P<q>['\"]?)(?!(?:\$\d+|\?|%s)(?![^\s'\"&;,`)]))(?P<val>[^\s'\"&;,`]+)(?P=q)"
)
# SQL that sets a password: ALTER ROLE app WITH PASSWORD 'x' / CREATE USER u PASSWORD 'x'
_SQL_PASSWORD = re.compile(r"(?i)(?P<key>\bPASSWORD\s+)'(?:[^']|'')*'")
# Well-known secret shapes, wherever they appear (e.g. a query example's values): password
# hashes (bcrypt, argon2, scrypt/pbkdf2 in Django's format) and API keys with a vendor prefix
# (Stripe sk_/rk_, GitHub ghp_/gho_/github_pat_, Slack xox?-, AWS access key ids, JWTs).
_SECRET_SHAPES = re.compile(
    r"\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}"
    r"|\$argon2(?:id|i|d)\$[^\s'\"]+"
    r"|\b(?:pbkdf2_sha256|bcrypt_sha256|scrypt)\$[^\s'\"]+"
    r"|\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{8,}"
    r"|\b(?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{20,}|\bgithub_pat_[0-9A-Za-z_]{20,}"
    r"|\bxox[abprs]-[0-9A-Za-z-]{10,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\beyJ[0-9A-Za-z_-]{8,}\.eyJ[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}"
)


def register_secret(value: str | None) -> None:
    """Remember a literal secret (>= 4 chars) so that :func:`redact` masks it anywhere."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: Any) -> str:
    """Return ``str(text)`` with registered secrets, URL passwords, key=value secrets
    (``password=``, ``sslpassword=``, ``access_token=``, ``client_secret=``, ...), SQL
    ``PASSWORD '...'`` literals, password hashes and vendor-prefixed API keys masked.
    Pattern-based: a secret of no known shape in free text (a query's bind value) is
    only masked when it was registered; statement examples go through
    :func:`auditor.redact_sql.mask_examples` first, which knows their columns. A SQL
    placeholder after a secret name (``api_token = $1``) is left as it is."""
    s = str(text)
    # Known secrets first: a registered password holding '@' or ':' would otherwise be
    # cut in two by the URL pattern and leak its tail.
    for secret in sorted(_secrets, key=len, reverse=True):
        s = s.replace(secret, MASK)
    s = _URL_PASSWORD.sub(lambda m: f"{m['pre']}{MASK}{m['at']}", s)
    s = _KV_SECRET.sub(lambda m: f"{m['key']}{m['q']}{MASK}{m['q']}", s)
    s = _SQL_PASSWORD.sub(lambda m: f"{m['key']}'{MASK}'", s)
    s = _SECRET_SHAPES.sub(MASK, s)
    return s


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists, tuples)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj
