"""HTTP facts: what the HTTP prober (auditor.collectors.http) saw on each base URL.

Every URL and error string here is already redacted (auditor.redact): a password
given in ``http://user:secret@host`` shows as ``http://user:***@host``.
Times are milliseconds; counts are requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Names (lower-cased) of the response headers that advertise a rate limit:
# the IETF draft's ``RateLimit`` / ``RateLimit-Policy`` (draft-ietf-httpapi-ratelimit-headers),
# its earlier ``RateLimit-Limit/-Remaining/-Reset`` shape, and the de-facto
# ``X-RateLimit-*`` / ``X-Rate-Limit-*`` families (GitHub, Twitter, many gateways).
RATELIMIT_HEADER_PREFIXES: tuple[str, ...] = ("ratelimit-", "x-ratelimit-", "x-rate-limit-")
RATELIMIT_HEADER_NAMES: tuple[str, ...] = ("ratelimit", "ratelimit-policy")


def is_ratelimit_header(name: str) -> bool:
    """True for RateLimit, RateLimit-Policy, RateLimit-*, X-RateLimit-* and X-Rate-Limit-* (any case)."""
    n = name.lower()
    return n in RATELIMIT_HEADER_NAMES or n.startswith(RATELIMIT_HEADER_PREFIXES)


@dataclass(frozen=True)
class HealthProbe:
    """One GET of a candidate health path.

    ``status`` is the final status after at most two redirects (None when no
    response came: then ``error`` says why). ``redirected_to`` is the final
    path when a redirect was followed (e.g. ``/login``), else None.
    ``elapsed_ms`` is the time to the response headers and the first bytes of
    the body. ``body_excerpt`` is at most 200 characters of the body, redacted.
    """
    path: str  # as configured, e.g. "/healthz"
    url: str  # the full URL requested, redacted
    status: int | None
    elapsed_ms: float | None
    error: str | None = None
    body_excerpt: str = ""
    redirected_to: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer (whatever its latency)."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class BurstResult:
    """A bounded burst of GETs to one path, stopped at the first 429.

    ``sent`` requests were sent in all (never more than configured), with at most
    ``concurrency`` in flight at once. ``statuses`` maps status code -> count of
    responses. ``first_429_at`` is the 1-based send-order number of the first
    request that was answered 429 (None: no 429). ``retry_after`` is that 429's
    Retry-After header (None when absent or no 429). ``ratelimit_headers`` holds
    the rate-limit headers seen on any response (lower-cased names, see
    :func:`is_ratelimit_header`; a 429's own values win). ``errors`` counts
    requests that got no response; ``error_sample`` is one of them (redacted).
    ``stopped_reason`` is ``"completed"`` (all sent), ``"429"`` or ``"errors"``
    (too many requests without a response).
    """
    path: str
    url: str  # redacted
    sent: int
    concurrency: int
    statuses: dict[int, int] = field(default_factory=dict)
    first_429_at: int | None = None
    retry_after: str | None = None
    ratelimit_headers: dict[str, str] = field(default_factory=dict)
    errors: int = 0
    stopped_reason: str = "completed"
    error_sample: str | None = None
    duration_ms: float = 0.0
    requested: int = 0  # the configured burst size (sent <= requested)


@dataclass(frozen=True)
class HttpTarget:
    """What was seen on one base URL.

    ``reachable`` is False when no TCP/TLS connection could be made; ``error``
    then says why and what to check, and ``health``/``burst`` are empty.
    ``control`` is a GET of a path that should not exist: when it answers 2xx
    the app answers 2xx to anything (a catch-all route), and a 2xx on a health
    path proves little by itself. ``burst`` is None when the burst was turned
    off; ``burst_disabled_reason`` then says so.
    """
    base_url: str  # redacted
    reachable: bool
    error: str | None = None
    health: tuple[HealthProbe, ...] = ()
    burst: BurstResult | None = None
    burst_disabled_reason: str | None = None
    control: HealthProbe | None = None
    timeout_s: float = 5.0  # the client timeout every request had


@dataclass(frozen=True)
class HttpFacts:
    """One :class:`HttpTarget` per configured base URL, in configuration order."""
    targets: tuple[HttpTarget, ...] = ()
