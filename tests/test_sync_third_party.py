"""SRC101 sync-third-party-call on the sample apps of fixtures/sources (scanned by
the real source collector) and on small trees written by the tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from auditor import rules
from auditor.collectors.source import SourceCollector
from auditor.facts import Facts
from auditor.model import Finding, Inconclusive
from checks.sync_third_party import SyncThirdPartyCall, classify

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "fixtures" / "sources"
PARAMS = rules.load()["SRC101"].params


def audit(root: Path, **params) -> list:
    facts = SourceCollector(root).collect()
    return list(SyncThirdPartyCall().run(Facts(source=facts), {**PARAMS, **params}))


def line_of(path: Path, marker: str) -> int:
    """The 1-based line of the only line of ``path`` containing ``marker``."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    assert len(hits) == 1, (path, marker, hits)
    return hits[0]


def summary(results: list) -> set[tuple]:
    """(handler, callee, location, chain) of each finding."""
    assert all(isinstance(r, Finding) for r in results), results
    return {(f.evidence["handler"], f.evidence["callee"], f.location, tuple(f.evidence["chain"]))
            for f in results}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def test_rule_default_depth():
    assert dict(PARAMS) == {"max_depth": 3}


# -- synchronous calls are found, with the chain that reaches them -------------------------

def test_flask_sync():
    app = SOURCES / "flask_sync"
    notify = app / "shop/notify.py"
    results = audit(app)
    assert summary(results) == {
        ("app.create_order", "requests.post", f"shop/notify.py:{line_of(notify, 'http.post(')}",
         ("app.create_order", "shop.orders.place_order", "shop.notify.order_confirmation")),
        ("app.create_order", "smtplib.SMTP.send_message", f"shop/notify.py:{line_of(notify, 'send_message(')}",
         ("app.create_order", "shop.orders.place_order", "shop.notify.order_confirmation",
          "shop.notify.send_receipt")),
        ("shop.admin.refund_charge", "stripe.Refund.create",
         f"shop/payments.py:{line_of(app / 'shop/payments.py', 'Refund.create')}",
         ("shop.admin.refund_charge", "shop.payments.refund")),
    }
    # the webhook handler's stripe.Webhook.construct_event is a local signature check: not reported
    http = next(f for f in results if f.evidence["callee"] == "requests.post")
    assert http.key == f"app.create_order->requests.post@shop/notify.py:{line_of(notify, 'http.post(')}"
    assert http.evidence["route"] == "/orders" and http.evidence["framework"] == "flask"
    assert http.evidence["kind"] == "http" and http.evidence["code"] == "http.post(WAREHOUSE_URL, json=order)"
    assert http.message.startswith("request handler app.create_order (POST /orders) calls requests.post")
    assert "no timeout" in http.fix and "enqueue" in http.fix
    mail = next(f for f in results if f.evidence["kind"] == "email")
    assert "background job" in mail.fix
    pay = next(f for f in results if f.evidence["kind"] == "payment")
    assert "idempotency" in pay.fix


def test_flask_queued_is_a_pass():
    assert audit(SOURCES / "flask_queued") == []


def test_fastapi_sync():
    app = SOURCES / "fastapi_sync"
    results = audit(app)
    assert summary(results) == {
        ("api.orders.create_order", "httpx.AsyncClient.post",
         f"api/clients.py:{line_of(app / 'api/clients.py', 'self.http.post(')}",
         ("api.orders.create_order", "api.services.checkout", "api.clients.WarehouseClient.reserve")),
        ("api.orders.create_order", "twilio.rest.Client.messages.create",
         f"api/sms.py:{line_of(app / 'api/sms.py', 'messages.create(')}",
         ("api.orders.create_order", "api.services.checkout", "api.sms.send_sms")),
        ("api.orders.refund_order", "stripe.Refund.create",
         f"api/payments.py:{line_of(app / 'api/payments.py', 'Refund.create')}",
         ("api.orders.refund_order", "api.payments.refund")),
    }
    awaited = next(f for f in results if f.evidence["callee"] == "httpx.AsyncClient.post")
    assert awaited.evidence["awaited"] is True
    assert "awaits httpx.AsyncClient.post" in awaited.message
    assert "still waits" in awaited.fix
    sms = next(f for f in results if f.evidence["kind"] == "messaging")
    assert sms.evidence["route"] == "/orders" and sms.evidence["methods"] == ["POST"]


def test_fastapi_queued_is_a_pass():
    """add_task(func), add_task(lambda: ...), asyncio.create_task(coro()) and a Dramatiq send()."""
    assert audit(SOURCES / "fastapi_queued") == []


def test_django_sync():
    app = SOURCES / "django_sync"
    assert summary(audit(app)) == {
        ("shop.views.checkout", "django.core.mail.send_mail",
         f"shop/emails.py:{line_of(app / 'shop/emails.py', '    send_mail(')}",
         ("shop.views.checkout", "shop.services.complete_checkout", "shop.emails.send_receipt")),
        ("shop.views.CancelOrderView.post", "braintree.BraintreeGateway.transaction.void",
         f"shop/billing.py:{line_of(app / 'shop/billing.py', 'transaction.void(')}",
         ("shop.views.CancelOrderView.post", "shop.billing.void")),
        ("shop.views.order_status", "requests.get",
         f"shop/views.py:{line_of(app / 'shop/views.py', 'requests.get(')}",
         ("shop.views.order_status",)),
    }


def test_django_queued_is_a_pass():
    """Celery .delay() in transaction.on_commit(lambda), a Huey task called directly, django_rq.enqueue."""
    assert audit(SOURCES / "django_queued") == []


def test_the_demo_shop_checkout():
    """The bundled demo (fixtures/demo/app) is there to show this finding."""
    demo = ROOT / "fixtures" / "demo" / "app"
    results = audit(demo)
    assert {(f.evidence["handler"], f.evidence["callee"]) for f in results} == {
        ("app.create_app.<locals>.checkout", "httpx.post"),
        ("app.create_app.<locals>.checkout", "smtplib.SMTP.send_message"),
    }


# -- depth -------------------------------------------------------------------------------

@pytest.mark.parametrize("max_depth, callees", [
    (0, set()),
    (1, {"stripe.Refund.create"}),
    (2, {"stripe.Refund.create", "requests.post"}),
    (3, {"stripe.Refund.create", "requests.post", "smtplib.SMTP.send_message"}),
])
def test_max_depth_is_honoured(max_depth, callees):
    results = audit(SOURCES / "flask_sync", max_depth=max_depth)
    assert {f.evidence["callee"] for f in results} == callees
    for f in results:
        assert len(f.evidence["chain"]) - 1 <= max_depth


# -- what is and is not on the request path -------------------------------------------------

def test_work_handed_to_a_queue_runs_its_arguments_now(tmp_path):
    write(tmp_path, {"main.py": """
        from fastapi import BackgroundTasks, FastAPI
        import requests

        app = FastAPI()

        def fetch(url):
            return requests.get(url, timeout=2)

        def store(data):
            pass

        @app.post("/later")
        def later(tasks: BackgroundTasks):
            tasks.add_task(fetch, "https://a")
            tasks.add_task(lambda: fetch("https://b"))
            return {}

        @app.post("/now")
        def now(tasks: BackgroundTasks):
            tasks.add_task(store, fetch("https://c"))
            return {}
    """})
    results = audit(tmp_path)
    assert summary(results) == {
        ("main.now", "requests.get", f"main.py:{line_of(tmp_path / 'main.py', 'requests.get(')}",
         ("main.now", "main.fetch")),
    }
    assert "no timeout" not in results[0].fix  # this call has one


def test_one_finding_per_handler_and_call_site_with_the_shortest_chain(tmp_path):
    write(tmp_path, {"app.py": """
        from flask import Flask
        import requests

        app = Flask(__name__)

        def ping():
            requests.get("https://status")

        def a():
            b()
            ping()

        def b():
            ping()

        @app.route("/x")
        @app.route("/y")
        def x():
            a()
            ping()
            return ""
    """})
    results = audit(tmp_path)
    assert [tuple(f.evidence["chain"]) for f in results] == [("app.x", "app.ping")]
    assert results[0].evidence["route"] == "/x"


def test_a_cycle_in_the_project_calls_ends(tmp_path):
    write(tmp_path, {"app.py": """
        from flask import Flask
        import smtplib

        app = Flask(__name__)

        def a(n):
            return b(n - 1) if n else None

        def b(n):
            smtplib.SMTP("h").sendmail("f", "t", "m")
            return a(n)

        @app.get("/")
        def index():
            a(3)
    """})
    results = audit(tmp_path, max_depth=10)
    assert [(f.evidence["callee"], tuple(f.evidence["chain"])) for f in results] == [
        ("smtplib.SMTP.sendmail", ("app.index", "app.a", "app.b"))]


# -- not judged ------------------------------------------------------------------------------

def test_no_handlers_is_inconclusive(tmp_path):
    write(tmp_path, {"lib.py": "import requests\n\ndef f():\n    requests.get('u')\n"})
    (result,) = audit(tmp_path)
    assert isinstance(result, Inconclusive)
    assert "no request handlers found in 1 Python file" in result.reason


def test_no_python_files_is_inconclusive(tmp_path):
    (tmp_path / "broken.py").write_text("def (:\n")
    (result,) = audit(tmp_path)
    assert isinstance(result, Inconclusive)
    assert "no Python file was scanned" in result.reason and "1 could not be parsed" in result.reason


def test_unparsed_files_make_a_clean_result_inconclusive_but_do_not_hide_findings(tmp_path):
    write(tmp_path, {
        "app.py": """
            from flask import Flask
            import helpers
            app = Flask(__name__)

            @app.get("/")
            def index():
                return helpers.local()
        """,
        "helpers.py": "def local():\n    return 1\n",
        "legacy.py": "print 'python 2'\n",
    })
    (result,) = audit(tmp_path)
    assert isinstance(result, Inconclusive)
    assert "1 file(s) could not be read or parsed (legacy.py: syntax error" in result.reason

    (tmp_path / "helpers.py").write_text("import requests\n\ndef local():\n    return requests.get('u')\n")
    results = audit(tmp_path)
    assert [type(r) for r in results] == [Finding]


@pytest.mark.parametrize("name, kind", [
    ("requests.Session.get", "http"),
    ("urllib.request.urlopen", "http"),
    ("urllib3.PoolManager.request", "http"),
    ("http.client.HTTPSConnection.request", "http"),
    ("aiohttp.ClientSession.post", "http"),
    ("django.core.mail.EmailMessage.send", "email"),
    ("flask_mail.Mail.send", "email"),
    ("sendgrid.SendGridAPIClient.send", "email"),
    ("boto3.client.send_email", "email"),
    ("boto3.client.publish", "messaging"),
    ("slack_sdk.WebClient.chat_postMessage", "messaging"),
    ("stripe.PaymentIntent.create", "payment"),
    ("paypalrestsdk.Payment.create", "payment"),
    ("stripe.Webhook.construct_event", None),  # local signature check
    ("stripe.PaymentIntent", None),  # constructs an object
    ("braintree.Configuration.configure", None),
    ("boto3.client.send_message", None),  # SQS: a queue
    ("requests.get.json", None),
    ("myrequests.get", None),
])
def test_classification(name, kind):
    assert classify(name) == kind
