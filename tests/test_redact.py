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


def test_placeholders_after_secret_names_are_kept():
    # a parameter is no value: the statement stays readable (its value is masked by
    # auditor.redact_sql, which knows which column it goes with)
    for text in ("UPDATE accounts SET api_token = $1 WHERE id = $2",
                 "`SELECT id FROM users WHERE reset_token = $1` ran 6 times",
                 "SELECT 1 FROM u WHERE password = ? OR token = %s"):
        assert redact(text) == text


def test_nested_structures_are_redacted():
    obj = {"evidence": [{"dsn": "redis://:r3dis-pw@h:6379/0"}, ("x", "password=abc123")]}
    flat = repr(redact_obj(obj))
    assert "r3dis-pw" not in flat and "abc123" not in flat


# -- values bound to secret-named columns (auditor.redact_sql) --------------------------
# Hand-written statements: what the masking must do with each SQL shape. The end-to-end
# proof on a real log is tests/test_secret_examples.py.
from auditor.redact_sql import is_secret_name, mask_examples, mask_statement  # noqa: E402


@pytest.mark.parametrize("sql, params, query, masked_params", [
    # INSERT column list with VALUES, by position (several rows, inline and bound)
    ("INSERT INTO users (email, password) VALUES ('a@b.c', 'hunter2'), ('d@e.f', 'pw2')", (),
     "INSERT INTO users (email, password) VALUES ('a@b.c', '***'), ('d@e.f', '***')", ()),
    ("INSERT INTO users (email, password) VALUES ($1, $2)", ("a@b.c", "hunter2"),
     "INSERT INTO users (email, password) VALUES ($1, $2)", ("a@b.c", "***")),
    ("INSERT INTO users (email, password) SELECT 'a@b.c', 'hunter2'", (),
     "INSERT INTO users (email, password) SELECT 'a@b.c', '***'", ()),
    # UPDATE SET, ON CONFLICT DO UPDATE SET, a function around the value
    ("UPDATE accounts SET api_token = $1 WHERE id = $2", ("abc123", "7"),
     "UPDATE accounts SET api_token = $1 WHERE id = $2", ("***", "7")),
    ("UPDATE users SET password = crypt($1, gen_salt('bf')), name = $2 WHERE id = $3",
     ("pw", "Bob", "3"),
     "UPDATE users SET password = crypt($1, gen_salt('***')), name = $2 WHERE id = $3",
     ("***", "Bob", "3")),
    ("INSERT INTO s (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET session_key = $3",
     ("k", "v", "sk-9"),
     "INSERT INTO s (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET session_key = $3",
     ("k", "v", "***")),
    # WHERE / ON comparisons: =, IN, LIKE, quoted names, a qualified column
    ("SELECT id FROM users WHERE reset_token = 'xyz' AND email = 'e@x.y'", (),
     "SELECT id FROM users WHERE reset_token = '***' AND email = 'e@x.y'", ()),
    ("SELECT 1 FROM users u JOIN s ON s.session_key = 'k1' AND s.uid = u.id", (),
     "SELECT 1 FROM users u JOIN s ON s.session_key = '***' AND s.uid = u.id", ()),
    ("SELECT 1 FROM t WHERE \"ApiKey\" IN ('a1', 'b2') OR name LIKE 'bob%'", (),
     "SELECT 1 FROM t WHERE \"ApiKey\" IN ('***', '***') OR name LIKE 'bob%'", ()),
    ("SELECT 1 FROM t WHERE t.pin = 1234 AND n < 5", (),
     "SELECT 1 FROM t WHERE t.pin = *** AND n < 5", ()),
    # a JSON key, an alias, key/value shapes
    ("SELECT * FROM u WHERE data->>'password' = 'zz' AND x = 1", (),
     "SELECT * FROM u WHERE data->>'password' = '***' AND x = 1", ()),
    ("SELECT 'x1' AS client_secret, 'y' AS name", (),
     "SELECT '***' AS client_secret, 'y' AS name", ()),
    ("SELECT set_config('app.api_token', 'zz9', false)", (),
     "SELECT set_config('app.api_token', '***', false)", ()),
    ("UPDATE settings SET value = $1 WHERE key = 'api_token'", ("v1",),
     "UPDATE settings SET value = $1 WHERE key = 'api_token'", ("***",)),
    # unparseable (cut short in the log) and bare-command statements: every value masked
    ("INSERT INTO users (email, password) VALUES ('a@b.c', 'hunt", (),
     "INSERT INTO users (email, password) VALUES ('***', '***'", ()),
    ("ALTER ROLE app PASSWORD 'pw12'", (), "ALTER ROLE app PASSWORD '***'", ()),
    # nothing secret-named: left alone (and not parsed)
    ("SELECT id, token_count FROM orders WHERE customer_id = 42 AND note = 'password reset'",
     ("1",),
     "SELECT id, token_count FROM orders WHERE customer_id = 42 AND note = 'password reset'",
     ("1",)),
    ("UPDATE users SET password_changed_at = $1 WHERE author_id = $2", ("2024-01-01", "9"),
     "UPDATE users SET password_changed_at = $1 WHERE author_id = $2", ("2024-01-01", "9")),
])
def test_values_bound_to_secret_names_are_masked(sql, params, query, masked_params):
    m = mask_statement(sql, params)
    assert (m.query, m.params) == (query, masked_params)


@pytest.mark.parametrize("name, secret", [
    ("password", True), ("user_pass", True), ("passwordHash", True), ("x_api_key", True),
    ("APIKey", True), ("clientsecret", True), ("reset_token", True), ("session_id", True),
    ("card_number", True), ("ssn", True), ("otp", True), ("app.api_token", True),
    ("token_count", False), ("password_changed_at", False), ("token_type", False),
    ("author_id", False), ("pinned", False), ("email", False), ("passenger", False),
])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_masked_values_are_masked_wherever_a_finding_quotes_them():
    finding = {"message": "`SELECT 1 FROM u WHERE token = $1` ran 5 times ($1 = 'tok-77')",
               "fix": "see tok-77", "key": "k",
               "evidence": {"example": {"query": "SELECT 1 FROM u WHERE token = $1",
                                        "params": ["tok-77"]},
                            "other": ["tok-77 again", "tok-7"]}}
    out = mask_examples(finding)
    assert "tok-77" not in repr(out)
    assert out["evidence"]["example"]["params"] == ["***"]
    assert out["evidence"]["other"][1] == "tok-7"  # another value entirely
    assert finding["evidence"]["example"]["params"] == ["tok-77"]  # the input is unchanged
