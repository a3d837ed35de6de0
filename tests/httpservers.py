"""Real HTTP servers on loopback for the HTTP tests (real sockets, real HTTP; no mocks).

    with serve(health={"/health": 200}, rate_limit_after=10) as srv:
        facts = HttpCollector([srv.url]).collect()
        assert srv.stats.hits["/"] <= 15

The server records what it received (:class:`Stats`) so that tests can assert
what the audited app saw: how many requests, how many at once, which User-Agent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Mapping

HEALTH_ONLY = {"/health": 200}  # the demo app: one /health, no liveness/readiness split
SPLIT_PROBES = {"/livez": 200, "/readyz": 200}  # Kubernetes-style separate probes


@dataclass
class AppSpec:
    """What the loopback app does.

    health: path -> status for the health endpoints it serves (others are 404).
    limited_path: the path the rate limiter counts (the burst path).
    rate_limit_after: the first K requests to ``limited_path`` get 200, later ones 429.
    retry_after: the Retry-After value sent with a 429 (None: no Retry-After).
    ratelimit_headers: None, "ietf" (RateLimit + RateLimit-Policy) or "x" (X-RateLimit-*),
        sent on every answer of ``limited_path``.
    delay_s: every request is held this long (so that concurrent requests overlap).
    slow: path -> extra seconds before answering.
    catch_all: answer 200 with the same page to every unknown path (a SPA-style fallback).
    redirects: path -> Location answered with 302.
    """
    health: Mapping[str, int] = field(default_factory=dict)
    limited_path: str = "/"
    rate_limit_after: int | None = None
    retry_after: str | None = "1"
    ratelimit_headers: str | None = None
    delay_s: float = 0.0
    slow: Mapping[str, float] = field(default_factory=dict)
    catch_all: bool = False
    redirects: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Stats:
    hits: Counter = field(default_factory=Counter)  # path -> requests received
    total: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    user_agents: set = field(default_factory=set)
    authorization: list = field(default_factory=list)  # Authorization headers received
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class LoopbackServer:
    def __init__(self, spec: AppSpec) -> None:
        self.spec = spec
        self.stats = Stats()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(spec, self.stats))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def start(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_handler(spec: AppSpec, stats: Stats) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stalls

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            with stats.lock:
                stats.hits[path] += 1
                stats.total += 1
                stats.in_flight += 1
                stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
                stats.user_agents.add(self.headers.get("User-Agent"))
                if self.headers.get("Authorization"):
                    stats.authorization.append(self.headers["Authorization"])
                n_limited = stats.hits[path] if path == spec.limited_path else 0
            try:
                time.sleep(spec.delay_s + spec.slow.get(path, 0.0))
                self._answer(path, n_limited)
            finally:
                with stats.lock:
                    stats.in_flight -= 1

        def _answer(self, path: str, n_limited: int) -> None:
            if path in spec.redirects:
                self._send(302, b"", {"Location": spec.redirects[path]})
                return
            if path in spec.health:
                status = spec.health[path]
                self._send(status, b'{"status": "ok"}' if status < 400 else b'{"status": "down"}')
                return
            if path == spec.limited_path:
                headers: dict[str, str] = {}
                limit = spec.rate_limit_after or 100
                remaining = max(limit - n_limited, 0)
                if spec.ratelimit_headers == "ietf":
                    headers["RateLimit-Policy"] = f'"default";q={limit};w=60'
                    headers["RateLimit"] = f'"default";r={remaining};t=60'
                elif spec.ratelimit_headers == "x":
                    headers["X-RateLimit-Limit"] = str(limit)
                    headers["X-RateLimit-Remaining"] = str(remaining)
                if spec.rate_limit_after is not None and n_limited > spec.rate_limit_after:
                    if spec.retry_after is not None:
                        headers["Retry-After"] = spec.retry_after
                    self._send(429, b"Too Many Requests", headers)
                    return
                self._send(200, b"<html><body>hello</body></html>", headers)
                return
            if spec.catch_all:
                self._send(200, b"<html><body>single page app</body></html>")
                return
            self._send(404, b"Not Found")

    return Handler


@contextmanager
def serve(**spec) -> Iterator[LoopbackServer]:
    """Start a loopback app with :class:`AppSpec` options; stop it afterwards."""
    srv = LoopbackServer(AppSpec(**spec)).start()
    try:
        yield srv
    finally:
        srv.stop()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (a port the OS just gave out and took back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
