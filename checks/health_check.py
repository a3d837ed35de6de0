"""HTTP201 missing-health-check: no endpoint a load balancer can ask "are you alive and ready?".

Reads :class:`auditor.facts.http.HttpFacts`: one GET per candidate path
(rules.yaml params ``paths``: /health, /healthz, /livez, /readyz, /ready,
/status, /ping, /actuator/health).

A path *answers* when it returns 2xx within ``timeout_s`` (rules.yaml default
2.0 s; load balancers give a health check a few seconds at most: AWS ALB's and
Google Cloud's default timeout is 5 s, a Kubernetes probe's ``timeoutSeconds``
defaults to 1 s), was not redirected to another path (a redirect to ``/login``
is not a health check), and does not return the very page the app serves for
a path that cannot exist (a catch-all route answers 2xx to everything).

Per base URL:

- finding (the rule's severity): no path answers; the evidence lists each
  path's status, latency (ms) or error;
- finding (low): some path answers but liveness and readiness are not
  separate: a readiness path (its name contains ``ready``: /readyz, /ready)
  and a liveness path (any other, e.g. /livez, /healthz, /health, /ping) do not
  both answer (Kubernetes' liveness/readiness split); the message names the
  paths that answered;
- pass: both a liveness and a readiness path answer;
- not judged (:class:`~auditor.model.Inconclusive`): the target was
  unreachable, no path was probed, or every path returns the catch-all page.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.http import HealthProbe, HttpTarget
from auditor.model import Finding, Inconclusive, Severity

DEFAULT_TIMEOUT_S = 2.0  # rules.yaml HTTP201 params.timeout_s

_FIX_NONE = (
    "Serve a cheap GET /livez (liveness: the process answers, no dependency checks) and GET /readyz "
    "(readiness: its database and cache answer) with 200 within a second, and point the load balancer's "
    "health check (and Kubernetes' livenessProbe / readinessProbe) at them."
)
_FIX_SPLIT = (
    "Keep the existing endpoint for liveness and add a separate readiness endpoint (or the reverse): "
    "/livez answers 200 whenever the process runs; /readyz answers 503 while the database or cache is "
    "unreachable or the instance is draining, so the load balancer stops sending it traffic without "
    "the orchestrator restarting it."
)


def is_readiness_path(path: str) -> bool:
    """/readyz, /ready, /actuator/health/readiness ...: the name says 'ready'."""
    return "ready" in path.lower() or "readiness" in path.lower()


def _final_path(p: HealthProbe) -> str | None:
    if p.redirected_to is None:
        return None
    return urlsplit(p.redirected_to).path


def _probe_note(p: HealthProbe, timeout_ms: float, catch_all_body: str | None) -> str:
    """Why a probed path does not count as a health endpoint (one short phrase)."""
    if p.status is None:
        return f"{p.path}: {p.error}"
    text = f"{p.path}: {p.status}"
    if not p.ok:
        return text
    if p.redirected_to is not None and _final_path(p).rstrip("/") != urlsplit(p.url).path.rstrip("/"):
        return f"{text} after a redirect to {p.redirected_to}"
    if p.elapsed_ms is not None and p.elapsed_ms > timeout_ms:
        return f"{text} after {p.elapsed_ms:.0f} ms (over {timeout_ms:.0f} ms)"
    if catch_all_body is not None and p.body_excerpt == catch_all_body:
        return f"{text} with the same page as a path that does not exist"
    return text


def _answers(p: HealthProbe, timeout_ms: float, catch_all_body: str | None) -> bool:
    if not p.ok:
        return False
    final = _final_path(p)
    if final is not None and final.rstrip("/") != urlsplit(p.url).path.rstrip("/"):
        return False
    if p.elapsed_ms is not None and p.elapsed_ms > timeout_ms:
        return False
    return catch_all_body is None or p.body_excerpt != catch_all_body


def _probe_evidence(p: HealthProbe) -> dict[str, Any]:
    return {
        "status": p.status,
        "elapsed_ms": p.elapsed_ms,
        "error": p.error,
        "redirected_to": p.redirected_to,
    }


class MissingHealthCheck(BaseCheck):
    """HTTP201: yields one Finding per base URL without (separate) health endpoints.

    params: ``timeout_s`` (seconds; a slower 2xx does not count).
    """

    rule_id = "HTTP201"
    requires = ("http",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        http = facts.http
        targets = http.targets if http is not None else ()
        if not targets:
            yield Inconclusive("no HTTP base URL was probed")
            return
        timeout_ms = float(params.get("timeout_s", DEFAULT_TIMEOUT_S)) * 1000.0
        unjudged: list[str] = []
        for target in targets:
            outcome = self._judge(target, timeout_ms)
            if isinstance(outcome, str):
                unjudged.append(outcome)
            elif outcome is not None:
                yield outcome
        if unjudged:
            yield Inconclusive("; ".join(unjudged))

    def _judge(self, t: HttpTarget, timeout_ms: float) -> Finding | str | None:
        if not t.reachable:
            return f"{t.base_url} not reachable: {t.error}"
        if not t.health:
            return f"{t.base_url}: no health paths were probed (HTTP201 params: paths)"
        catch_all_body = t.control.body_excerpt if t.control is not None and t.control.ok else None
        answered = [p for p in t.health if _answers(p, timeout_ms, catch_all_body)]
        evidence = {
            "base_url": t.base_url,
            "timeout_ms": timeout_ms,
            "probes": {p.path: _probe_evidence(p) for p in t.health},
            "answered": [p.path for p in answered],
        }
        if catch_all_body is not None:
            evidence["catch_all"] = {t.control.path: _probe_evidence(t.control)}
        if not answered:
            if catch_all_body is not None and any(p.ok for p in t.health):
                return (
                    f"{t.base_url} answers 2xx with the same page to every path, including "
                    f"{t.control.path}: a health endpoint cannot be told from its catch-all route"
                )
            tried = ", ".join(_probe_note(p, timeout_ms, catch_all_body) for p in t.health)
            return Finding(
                rule_id=self.rule_id,
                message=(
                    f"no health check endpoint on {t.base_url}: no path answered 2xx within "
                    f"{timeout_ms / 1000:g} s ({tried})"
                ),
                fix=_FIX_NONE,
                key=f"{t.base_url}#health",
                location=t.base_url,
                evidence=evidence,
            )
        readiness = [p.path for p in answered if is_readiness_path(p.path)]
        liveness = [p.path for p in answered if not is_readiness_path(p.path)]
        if readiness and liveness:
            return None
        paths = ", ".join(p.path for p in answered)
        missing = "no readiness path (/readyz, /ready) answered" if not readiness else (
            "no separate liveness path (/livez, /healthz, /health) answered"
        )
        return Finding(
            rule_id=self.rule_id,
            message=(
                f"liveness and readiness are not separate on {t.base_url}: only {paths} answered 2xx; {missing}"
            ),
            fix=_FIX_SPLIT,
            key=f"{t.base_url}#liveness-readiness",
            location=t.base_url,
            severity=Severity.LOW,
            evidence=evidence,
        )
