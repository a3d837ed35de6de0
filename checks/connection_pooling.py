"""PG301: no connection pooling in front of PostgreSQL."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.postgres import PostgresFacts
from auditor.facts.workload import ConnectionStats, WorkloadProfile
from auditor.model import Finding, Inconclusive, Severity

# Thresholds beyond rules.yaml's params (overridable through the same params mapping).
MIN_CONNECTIONS = 10  # fewer connections (log) or sessions (live) than this: too few to judge
MAX_IDLE_RATIO = 0.3  # idle sessions / max_connections at or above this, with no pooler
HIGH_USED_RATIO = 0.8  # connections / max_connections at or above this: high, else medium

_POOL_FIX = (
    "Put PgBouncer (pool_mode = transaction) between the application and PostgreSQL, or use "
    "the framework's pool (psycopg_pool.ConnectionPool, SQLAlchemy's engine pool, Django "
    "CONN_MAX_AGE / CONN_HEALTH_CHECKS) and open connections once per worker, not per request."
)


class ConnectionPooling(BaseCheck):
    """Looks for the two signs of no pooling: connection churn in the query log and
    connection saturation in the live server.

    Log (``WorkloadProfile.connections``, from log_connections/log_disconnections): a
    finding when at least ``min_connections`` connections were logged and either new
    connections arrive faster than ``max_connections_per_s`` (mean over the logged span;
    a span under one second counts as one second) or more than ``short_session_share`` of
    the sessions lasted less than ``short_session_ms``: a connection per request. Session
    lengths come from a histogram (``ConnectionStats.session_lengths``): the share is
    exact when ``short_session_ms`` is a power of ten (the default 1000 is) and the
    median is within ±6 %.

    Live (``PostgresFacts.connections``, pg_stat_activity, the auditor's own session left
    out): a finding when client connections / max_connections exceeds ``max_used_ratio``
    (high at ``high_used_ratio``, 0.8; medium below), or, with no pooler seen, when idle
    sessions reach ``max_idle_ratio`` (0.3) of max_connections: connections held open by
    application instances that a pooler would multiplex on a few server connections.

    A recognised pooler (``PostgresFacts.pooler`` other than None and "proxy"; "proxy"
    only means the ports differ, e.g. a Docker port mapping) turns the churn and idle
    signs off: only saturation is reported then.

    Params (rules.yaml): max_used_ratio (0.5), max_connections_per_s (1),
    short_session_ms (1000), short_session_share (0.5), min_connections (10),
    max_idle_ratio (0.3), high_used_ratio (0.8). The ratios are this project's judgement,
    not a published figure: PostgreSQL's default max_connections is 100 and each backend
    is a process, so half of it in use is the point to plan a pooler.

    Inconclusive when the log has no connection lines and no live figures were read, or
    when both hold fewer than min_connections connections (too little activity to judge).
    """

    rule_id: ClassVar[str] = "PG301"
    requires_one_of: ClassVar[tuple[str, ...]] = ("postgres", "workload")

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        pg, wl = facts.postgres, facts.workload
        p = _Params(params)
        pooler = pg.pooler if pg is not None and pg.pooler not in (None, "proxy") else None
        judged = False
        why_not: list[str] = []

        live = pg.connections if pg is not None else None
        if pg is not None and live is None:
            why_not.append("pg_stat_activity could not be read"
                           + (f" ({'; '.join(pg.notes)})" if pg.notes else ""))
        if pg is not None and live is not None and live.max_connections:
            finding = self._live(pg, p, pooler)
            if finding is not None:
                yield finding
                judged = True
            elif pooler is not None or live.total >= p.min_connections:
                judged = True
            else:
                why_not.append(f"only {live.total} client connection(s) at audit time, too few "
                               "to judge; give a query log written with log_connections=on")

        if wl is not None:
            cs = wl.connections
            if not cs.logged:
                why_not.append("the log has no connection lines: set log_connections=on and "
                               "log_disconnections=on")
            elif pooler is not None:
                judged = True
            else:
                finding = self._churn(wl, cs, p)
                if finding is not None:
                    yield finding
                    judged = True
                elif max(cs.connections, cs.sessions_timed, wl.request_count) >= p.min_connections:
                    # enough traffic: a connection per request would have shown as churn
                    judged = True
                else:
                    why_not.append(f"the log holds only {cs.connections} connection(s) and "
                                   f"{wl.request_count} request(s), too few to judge connection churn")

        if not judged:
            yield Inconclusive("; ".join(why_not) or "no connection figures to judge")

    # -- live ------------------------------------------------------------------------
    def _live(self, pg: PostgresFacts, p: "_Params", pooler: str | None) -> Finding | None:
        live = pg.connections
        assert live is not None
        ratio = live.used_ratio
        idle_ratio = live.idle / live.max_connections
        evidence = {
            "max_connections": live.max_connections,
            "superuser_reserved_connections": live.superuser_reserved,
            "connections": live.total, "active": live.active, "idle": live.idle,
            "idle_in_transaction": live.idle_in_transaction, "hidden": live.hidden,
            "used_ratio": round(ratio, 3), "max_used_ratio": p.max_used_ratio,
            "idle_ratio": round(idle_ratio, 3), "max_idle_ratio": p.max_idle_ratio,
            "by_application": dict(sorted(live.by_application.items(), key=lambda kv: -kv[1])[:10]),
            "by_client": dict(sorted(live.by_client.items(), key=lambda kv: -kv[1])[:10]),
            "pooler": pg.pooler, "pooler_evidence": pg.pooler_evidence,
        }
        figures = (f"{live.total} of max_connections {live.max_connections} "
                   f"({ratio:.0%}; {live.active} active, {live.idle} idle, "
                   f"{live.idle_in_transaction} idle in transaction)")
        if ratio > p.max_used_ratio:
            severity = Severity.HIGH if ratio >= p.high_used_ratio else Severity.MEDIUM
            behind = f" even behind {pooler}" if pooler else ""
            return Finding(
                rule_id=self.rule_id,
                message=f"PostgreSQL client connections are at {figures}{behind}, above "
                        f"{p.max_used_ratio:.0%}",
                fix=(_POOL_FIX if not pooler else
                     f"Lower {pooler}'s server pool size (default_pool_size x databases x users)")
                    + "; keep instances x pool size under max_connections - "
                      "superuser_reserved_connections, and size each pool to a few "
                      "connections per CPU core of the database server.",
                key=f"{pg.target}:connection-saturation",
                location=pg.target,
                severity=severity,
                evidence=evidence,
            )
        if pooler is None and live.idle >= p.min_connections and idle_ratio >= p.max_idle_ratio:
            return Finding(
                rule_id=self.rule_id,
                message=f"{live.idle} idle PostgreSQL connections hold {idle_ratio:.0%} of "
                        f"max_connections ({figures}) and no pooler was seen",
                fix=_POOL_FIX,
                key=f"{pg.target}:idle-connections",
                location=pg.target,
                severity=Severity.MEDIUM,
                evidence=evidence,
            )
        return None

    # -- log -------------------------------------------------------------------------
    def _churn(self, wl: WorkloadProfile, cs: ConnectionStats, p: "_Params") -> Finding | None:
        timed = cs.sessions_timed
        short = round(cs.sessions_shorter_than(p.short_session_ms))
        share = short / timed if timed else 0.0
        rate = cs.per_second
        fast = cs.connections >= p.min_connections and rate > p.max_connections_per_s
        brief = timed >= p.min_connections and share > p.short_session_share
        if not (fast or brief):
            return None
        span = (cs.last_ts - cs.first_ts) if cs.first_ts is not None and cs.last_ts is not None else None
        per_conn = wl.statements / cs.connections if cs.connections else None
        reasons = []
        if fast:
            reasons.append(f"{rate:.1f} new connections per second (above {p.max_connections_per_s:g})")
        if brief:
            reasons.append(f"{share:.0%} of {timed} sessions lasted under "
                           f"{p.short_session_ms:g} ms (above {p.short_session_share:.0%})")
        median = cs.median_session_ms
        return Finding(
            rule_id=self.rule_id,
            message="the log shows a connection per request: " + " and ".join(reasons),
            fix=_POOL_FIX,
            key="log:connection-per-request",
            location=wl.sources[0] if len(wl.sources) == 1 else None,
            evidence={
                "connections": cs.connections, "disconnections": cs.disconnections,
                "span_s": round(span, 3) if span is not None else None,
                "connections_per_s": round(rate, 3),
                "peak_per_second": cs.peak_per_second,
                "max_connections_per_s": p.max_connections_per_s,
                "sessions_timed": timed, "short_sessions": short,
                "short_session_share": round(share, 3),
                "short_session_ms": p.short_session_ms,
                "max_short_session_share": p.short_session_share,
                "median_session_ms": median,
                "statements": wl.statements,
                "statements_per_connection": round(per_conn, 1) if per_conn is not None else None,
                "sources": list(wl.sources),
            },
        )


class _Params:
    def __init__(self, params: Mapping[str, Any]) -> None:
        self.max_used_ratio = float(params.get("max_used_ratio", 0.5))
        self.max_connections_per_s = float(params.get("max_connections_per_s", 1))
        self.short_session_ms = float(params.get("short_session_ms", 1000))
        self.short_session_share = float(params.get("short_session_share", 0.5))
        self.min_connections = int(params.get("min_connections", MIN_CONNECTIONS))
        self.max_idle_ratio = float(params.get("max_idle_ratio", MAX_IDLE_RATIO))
        self.high_used_ratio = float(params.get("high_used_ratio", HIGH_USED_RATIO))
