"""HTTP101 missing-rate-limit: a burst of requests met no rate limit.

Reads :class:`auditor.facts.http.HttpFacts`; each reachable base URL got a
bounded burst (rules.yaml params: ``requests`` = 30 GETs, ``concurrency`` = 5 in
flight, ``path`` = ``/``; the collector sends it and stops at the first 429).

Per base URL:

- pass: a 429 came back with ``Retry-After``, or any response advertised the
  limit in ``RateLimit`` / ``RateLimit-Policy`` (IETF draft-ietf-httpapi-ratelimit-headers)
  or ``X-RateLimit-*`` headers;
- finding (medium, below the rule's high): a 429 without ``Retry-After`` and
  without rate-limit headers, so clients cannot tell when to back off and
  retry at once (RFC 6585 section 4: a 429 MAY include Retry-After);
- finding (the rule's severity): no 429 and no rate-limit headers after the
  whole burst: "no limit observed up to N requests";
- not judged: the target was unreachable, the burst was turned off, or the
  burst stopped on errors before it was complete. Those targets yield one
  :class:`~auditor.model.Inconclusive` listing why, so the item is never
  ``pass`` while a target went unjudged.

A limit above the burst size is invisible to this check unless it is
advertised in headers; the message says how many requests were sent.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.http import BurstResult, HttpTarget
from auditor.model import Finding, Inconclusive, Severity

_FIX_NO_LIMIT = (
    "Limit requests per client at the edge or in the app and answer 429 with Retry-After, e.g. nginx "
    "`limit_req_zone $binary_remote_addr zone=perip:10m rate=10r/s;` + `limit_req zone=perip burst=20 nodelay;` "
    "+ `limit_req_status 429;`, or Flask-Limiter `@limiter.limit(\"100/minute\")`, or django-ratelimit; "
    "advertise the policy in RateLimit-Policy / RateLimit headers. If a limit above this burst already exists, "
    "advertise it in those headers or raise the burst size (HTTP101 params: requests)."
)
_FIX_NO_RETRY_AFTER = (
    "Send Retry-After (seconds until the client may retry) with every 429, e.g. nginx "
    "`add_header Retry-After 60 always;` in the limited location, Flask-Limiter `RATELIMIT_HEADERS_ENABLED = True`; "
    "or advertise the window in RateLimit / RateLimit-Policy headers."
)


def _evidence(b: BurstResult) -> dict[str, Any]:
    return {
        "url": b.url,
        "sent": b.sent,
        "requested": b.requested,
        "concurrency": b.concurrency,
        "statuses": {str(code): n for code, n in b.statuses.items()},
        "first_429_at": b.first_429_at,
        "retry_after": b.retry_after,
        "ratelimit_headers": dict(b.ratelimit_headers),
        "errors": b.errors,
        "stopped_reason": b.stopped_reason,
        "duration_ms": b.duration_ms,
    }


def _statuses_text(b: BurstResult) -> str:
    return ", ".join(f"{n}x {code}" for code, n in b.statuses.items()) or "no responses"


class MissingRateLimit(BaseCheck):
    """HTTP101: yields one Finding per base URL that showed no (usable) rate limit."""

    rule_id = "HTTP101"
    requires = ("http",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        http = facts.http
        targets = http.targets if http is not None else ()
        if not targets:
            yield Inconclusive("no HTTP base URL was probed")
            return
        unjudged: list[str] = []
        for target in targets:
            outcome = self._judge(target)
            if isinstance(outcome, str):
                unjudged.append(outcome)
            elif outcome is not None:
                yield outcome
        if unjudged:
            yield Inconclusive("; ".join(unjudged))

    def _judge(self, t: HttpTarget) -> Finding | str | None:
        """A Finding, a reason the target was not judged (str), or None for a pass."""
        if not t.reachable:
            return f"{t.base_url} not reachable: {t.error}"
        b = t.burst
        if b is None:
            return f"{t.base_url}: {t.burst_disabled_reason or 'burst disabled in config'}"
        if b.ratelimit_headers:
            return None
        if b.first_429_at is not None:
            if b.retry_after:
                return None
            return Finding(
                rule_id=self.rule_id,
                message=(
                    f"{b.url} answers 429 without Retry-After (first at request {b.first_429_at} of a burst, "
                    f"{b.concurrency} in flight): clients cannot tell when to back off and tend to retry at once"
                ),
                fix=_FIX_NO_RETRY_AFTER,
                key=f"{b.url}#no-retry-after",
                location=b.url,
                severity=Severity.MEDIUM,
                evidence=_evidence(b),
            )
        if b.stopped_reason == "errors":
            return (
                f"{b.url}: the burst stopped after {b.errors} requests got no response "
                f"({b.error_sample}); {b.sent} of {b.requested} sent"
            )
        return Finding(
            rule_id=self.rule_id,
            message=(
                f"no limit observed up to {b.sent} requests on {b.url} ({b.concurrency} in flight, "
                f"{_statuses_text(b)}): no 429 and no RateLimit or X-RateLimit headers"
            ),
            fix=_FIX_NO_LIMIT,
            key=b.url,
            location=b.url,
            evidence=_evidence(b),
        )
