"""SRC101 sync-third-party-call: a request handler waits on an HTTP, SMTP, payment or
messaging call to another service.

Reads :class:`auditor.facts.source.SourceFacts`. For each handler it follows the
project's own functions the handler calls, breadth first, up to ``max_depth``
levels (rules.yaml default 3; the handler is level 0, so a call made by a
helper of a helper of the handler is at level 2), and reports every call whose
resolved name is in one of the tables below. One finding per (handler, call
site); when a call site is reachable along several paths the shortest chain is
reported.

Not on the request path, so neither followed nor reported:

- enqueue calls (:data:`ENQUEUE_CALLS`: Celery ``.delay()`` / ``.apply_async()``,
  RQ ``enqueue``, FastAPI/Starlette ``BackgroundTasks.add_task``, Django-Q
  ``async_task``, SQS ``send_message``; Dramatiq ``actor.send()``): the function
  handed to them runs in a worker. Their *arguments* are still evaluated in the
  request (``add_task(store, fetch(url))`` calls ``fetch`` now), except the body of
  a lambda passed to them;
- calls to a project function decorated as a Huey task (:data:`ENQUEUE_ON_CALL`):
  calling it enqueues it;
- a project ``async def`` called without ``await`` as an argument of
  ``asyncio.create_task`` / ``ensure_future`` (:data:`DETACH_CALLS`): it runs
  detached from the response.

An awaited call (``await client.post(...)`` on an ``httpx.AsyncClient``) frees
the event loop but not the user: it is reported like a blocking one.

Inconclusive (never a pass) when no Python file was parsed, when no request
handler was found, or when nothing was found but some files could not be parsed.
"""

from __future__ import annotations

import re
from collections import deque
from functools import lru_cache
from typing import Any, Iterable, Mapping

from auditor.check import BaseCheck
from auditor.facts import Facts
from auditor.facts.source import CallSite, Function, Handler, SourceFacts
from auditor.model import Finding, Inconclusive

DEFAULT_MAX_DEPTH = 3  # rules.yaml SRC101 params.max_depth

# Classification tables. Patterns are dotted names as the source scanner resolves
# them (auditor.facts.source): "*" is one name segment, "**" one or more, and
# "{a,b}" alternatives within a segment. Names are the public entry points
# documented by each library (requests, HTTPX, urllib, urllib3, http.client,
# aiohttp, smtplib, Django's django.core.mail, Flask-Mail, SendGrid, Postmark,
# yagmail, Stripe, Braintree, PayPal REST/Checkout SDKs, Twilio, Slack SDK,
# Firebase Admin, Pusher, boto3 SES/SESv2/SNS). Calls whose last segment is
# CapWords construct a client object and are never reported (the scanner does not
# see a constructor connect; the send that follows is reported).
_VERB = "{get,post,put,patch,delete,head,options,request}"
HTTP_CALLS: tuple[str, ...] = (
    f"requests.{_VERB}", f"requests.api.{_VERB}",
    f"requests.Session.{_VERB}", "requests.Session.send",
    f"requests.sessions.Session.{_VERB}", "requests.sessions.Session.send",
    f"requests.session.{_VERB}", f"requests.sessions.session.{_VERB}",
    f"httpx.{_VERB}", "httpx.stream",
    f"httpx.{{Client,AsyncClient}}.{_VERB}", "httpx.{Client,AsyncClient}.{send,stream}",
    "urllib.request.urlopen", "urllib.request.{build_opener,OpenerDirector}.open",
    "urllib3.request",
    "urllib3.{PoolManager,ProxyManager,HTTPConnectionPool,HTTPSConnectionPool,connection_from_url}"
    ".{request,urlopen,request_encode_url,request_encode_body}",
    "http.client.{HTTPConnection,HTTPSConnection}.request",
    "aiohttp.request",
    "aiohttp.ClientSession.{get,post,put,patch,delete,head,options,request,ws_connect}",
)
EMAIL_CALLS: tuple[str, ...] = (
    "smtplib.{SMTP,SMTP_SSL,LMTP}.{sendmail,send_message}",
    "django.core.mail.{send_mail,send_mass_mail,mail_admins,mail_managers}",
    "django.core.mail.{EmailMessage,EmailMultiAlternatives}.send",
    "django.core.mail.message.{EmailMessage,EmailMultiAlternatives}.send",
    "django.core.mail.get_connection.send_messages",
    "flask_mail.Mail.{send,send_message}", "flask_mail.Connection.send",
    "sendgrid.{SendGridAPIClient,SendGridClient}.**",
    "postmarker.core.PostmarkClient.emails.{send,send_batch,send_with_template}",
    "yagmail.SMTP.send",
    "boto3.**.{send_email,send_raw_email,send_templated_email,send_bulk_templated_email,send_bulk_email}",
)
PAYMENT_CALLS: tuple[str, ...] = (
    "stripe.**",
    "braintree.**",
    "paypalrestsdk.**",
    "paypalcheckoutsdk.core.PayPalHttpClient.execute",
)
# Local helpers of the payment SDKs (signature checks, configuration, errors): no network.
PAYMENT_LOCAL: tuple[str, ...] = (
    "stripe.{Webhook,WebhookSignature,error,util,StripeObject,oauth_error}.**",
    "stripe.{set_app_info,enable_telemetry}",
    "braintree.{Configuration,Environment,WebhookNotification,WebhookTesting,exceptions}.**",
    "braintree.BraintreeGateway.webhook_notification.**",
    "paypalrestsdk.{configure,set_config,api.configure}",
)
MESSAGING_CALLS: tuple[str, ...] = (
    "twilio.rest.Client.**",
    "slack_sdk.{WebClient,web.WebClient,web.client.WebClient,web.async_client.AsyncWebClient}.**",
    "slack_sdk.webhook.{WebhookClient,async_client.AsyncWebhookClient}.send",
    "slack_sdk.webhook.WebhookClient.send_dict",
    "slack.WebClient.**", "slackclient.SlackClient.api_call",
    "firebase_admin.messaging.{send,send_all,send_multicast,send_each,send_each_for_multicast}",
    "pusher.Pusher.{trigger,trigger_batch}",
    "boto3.**.{publish,publish_batch,send_text_message,send_voice_message}",
)

# Calls that hand work to a queue or worker (Celery, RQ, Django-Q, FastAPI/Starlette
# background tasks, Amazon SQS), from each library's documentation: a lambda passed
# to one of them runs in the worker, so the calls in its body are not followed.
ENQUEUE_CALLS: tuple[str, ...] = (
    "**.{delay,apply_async,send_task}",  # Celery tasks and app.send_task; also RQ @job .delay
    "**.{enqueue,enqueue_call,enqueue_at,enqueue_in,enqueue_many}",  # RQ Queue / Scheduler
    "{fastapi,starlette}.**.add_task",  # BackgroundTasks.add_task
    "django_q.tasks.{async_task,schedule}",
    "boto3.**.{send_message,send_message_batch}",  # SQS
)
# Decorators that make a plain call enqueue the function (Huey).
ENQUEUE_ON_CALL: tuple[str, ...] = (
    "huey.**.{task,db_task,periodic_task,db_periodic_task}",
)
# Calls that run a coroutine detached from the response.
DETACH_CALLS: tuple[str, ...] = (
    "asyncio.{create_task,ensure_future}",
    "{fastapi,starlette}.**.add_task",
)

KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("http", HTTP_CALLS), ("email", EMAIL_CALLS), ("payment", PAYMENT_CALLS), ("messaging", MESSAGING_CALLS),
)

_FIX = {
    "http": (
        "Move `{callee}` out of the request: enqueue a job (Celery `.delay()`, RQ `queue.enqueue`, "
        "FastAPI `BackgroundTasks.add_task`) and answer at once. If the reply needs the response, "
        "bound the wait: a short timeout (e.g. `timeout=(3.05, 10)`), a retry budget and a fallback "
        "when the service is down."
    ),
    "email": (
        "Send the email from a background job (e.g. `send_receipt.delay(order.id)` after the "
        "transaction commits) instead of calling `{callee}` in the request; the SMTP or API round "
        "trip, its retries and its outages then never reach the user."
    ),
    "payment": (
        "If the reply depends on the payment result, keep `{callee}` in the request but pass an "
        "idempotency key, set a short timeout and a small retry budget (stripe: `stripe.max_network_retries`, "
        "`idempotency_key=`) and handle the provider's errors; move everything else (refunds, receipts, "
        "customer and metadata updates) to a background job or a webhook handler."
    ),
    "messaging": (
        "Send the message (SMS, chat, push) from a background job instead of calling `{callee}` in the "
        "request; the user does not need to wait for it."
    ),
}
_NO_TIMEOUT = (" `{callee}` is given no timeout here, and it waits indefinitely without one.")
_AWAITED = (" Awaiting it frees the event loop, not the user: the response still waits for it.")


@lru_cache(maxsize=None)
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    for seg in re.split(r"\.(?![^{]*\})", pattern):
        if seg == "**":
            out.append(r"[^.]+(?:\.[^.]+)*")
        elif seg == "*":
            out.append(r"[^.]+")
        elif seg.startswith("{") and seg.endswith("}"):
            out.append("(?:" + "|".join(re.escape(a) for a in seg[1:-1].split(",")) + ")")
        else:
            out.append(re.escape(seg))
    return re.compile(r"\.".join(out))


def matches(name: str, patterns: Iterable[str]) -> bool:
    """True when the dotted ``name`` matches one of ``patterns`` (see the tables above)."""
    return any(_compile(p).fullmatch(name) for p in patterns)


def classify(name: str) -> str | None:
    """The kind of third-party call ``name`` is ("http", "email", "payment",
    "messaging"), or None when it is not one (or only constructs a client)."""
    if name.rsplit(".", 1)[-1][:1].isupper():
        return None
    for kind, patterns in KINDS:
        if matches(name, patterns):
            if kind == "payment" and matches(name, PAYMENT_LOCAL):
                return None
            return kind
    return None


# Clients whose calls wait indefinitely unless the call itself is given ``timeout=``
# (requests' and urllib.request.urlopen's documentation; urllib3 and http.client take
# it on the pool/connection instead, httpx and aiohttp have defaults).
_NO_DEFAULT_TIMEOUT = ("requests", "urllib")


class SyncThirdPartyCall(BaseCheck):
    rule_id = "SRC101"
    requires = ("source",)

    def run(self, facts: Facts, params: Mapping[str, Any]) -> Iterable[Finding | Inconclusive]:
        src: SourceFacts = facts.source
        max_depth = int(params.get("max_depth", DEFAULT_MAX_DEPTH))
        if src.files_scanned == 0:
            yield Inconclusive(_no_files(src))
            return
        if not src.handlers:
            yield Inconclusive(
                f"no request handlers found in {src.files_scanned} Python file(s) under {src.root} "
                "(recognised: Flask and FastAPI routes, Django urls.py and views.py); nothing to follow")
            return
        seen: set[str] = set()
        found = 0
        for handler in src.handlers:
            for finding in self._handler_findings(src, handler, max_depth):
                if finding.key not in seen:
                    seen.add(finding.key)
                    found += 1
                    yield finding
        if not found and src.parse_errors:
            first = "; ".join(f"{f}: {why}" for f, why in src.parse_errors[:3])
            more = f" and {len(src.parse_errors) - 3} more" if len(src.parse_errors) > 3 else ""
            yield Inconclusive(
                f"no synchronous third-party call found, but {len(src.parse_errors)} file(s) could not be "
                f"read or parsed ({first}{more}); fix them or exclude them from the source scan")

    def _handler_findings(self, src: SourceFacts, handler: Handler, max_depth: int) -> Iterable[Finding]:
        start = src.functions.get(handler.qualname)
        if start is None:
            return
        queue: deque[tuple[Function, tuple[str, ...]]] = deque([(start, (start.qualname,))])
        visited = {start.qualname}
        while queue:
            fn, chain = queue.popleft()
            depth = len(chain) - 1
            for call in fn.calls:
                if not call.resolved or _in_queued_lambda(call):
                    continue
                kind = classify(call.name)
                if kind is not None:
                    yield _finding(handler, fn, chain, call, kind)
                    continue
                if depth >= max_depth:
                    continue
                target = _project_function(call.name, src)
                if target is None or target.qualname in visited or _not_run_now(call, target):
                    continue
                visited.add(target.qualname)
                queue.append((target, chain + (target.qualname,)))


def _no_files(src: SourceFacts) -> str:
    why = []
    if src.parse_errors:
        why.append(f"{len(src.parse_errors)} could not be parsed")
    if src.skipped_large:
        why.append(f"{len(src.skipped_large)} were over the size limit")
    tail = f" ({', '.join(why)})" if why else ""
    return f"no Python file was scanned under {src.root}{tail}; point source: at the application's code"


def _in_queued_lambda(call: CallSite) -> bool:
    """The call sits in a lambda handed to a queue (``add_task(lambda: notify(x))``).

    The enqueue calls themselves need no test: their names (``shop.tasks.send.delay``,
    ``fastapi.BackgroundTasks.add_task``, Dramatiq's ``shop.tasks.actor.send``) are
    neither project functions nor in the third-party tables, and the function handed
    to them is an argument, not a call."""
    return call.deferred_by is not None and matches(call.deferred_by, ENQUEUE_CALLS)


def _project_function(name: str, src: SourceFacts) -> Function | None:
    fn = src.functions.get(name)
    if fn is None:  # a project class: its constructor runs
        fn = src.functions.get(f"{name}.__init__")
    return fn


def _not_run_now(call: CallSite, target: Function) -> bool:
    if any(matches(d, ENQUEUE_ON_CALL) for d in target.decorators):
        return True
    return (target.is_async and not call.awaited and call.within is not None
            and matches(call.within, DETACH_CALLS))


def _finding(handler: Handler, fn: Function, chain: tuple[str, ...], call: CallSite, kind: str) -> Finding:
    where = f"{fn.file}:{call.line}"
    route = " ".join(x for x in ("/".join(handler.methods) if handler.methods else "", handler.route or "") if x)
    label = f"{handler.qualname} ({route})" if route else handler.qualname
    via = f" via {' -> '.join(chain[1:])}" if len(chain) > 1 else ""
    awaited = "awaits" if call.awaited else "calls"
    fix = _FIX[kind].format(callee=call.name)
    if kind == "http" and "timeout" not in call.keywords and call.name.split(".")[0] in _NO_DEFAULT_TIMEOUT:
        fix += _NO_TIMEOUT.format(callee=call.name)
    if call.awaited:
        fix += _AWAITED
    return Finding(
        rule_id=SyncThirdPartyCall.rule_id,
        message=f"request handler {label} {awaited} {call.name} ({kind}) at {where}{via}",
        fix=fix,
        key=f"{handler.qualname}->{call.name}@{where}",
        location=where,
        evidence={
            "file": fn.file,
            "line": call.line,
            "handler": handler.qualname,
            "route": handler.route,
            "methods": list(handler.methods),
            "framework": handler.framework,
            "chain": list(chain),
            "callee": call.name,
            "kind": kind,
            "awaited": call.awaited,
            "code": call.text,
        },
    )
