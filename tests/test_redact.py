"""What auditor.redact masks (every reporter and error message goes through it)."""

from __future__ import annotations

import pytest

from auditor.redact import redact, redact_obj, register_secret


@pytest.mark.parametrize("text, secret", [
    ("postgresql://app:hunter2@db:5432/app", "hunter2"),
    ("host=db sslpassword=qq11zz dbname=app", "qq11zz"),
    ("https://api.example.com/x?access_token=abc123def&page=2", "abc123def"),
    ("client_secret: zzz999yyy", "zzz999yyy"),
    ("ALTER ROLE app WITH PASSWORD 'Tr0ub4dor&3'", "Tr0ub4dor&3"),
    ("UPDATE users SET password_hash = '$2b$12$KIXQJQ1bN6Lq0k5bYkY1Oe9uDk2uH0m7k0m0cQ0a1b2c3d4e5f6g7'",
     "KIXQJQ1bN6Lq0k5bYkY1Oe9uDk2uH0m7k0m0cQ0a1b2c3d4e5f6g7"),
    ("params: ['sk_live_51H8abcdefGHIJKLmnop', '42']", "sk_live_51H8abcdefGHIJKLmnop"),
    ("Authorization: ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123"),
    ("aws key AKIAABCDEFGHIJKLMNOP in a literal", "AKIAABCDEFGHIJKLMNOP"),
])
def test_known_secret_shapes_are_masked(text, secret):
    assert secret not in redact(text)
    assert "***" in redact(text)


def test_registered_secret_with_url_special_characters_is_masked_whole():
    register_secret("p@ss:w0rd/x")
    out = redact("cannot connect to postgresql://u:p@ss:w0rd/x@h:5432/db")
    assert "p@ss" not in out and "w0rd" not in out


def test_ordinary_text_is_left_alone():
    text = "SELECT id, token_count FROM orders WHERE customer_id = 42 AND note = 'password reset'"
    assert redact(text) == text


def test_nested_structures_are_redacted():
    obj = {"evidence": [{"dsn": "redis://:r3dis-pw@h:6379/0"}, ("x", "password=abc123")]}
    flat = repr(redact_obj(obj))
    assert "r3dis-pw" not in flat and "abc123" not in flat
