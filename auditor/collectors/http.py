"""The HTTP prober: bounded, identified GETs against the audited app's base URLs.

For each base URL it sends, in this order:

1. one GET of a path that should not exist (``/auditor-nonexistent-<random>``):
   it tells whether the target is reachable at all and whether the app answers
   2xx to anything (a catch-all route, which would make any health path "pass");
2. one GET per candidate health path (default :data:`DEFAULT_HEALTH_PATHS`),
   following at most :data:`MAX_REDIRECTS` redirects;
3. unless turned off, a burst of ``requests`` GETs to ``path`` with at most
   ``concurrency`` in flight, no redirects followed, stopped at the first 429
   (DESIGN.md: "bounded requests, an identifying User-Agent, stop at the first 429").

So at most ``1 + len(health_paths) * (1 + MAX_REDIRECTS) + requests`` requests
reach a base URL. Every request carries :data:`USER_AGENT` and a timeout of
``timeout_s`` seconds (connect, read, write and pool each). Read-only: GET only.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, Iterable, Mapping
from urllib.parse import unquote

import httpx

from auditor import __version__
from auditor.errors import ConfigError, TargetUnreachable
from auditor.facts.http import BurstResult, HealthProbe, HttpFacts, HttpTarget, is_ratelimit_header
from auditor.redact import redact, register_secret

# The paths load balancers and orchestrators conventionally probe: Kubernetes'
# /livez, /readyz (and the older /healthz), the common /health, /ready, /status,
# /ping, and Spring Boot Actuator's /actuator/health.
DEFAULT_HEALTH_PATHS: tuple[str, ...] = (
    "/health", "/healthz", "/livez", "/readyz", "/ready", "/status", "/ping", "/actuator/health",
)
# Same defaults as rules.yaml HTTP101 params.
DEFAULT_BURST: Mapping[str, Any] = MappingProxyType(
    {"enabled": True, "requests": 30, "concurrency": 5, "path": "/"}
)
USER_AGENT = f"auditor/{__version__} (+production-readiness audit)"

MAX_REDIRECTS = 2  # health probes only; the burst follows none
MAX_BURST_REQUESTS = 1000  # hard ceiling on a configured burst (an audit is not a load test)
MAX_CONCURRENCY = 50
BURST_MAX_ERRORS = 3  # the burst stops once this many requests got no response
BODY_EXCERPT_CHARS = 200
_HEALTH_BODY_BYTES = 2048  # read at most this much of a health answer
_BURST_BODY_BYTES = 64 * 1024  # and of a burst answer (the rest is discarded unread)

_BURST_KEYS = frozenset(DEFAULT_BURST)


def _read_limited(resp: httpx.Response, limit: int, *, deadline: float,
                  decoded: bool = True) -> bytes:
    """Read at most ``limit`` bytes of the body, and stop at ``deadline`` (a
    time.perf_counter() value): httpx's timeout is per socket read, so a server that
    trickles bytes would otherwise stretch one request far past the timeout."""
    buf = bytearray()
    for chunk in (resp.iter_bytes() if decoded else resp.iter_raw()):
        buf.extend(chunk)
        if len(buf) >= limit or time.perf_counter() >= deadline:
            break
    return bytes(buf[:limit])


def _excerpt(body: bytes) -> str:
    text = re.sub(r"\s+", " ", body.decode("utf-8", errors="replace")).strip()
    return redact(text[:BODY_EXCERPT_CHARS])


def _is_connect_failure(exc: BaseException | None) -> bool:
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


class HttpCollector:
    """Collect :class:`~auditor.facts.http.HttpFacts` from one or more base URLs.

    ``base_urls``: ``http://`` or ``https://`` URLs; a path prefix is kept
    (``http://host/app`` probes ``http://host/app/health``); user:password in the
    URL is sent as HTTP basic auth and never appears in any output.
    ``timeout_s``: seconds, for every request (HTTP201's ``timeout_s`` param
    judges health latency separately). ``health_paths``: paths starting with
    ``/``. ``burst``: a mapping with the keys of :data:`DEFAULT_BURST`
    (``enabled``, ``requests``, ``concurrency``, ``path``; missing keys take the
    defaults, which are rules.yaml HTTP101's params); ``None`` or
    ``{"enabled": False}`` turns the burst off. ``verify``: TLS certificate
    verification (httpx's ``verify``).

    Raises ConfigError (in the constructor) for a URL that is not http(s), an
    unknown burst key, a burst above :data:`MAX_BURST_REQUESTS` requests or
    :data:`MAX_CONCURRENCY` in flight, or a non-positive timeout.
    :meth:`collect` raises TargetUnreachable only when *every* base URL is
    unreachable; one bad target among several becomes ``reachable=False``.
    """

    kind = "http"

    def __init__(
        self,
        base_urls: Iterable[str],
        *,
        timeout_s: float = 5.0,
        health_paths: Iterable[str] = DEFAULT_HEALTH_PATHS,
        burst: Mapping[str, Any] | None = DEFAULT_BURST,
        user_agent: str = USER_AGENT,
        verify: bool = True,
    ) -> None:
        if isinstance(base_urls, str):
            base_urls = [base_urls]
        self._bases = [self._parse_base(u) for u in base_urls]
        if not self._bases:
            raise ConfigError("no HTTP base URL given (http.base_urls or --http)")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ConfigError(f"http timeout_s must be a positive number of seconds, not {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.health_paths = tuple(self._check_path(p, "health path") for p in health_paths)
        self.burst = self._parse_burst(burst)
        self.user_agent = user_agent
        self.verify = verify

    # -- configuration -------------------------------------------------------

    @staticmethod
    def _parse_base(raw: str) -> httpx.URL:
        shown = redact(raw)
        try:
            url = httpx.URL(str(raw).strip())
        except Exception as exc:  # noqa: BLE001 - httpx raises several types for bad URLs
            raise ConfigError(f"HTTP base URL {shown} is not a valid URL: {redact(exc)}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(
                f"HTTP base URL {shown} must look like http://host:port or https://host (scheme and host required)"
            )
        if url.password:
            register_secret(url.password)
            raw_pw = url.userinfo.decode("ascii", "replace").partition(":")[2]
            register_secret(raw_pw)
            register_secret(unquote(raw_pw))
        return url

    @staticmethod
    def _check_path(path: Any, what: str) -> str:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"http {what} must start with '/', not {path!r}")
        return path

    def _parse_burst(self, burst: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if burst is None:
            return None
        if not isinstance(burst, Mapping):
            raise ConfigError(f"http burst must be a mapping with keys {', '.join(sorted(_BURST_KEYS))}")
        unknown = set(burst) - _BURST_KEYS
        if unknown:
            raise ConfigError(
                f"http burst: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"expected {', '.join(sorted(_BURST_KEYS))}"
            )
        cfg = {**DEFAULT_BURST, **burst}
        if not cfg["enabled"]:
            return None
        for key, ceiling in (("requests", MAX_BURST_REQUESTS), ("concurrency", MAX_CONCURRENCY)):
            v = cfg[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= ceiling:
                raise ConfigError(f"http burst {key} must be a whole number from 1 to {ceiling}, not {v!r}")
        cfg["concurrency"] = min(cfg["concurrency"], cfg["requests"])
        cfg["path"] = self._check_path(cfg["path"], "burst path")
        return cfg

    @staticmethod
    def _url(base: httpx.URL, path: str) -> httpx.URL:
        p, _, q = path.partition("?")
        prefix = base.path.rstrip("/")
        if q:
            return base.copy_with(path=prefix + p, query=q.encode())
        return base.copy_with(path=prefix + p)

    # -- Collector protocol --------------------------------------------------

    def describe(self) -> str:
        bases = ", ".join(redact(str(b)) for b in self._bases)
        what = f"GET of {len(self.health_paths)} health path(s)"
        if self.burst:
            what += (
                f", a burst of {self.burst['requests']} GETs to {self.burst['path']} "
                f"({self.burst['concurrency']} in flight, stopped at the first 429)"
            )
        else:
            what += ", no burst (turned off)"
        return f"HTTP {bases}: {what}; timeout {self.timeout_s:g} s, User-Agent {self.user_agent!r}"

    def collect(self) -> HttpFacts:
        """Probe every base URL in turn. Returns HttpFacts (one target per base URL).

        Raises TargetUnreachable when no base URL accepted a connection.
        """
        targets = tuple(self._collect_one(base) for base in self._bases)
        if not any(t.reachable for t in targets):
            raise TargetUnreachable(
                "no HTTP base URL could be reached: " + "; ".join(t.error or t.base_url for t in targets)
            )
        return HttpFacts(targets=targets)

    # -- probing ---------------------------------------------------------------

    def _client(self, max_connections: int) -> httpx.Client:
        return httpx.Client(
            headers={"User-Agent": self.user_agent},
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=self.verify,
        )

    def _describe_error(self, exc: BaseException, url: str) -> str:
        reason = redact(str(exc) or type(exc).__name__)
        t = f"{self.timeout_s:g} s"
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection to {url} within {t}: check the host and port, and that no firewall drops the packets"
        if isinstance(exc, httpx.ConnectError):
            if "ssl" in reason.lower() or "certificate" in reason.lower():
                return (
                    f"TLS handshake with {url} failed ({reason}); for a self-signed staging "
                    "certificate turn certificate verification off for this target"
                )
            return f"cannot connect to {url} ({reason}): check that the app is running and the scheme, host and port are right"
        if isinstance(exc, httpx.TimeoutException):
            return f"no response from {url} within {t}"
        if isinstance(exc, httpx.TooManyRedirects):
            return f"{url} redirected more than {MAX_REDIRECTS} times"
        return f"{type(exc).__name__} from {url}: {reason}"

    def _probe(self, client: httpx.Client, base: httpx.URL, path: str) -> tuple[HealthProbe, BaseException | None]:
        url = self._url(base, path)
        shown = redact(str(url))
        t0 = time.perf_counter()
        try:
            with client.stream("GET", url) as resp:
                body = _read_limited(resp, _HEALTH_BODY_BYTES, deadline=t0 + self.timeout_s)
                elapsed = (time.perf_counter() - t0) * 1000.0
                redirected_to = None
                if resp.history:
                    final = resp.url
                    same_origin = (final.scheme, final.host, final.port) == (url.scheme, url.host, url.port)
                    redirected_to = redact(final.raw_path.decode("ascii", "replace") if same_origin else str(final))
                return HealthProbe(
                    path=path, url=shown, status=resp.status_code, elapsed_ms=round(elapsed, 3),
                    body_excerpt=_excerpt(body), redirected_to=redirected_to,
                ), None
        except httpx.HTTPError as exc:
            return HealthProbe(path=path, url=shown, status=None, elapsed_ms=None,
                               error=self._describe_error(exc, shown)), exc

    def _collect_one(self, base: httpx.URL) -> HttpTarget:
        shown_base = redact(str(base))
        conc = self.burst["concurrency"] if self.burst else 1
        with self._client(conc) as client:
            control, exc = self._probe(client, base, f"/auditor-nonexistent-{secrets.token_hex(4)}")
            if _is_connect_failure(exc):
                assert exc is not None
                return HttpTarget(base_url=shown_base, reachable=False, error=self._describe_error(exc, shown_base),
                                  control=control, timeout_s=self.timeout_s)
            health = tuple(self._probe(client, base, p)[0] for p in self.health_paths)
            if self.burst:
                burst, disabled = self._burst(client, base), None
            else:
                burst, disabled = None, "burst disabled in config"
        return HttpTarget(base_url=shown_base, reachable=True, health=health, burst=burst,
                          burst_disabled_reason=disabled, control=control, timeout_s=self.timeout_s)

    def _burst(self, client: httpx.Client, base: httpx.URL) -> BurstResult:
        """Send at most ``requests`` GETs with at most ``concurrency`` in flight.

        Each of ``concurrency`` workers takes the next request number under a
        lock and sends it; nobody takes a number once a 429 has been seen or
        :data:`BURST_MAX_ERRORS` requests failed, so after the first 429 arrives
        only the requests already in flight (< concurrency) complete.
        """
        cfg = self.burst
        assert cfg is not None
        total, conc, path = cfg["requests"], cfg["concurrency"], cfg["path"]
        url = self._url(base, path)
        shown = redact(str(url))
        lock = threading.Lock()
        issued = 0
        stop: str | None = None
        statuses: Counter[int] = Counter()
        first_429: int | None = None
        retry_after: str | None = None
        rl_headers: dict[str, str] = {}
        errors = 0
        error_sample: str | None = None

        def worker() -> None:
            nonlocal issued, stop, first_429, retry_after, errors, error_sample
            while True:
                with lock:
                    if stop is not None or issued >= total:
                        return
                    issued += 1
                    n = issued
                try:
                    with client.stream("GET", url, follow_redirects=False) as resp:
                        status = resp.status_code
                        with lock:  # stop others from taking a number before the body is read
                            statuses[status] += 1
                            for name, value in resp.headers.items():
                                if is_ratelimit_header(name):
                                    if status == 429:
                                        rl_headers[name.lower()] = value
                                    else:
                                        rl_headers.setdefault(name.lower(), value)
                            if status == 429:
                                stop = stop or "429"
                                if first_429 is None or n < first_429:
                                    first_429 = n
                                    retry_after = resp.headers.get("retry-after")
                        _read_limited(resp, _BURST_BODY_BYTES, decoded=False,
                                      deadline=time.perf_counter() + self.timeout_s)
                except httpx.HTTPError as exc:
                    with lock:
                        errors += 1
                        error_sample = error_sample or self._describe_error(exc, shown)
                        if errors >= BURST_MAX_ERRORS:
                            stop = stop or "errors"

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=conc, thread_name_prefix="auditor-http-burst") as pool:
            futures = [pool.submit(worker) for _ in range(conc)]
            for f in futures:
                f.result()
        return BurstResult(
            path=path, url=shown, sent=issued, concurrency=conc, statuses=dict(sorted(statuses.items())),
            first_429_at=first_429, retry_after=retry_after, ratelimit_headers=dict(sorted(rl_headers.items())),
            errors=errors, stopped_reason=stop or "completed", error_sample=error_sample,
            duration_ms=round((time.perf_counter() - t0) * 1000.0, 3), requested=total,
        )
