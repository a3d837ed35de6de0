"""The source scanner on the sample apps in fixtures/sources and on small trees
written by the tests (for the cases a sample app should not carry: broken files,
size limits, excluded directories, resolution corner cases)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest

from auditor.collectors.source import SourceCollector
from auditor.errors import TargetUnreachable

SOURCES = Path(__file__).resolve().parent.parent / "fixtures" / "sources"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def line_of(path: Path, marker: str) -> int:
    """The 1-based line of the only line of ``path`` containing ``marker``."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    assert len(hits) == 1, (path, marker, hits)
    return hits[0]


def calls(facts, qualname: str) -> list[str]:
    return [c.name for c in facts.functions[qualname].calls if c.resolved]


def handlers(facts) -> dict[str, tuple]:
    return {h.qualname: (h.framework, h.route, h.methods, h.via) for h in facts.handlers}


# -- targets --------------------------------------------------------------------------

def test_missing_root_is_unreachable_with_what_to_do(tmp_path):
    col = SourceCollector(tmp_path / "nope")
    with pytest.raises(TargetUnreachable, match=r"nope does not exist; give the directory"):
        col.collect()


def test_root_that_is_a_file_is_unreachable(tmp_path):
    f = tmp_path / "app.py"
    f.write_text("x = 1\n")
    with pytest.raises(TargetUnreachable, match="not a directory"):
        SourceCollector(f).collect()


def test_describe_names_the_root_and_the_exclusions(tmp_path):
    text = SourceCollector(tmp_path, exclude=("build",)).describe()
    assert str(tmp_path) in text and "build" in text


# -- bounds and broken files -------------------------------------------------------------

def test_a_file_that_does_not_parse_is_skipped_and_counted(tmp_path):
    write(tmp_path, {
        "good.py": "import requests\n\ndef ping():\n    requests.get('https://x')\n",
        "broken.py": "def oops(:\n    pass\n",
        "latin.py": "# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n",
    })
    (tmp_path / "nul.py").write_bytes(b"x = 1\x00\n")
    facts = SourceCollector(tmp_path).collect()
    assert facts.files_scanned == 2  # good.py and latin.py
    errors = dict(facts.parse_errors)
    assert set(errors) == {"broken.py", "nul.py"}
    assert errors["broken.py"].startswith("syntax error at line 1")
    assert calls(facts, "good.ping") == ["requests.get"]


def test_files_over_the_size_limit_are_not_read_and_are_listed(tmp_path):
    write(tmp_path, {"small.py": "def f():\n    pass\n", "big.py": "x = 1\n" * 100})
    facts = SourceCollector(tmp_path, max_file_bytes=200).collect()
    assert facts.skipped_large == ("big.py",)
    assert facts.files_scanned == 1
    assert "small.f" in facts.functions


def test_excluded_directories_are_not_entered(tmp_path):
    write(tmp_path, {
        "app.py": "def f():\n    pass\n",
        "tests/test_app.py": "def test_f():\n    pass\n",
        ".venv/lib/site.py": "def g():\n    pass\n",
        "scripts/seed.py": "def seed():\n    pass\n",
        ".tox/py311/lib/x.py": "def x():\n    pass\n",
        "build/lib/app.py": "def f():\n    pass\n",
    })
    facts = SourceCollector(tmp_path).collect()
    assert set(facts.modules) == {"app", "seed"}  # scripts/ has no __init__.py
    facts = SourceCollector(tmp_path, exclude=("tests", ".venv", "scripts/*")).collect()
    assert set(facts.modules) == {"app", "x", "build.lib.app"}


def test_facts_serialise_to_json():
    facts = SourceCollector(SOURCES / "flask_sync").collect()
    data = json.loads(json.dumps(asdict(facts)))
    names = [c["name"] for c in data["functions"]["app.create_order"]["calls"]]
    assert names == ["shop.orders.place_order", "flask.request.get_json", "flask.jsonify"]
    assert data["handlers"][0]["qualname"] == "app.create_order"


# -- module names and name resolution ------------------------------------------------------

def test_module_names_follow_packages(tmp_path):
    write(tmp_path, {
        "manage.py": "",
        "shop/__init__.py": "",
        "shop/views.py": "",
        "backend/svc/__init__.py": "",
        "backend/svc/api.py": "",  # backend/ has no __init__.py: it is a sys.path entry
    })
    facts = SourceCollector(tmp_path).collect()
    assert facts.modules == {
        "manage": "manage.py", "shop": "shop/__init__.py", "shop.views": "shop/views.py",
        "svc": "backend/svc/__init__.py", "svc.api": "backend/svc/api.py",
    }


def test_when_two_files_claim_a_module_name_the_one_nearer_the_root_keeps_it(tmp_path):
    write(tmp_path, {
        "build/lib/shop/__init__.py": "",
        "build/lib/shop/views.py": "def old():\n    pass\n",
        "shop/__init__.py": "",
        "shop/views.py": "def new():\n    pass\n",
    })
    facts = SourceCollector(tmp_path, exclude=()).collect()
    assert facts.modules["shop.views"] == "shop/views.py"
    assert facts.modules["build.lib.shop.views"] == "build/lib/shop/views.py"
    assert {"shop.views.new", "build.lib.shop.views.old"} <= set(facts.functions)


def test_a_root_that_is_a_package_keeps_its_name(tmp_path):
    write(tmp_path, {"shop/__init__.py": "", "shop/billing.py": "def charge():\n    pass\n"})
    facts = SourceCollector(tmp_path / "shop").collect()
    assert "shop.billing.charge" in facts.functions


def test_imports_aliases_and_relative_imports_resolve(tmp_path):
    write(tmp_path, {
        "shop/__init__.py": "",
        "shop/billing.py": """
            def charge(amount):
                pass
        """,
        "shop/views.py": """
            import requests as r
            import urllib.request
            from stripe import Charge
            from .billing import charge
            from . import billing
            from .. import nothing_above_the_top

            def pay(amount):
                r.post("https://x", timeout=3)
                urllib.request.urlopen("https://x")
                Charge.create(amount=amount)
                charge(amount)
                billing.charge(amount)
                helper()

            def helper():
                import httpx
                httpx.get("https://y")
        """,
    })
    facts = SourceCollector(tmp_path).collect()
    assert calls(facts, "shop.views.pay") == [
        "requests.post", "urllib.request.urlopen", "stripe.Charge.create",
        "shop.billing.charge", "shop.billing.charge", "shop.views.helper",
    ]
    assert calls(facts, "shop.views.helper") == ["httpx.get"]
    first = facts.functions["shop.views.pay"].calls[0]
    assert (first.line, first.text) == (10, 'r.post("https://x", timeout=3)')


def test_objects_are_typed_by_their_constructor_annotation_and_attributes(tmp_path):
    write(tmp_path, {
        "ext.py": """
            from flask_mail import Mail
            mail = Mail()
        """,
        "svc.py": """
            import smtplib
            import boto3
            from fastapi import BackgroundTasks
            from ext import mail

            ses = boto3.client("ses")

            class Notifier:
                def __init__(self, host):
                    self.smtp = smtplib.SMTP(host)

                def send(self, msg):
                    self.smtp.send_message(msg)

            class Loud(Notifier):
                def shout(self, msg):
                    self.send(msg)

            def handler(tasks: BackgroundTasks, requests, msg):
                with smtplib.SMTP_SSL("h") as s:
                    s.sendmail("a", "b", msg)
                ses.send_email(Source="a")
                mail.send(msg)
                tasks.add_task(print)
                requests.get("shadowed by the parameter")
                smtplib.SMTP("h").quit()
        """,
    })
    facts = SourceCollector(tmp_path).collect()
    assert calls(facts, "svc.Notifier.send") == ["smtplib.SMTP.send_message"]
    assert calls(facts, "svc.Loud.shout") == ["svc.Notifier.send"]  # named after the defining class
    got = facts.functions["svc.handler"].calls
    assert [(c.name, c.resolved) for c in got] == [
        ("smtplib.SMTP_SSL", True), ("smtplib.SMTP_SSL.sendmail", True),
        ("boto3.client.send_email", True), ("flask_mail.Mail.send", True),
        ("fastapi.BackgroundTasks.add_task", True), ("requests.get", False),
        ("smtplib.SMTP.quit", True), ("smtplib.SMTP", True),
    ]


def test_await_lambda_and_argument_context_are_recorded(tmp_path):
    write(tmp_path, {"a.py": """
        import asyncio
        import httpx

        async def go(tasks):
            async with httpx.AsyncClient() as client:
                await client.get("u")
            tasks.add_task(lambda: notify("x"))
            asyncio.create_task(notify("y"))

        async def notify(x):
            pass
    """})
    facts = SourceCollector(tmp_path).collect()
    by_line = {(c.name, c.line): c for c in facts.functions["a.go"].calls}
    assert by_line[("httpx.AsyncClient", 6)].awaited
    assert by_line[("httpx.AsyncClient.get", 7)].awaited
    lam = by_line[("a.notify", 8)]
    assert (lam.deferred_by, lam.awaited) == ("tasks.add_task", False)
    task = by_line[("a.notify", 9)]
    assert (task.within, task.deferred_by) == ("asyncio.create_task", None)
    assert facts.functions["a.notify"].is_async


# -- handlers -----------------------------------------------------------------------------

def test_flask_routes_blueprints_and_add_url_rule(tmp_path):
    facts = SourceCollector(SOURCES / "flask_sync").collect()
    assert handlers(facts) == {
        "app.create_order": ("flask", "/orders", ("POST",), "decorator"),
        "app.show_order": ("flask", "/orders/<int:order_id>", ("GET",), "decorator"),
        "app.health": ("flask", "/health", ("GET",), "decorator"),
        "shop.admin.refund_charge": ("flask", "/admin/refunds/<charge_id>", ("POST",), "decorator"),
        "shop.admin.stripe_webhook": ("flask", "/admin/stripe-webhook", ("POST",), "decorator"),
    }
    h = next(h for h in facts.handlers if h.qualname == "app.create_order")
    assert (h.file, h.line) == ("app.py", line_of(SOURCES / "flask_sync/app.py", "def create_order("))
    assert facts.frameworks == ("flask",)

    write(tmp_path, {"site.py": """
        from flask import Flask
        from flask.views import MethodView

        app = Flask(__name__)

        def index():
            return "hi"

        class Orders(MethodView):
            def get(self):
                pass
            def post(self):
                pass
            def _helper(self):
                pass

        app.add_url_rule("/", "index", index)
        app.add_url_rule("/orders", view_func=Orders.as_view("orders"))
    """})
    assert handlers(SourceCollector(tmp_path).collect()) == {
        "site.index": ("flask", "/", (), "add_url_rule"),
        "site.Orders.get": ("flask", "/orders", ("GET",), "add_url_rule"),
        "site.Orders.post": ("flask", "/orders", ("POST",), "add_url_rule"),
    }


def test_flask_app_and_blueprint_objects_imported_from_another_module(tmp_path):
    write(tmp_path, {
        "app/__init__.py": """
            from flask import Flask
            app = Flask(__name__)
            from app import routes
        """,
        "app/routes.py": """
            from app import app

            @app.route("/index")
            def index():
                return "hi"
        """,
        "app/main/__init__.py": """
            from flask import Blueprint
            bp = Blueprint("main", __name__, url_prefix="/main")
        """,
        "app/main/routes.py": """
            from app.main import bp

            @bp.route("/explore", methods=["GET", "POST"])
            def explore():
                return "x"
        """,
    })
    assert handlers(SourceCollector(tmp_path).collect()) == {
        "app.routes.index": ("flask", "/index", ("GET",), "decorator"),
        "app.main.routes.explore": ("flask", "/main/explore", ("GET", "POST"), "decorator"),
    }


def test_a_flask_factory_app_like_the_demo(tmp_path):
    """fixtures/demo/app/app.py's shape: handlers nested in create_app(), sibling modules."""
    write(tmp_path, {
        "app/app.py": """
            from flask import Flask, jsonify
            import payments

            def create_app() -> Flask:
                app = Flask("demo_shop")

                @app.get("/")
                def home():
                    return "hi"

                @app.post("/checkout")
                def checkout():
                    return jsonify({"charge": payments.charge(1, 100)})

                return app
        """,
        "app/payments.py": """
            import httpx

            def charge(customer_id, cents):
                return httpx.post("https://pay", json={}).json()["id"]
        """,
    })
    facts = SourceCollector(tmp_path / "app").collect()
    assert handlers(facts) == {
        "app.create_app.<locals>.home": ("flask", "/", ("GET",), "decorator"),
        "app.create_app.<locals>.checkout": ("flask", "/checkout", ("POST",), "decorator"),
    }
    assert calls(facts, "app.create_app.<locals>.checkout") == ["flask.jsonify", "payments.charge"]
    # scanned from one level up, app/ (no __init__.py) is still a sys.path entry
    assert "app.create_app.<locals>.checkout" in SourceCollector(tmp_path).collect().functions


def test_fastapi_routes_with_router_prefix_and_add_api_route():
    facts = SourceCollector(SOURCES / "fastapi_sync").collect()
    assert handlers(facts) == {
        "main.health": ("fastapi", "/health", ("GET",), "decorator"),
        "api.orders.create_order": ("fastapi", "/orders", ("POST",), "decorator"),
        "api.orders.refund_order": ("fastapi", "/orders/{order_id}/refund", ("POST",), "decorator"),
    }


def test_app_of_unknown_type_counts_when_the_module_imports_one_framework(tmp_path):
    write(tmp_path, {
        "factory.py": "from fastapi import FastAPI\n\ndef make():\n    return FastAPI()\n",
        "main.py": """
            from fastapi import Depends
            from factory import make
            import cache

            app = make()

            @app.get("/items")
            def items():
                pass

            @app.get("not-a-path")
            def not_a_route():
                pass

            @cache.memoize("/tmp/x")
            def memoized():
                pass
        """,
        "cache.py": "def memoize(path):\n    return lambda f: f\n",
    })
    facts = SourceCollector(tmp_path).collect()
    assert handlers(facts) == {"main.items": ("fastapi", "/items", ("GET",), "decorator")}


def test_django_urls_class_based_views_and_the_views_fallback():
    facts = SourceCollector(SOURCES / "django_sync").collect()
    assert handlers(facts) == {
        "shop.views.checkout": ("django", "/shop/checkout/", ("POST",), "urls.py"),
        "shop.views.CancelOrderView.post":
            ("django", "/shop/orders/(?P<pk>[0-9]+)/cancel/$", ("POST",), "urls.py"),
        "shop.views.order_status": ("django", None, (), "views.py"),
    }
    h = next(h for h in facts.handlers if h.qualname == "shop.views.CancelOrderView.post")
    assert (h.file, h.line) == ("shop/views.py", line_of(SOURCES / "django_sync/shop/views.py", "def post("))


def test_django_rest_framework_viewsets_and_wrapped_views(tmp_path):
    write(tmp_path, {
        "api/__init__.py": "",
        "api/views.py": """
            from django.contrib.auth.decorators import login_required
            from django.views.generic import CreateView
            from rest_framework import viewsets
            from rest_framework.decorators import action, api_view

            class OrderViewSet(viewsets.ModelViewSet):
                def perform_create(self, serializer):
                    pass

                @action(detail=True, methods=["post"])
                def refund(self, request, pk=None):
                    pass

                def _private(self):
                    pass

            class Base(CreateView):
                def form_valid(self, form):
                    pass

            class SignupView(Base):
                pass

            @api_view(["GET", "POST"])
            def ping(request):
                pass

            def helper(x):
                pass
        """,
        "api/urls.py": """
            from django.contrib.auth.decorators import login_required
            from django.urls import path
            from rest_framework.routers import DefaultRouter
            from . import views

            router = DefaultRouter()
            router.register(r"orders", views.OrderViewSet)

            urlpatterns = [
                path("signup/", login_required(views.SignupView.as_view())),
                path("ping/", views.ping),
            ]
        """,
    })
    assert handlers(SourceCollector(tmp_path).collect()) == {
        "api.views.OrderViewSet.perform_create": ("django", "orders", ("POST",), "router.register"),
        "api.views.OrderViewSet.refund": ("django", "orders", (), "router.register"),
        "api.views.Base.form_valid": ("django", "/signup/", ("POST",), "urls.py"),
        "api.views.ping": ("django", "/ping/", ("GET", "POST"), "urls.py"),
    }
