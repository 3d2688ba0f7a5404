"""A dependency that is down answers 503 with Retry-After, never a 500, and recovers by itself.

The faults are real: the SQL engine's new connections go to a closed port (PostgreSQL) or to
a file that cannot be opened (SQLite), and the Redis client's connections go to a closed
port; the drivers raise their own exceptions, which storage/failures.py classifies. The API
answers RFC 6749 §5.2 JSON `temporarily_unavailable` with `Retry-After` and
`Cache-Control: no-store`; the pages for people and the admin console answer an HTML
"try again in a moment" page with the same Retry-After. The log gets one warning line per
failure with the exception's class, no stack trace. When the fault ends, the same requests
work again without a restart.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.functional.faults import redis_down, sql_down
from tests.functional.harness import PASSWORD, Harness

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')
ADMIN, ADMIN_PASSWORD = "ops-admin", "a long admin password"
# What must never reach a client: driver, library and exception names, the fault's address.
INTERNALS = ("psycopg", "sqlite", "sqlalchemy", "redis", "OperationalError", "Traceback")


def assert_unavailable_json(response: TestResponse) -> None:
    """RFC 6749 §5.2 temporarily_unavailable, 503, Retry-After, no-store, nothing internal."""
    text = response.get_data(as_text=True)
    assert response.status_code == 503, text
    assert response.mimetype == "application/json", text
    body = response.get_json()
    assert body["error"] == "temporarily_unavailable", text
    assert set(body) == {"error", "error_description"}, text
    assert response.headers["Cache-Control"] == "no-store"
    assert int(response.headers["Retry-After"]) >= 1
    assert not any(word.lower() in text.lower() for word in INTERNALS), text


def assert_unavailable_page(response: TestResponse) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == 503, text
    assert response.mimetype == "text/html", text
    assert "Try again in a moment" in text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in response.headers
    assert not any(word.lower() in text.lower() for word in INTERNALS), text


def assert_logged_as_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """One warning line per failure, naming the exception; no trace, no error records."""
    warnings = [r for r in caplog.records if "dependency is unavailable" in r.getMessage()]
    assert warnings, caplog.text
    for record in warnings:
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert "Error" in record.getMessage()  # the exception's class, for the operator
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def sign_in_body(harness: Harness) -> dict[str, Any]:
    return {
        "username": harness.username,
        "password": PASSWORD,
        "device": {"id": "phone-1", "name": "Test phone", "platform": "ios"},
    }


def device_sign_in(http: FlaskClient, harness: Harness, code: str) -> TestResponse:
    """The verification page's sign-in form, as a browser sends it."""
    form = http.get("/device")
    assert form.status_code == 200
    csrf = CSRF_RE.search(form.get_data(as_text=True))
    assert csrf
    return http.post(
        "/device",
        data={
            "csrf_token": csrf.group(1),
            "user_code": code,
            "username": harness.username,
            "password": PASSWORD,
        },
    )


def console_sign_in(http: FlaskClient) -> TestResponse:
    form = http.get("/admin/login")
    assert form.status_code == 200
    csrf = CSRF_RE.search(form.get_data(as_text=True))
    assert csrf
    return http.post(
        "/admin/login",
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf.group(1)},
    )


# --- The database ----------------------------------------------------------------------------
def test_database_down_is_503_on_the_api_and_it_recovers(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    http = harness.http
    requests = {
        "device authorization": lambda: http.post(
            "/oauth/device_authorization", data={"client_id": harness.client_id}
        ),
        "phone sign-in": lambda: http.post("/mobile/v1/sessions", json=sign_in_body(harness)),
        "admin sign-in": lambda: http.post(
            "/admin/v1/auth/token", json={"username": ADMIN, "password": ADMIN_PASSWORD}
        ),
    }
    with caplog.at_level(logging.WARNING), sql_down(harness.services):
        for name, send in requests.items():
            response = send()
            assert response.status_code == 503, name
            assert_unavailable_json(response)
    assert_logged_as_warnings(caplog)

    # No restart: the same requests work once the database is back.
    assert requests["device authorization"]().status_code == 200
    assert requests["phone sign-in"]().status_code == 201
    assert requests["admin sign-in"]().status_code == 201


def test_database_down_is_a_try_again_page_for_people(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    started = harness.authorize()
    browser = harness.http.application.test_client()
    console = harness.http.application.test_client()
    assert console_sign_in(console).status_code == 303  # a live console session
    # A client this process has not read yet: a client it has read is served from its short
    # cache (services/clients.py), so its login page keeps rendering through a blip.
    unseen, _ = harness.create_client(confidential=False)

    with caplog.at_level(logging.WARNING), sql_down(harness.services):
        assert_unavailable_page(harness.http.get(f"/login?client_id={unseen}"))
        assert_unavailable_page(device_sign_in(browser, harness, started["user_code"]))
        assert_unavailable_page(console.get("/admin/"))  # the session is read from SQL
        assert_unavailable_page(console_sign_in(harness.http.application.test_client()))
    assert_logged_as_warnings(caplog)

    assert harness.http.get(f"/login?client_id={harness.client_id}").status_code == 200
    assert device_sign_in(browser, harness, started["user_code"]).status_code == 200
    assert console.get("/admin/").status_code == 200


# --- Redis -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["redis+postgres"], indirect=True)
def test_redis_down_is_503_on_the_api_and_it_recovers(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    started = harness.authorize()
    code = started["device_code"]
    with caplog.at_level(logging.WARNING), redis_down(harness.services):
        assert_unavailable_json(harness.poll(code))  # the pending poll: its one Redis call
        assert_unavailable_json(harness.status(code))
        assert_unavailable_json(
            harness.http.post("/oauth/device_authorization", data={"client_id": harness.client_id})
        )
    assert_logged_as_warnings(caplog)

    # The flow was not lost or stranded: it goes on once Redis answers.
    assert harness.poll(code).get_json()["error"] == "authorization_pending"
    harness.approve(started)
    issued = harness.poll(code)
    assert issued.status_code == 200, issued.get_json()


@pytest.mark.parametrize("backend", ["redis+postgres"], indirect=True)
def test_redis_down_is_a_try_again_page_on_the_verification_page(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    started = harness.authorize()
    browser = harness.http.application.test_client()
    with caplog.at_level(logging.WARNING), redis_down(harness.services):
        assert_unavailable_page(device_sign_in(browser, harness, started["user_code"]))
    assert_logged_as_warnings(caplog)
    approval = device_sign_in(browser, harness, started["user_code"])
    assert approval.status_code == 200 and "Approve" in approval.get_data(as_text=True)


def test_a_real_bug_is_still_a_500_with_its_trace_logged(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only dependency failures are 503s: a bug stays a 500 server_error, logged in full."""

    def bug(*_: object, **__: object) -> None:
        raise sa.exc.IntegrityError("INSERT ...", None, Exception("duplicate key"))

    monkeypatch.setattr(harness.services.device_grant, "start", bug)
    response = harness.http.post(
        "/oauth/device_authorization", data={"client_id": harness.client_id}
    )
    assert response.status_code == 500 and response.get_json()["error"] == "server_error"
    assert "Retry-After" not in response.headers
    assert any(r.exc_info for r in caplog.records if r.levelno >= logging.ERROR)
