"""Every form field is checked before it reaches SQL: on PostgreSQL, bad text is a 4xx, never a 500.

PostgreSQL's text cannot hold NUL (psycopg refuses it with a DataError), so a NUL that reached
a query was a 500 with a trace (issue 8: `username=adm%00in` on the console's sign-in). Each
form and API is sent NUL, other C0 controls, DEL, over-long values and, where the encoding can
carry one (JSON), a lone surrogate, in each field that is looked up; each answer is the form's
ordinary 4xx (an HTML page for people, RFC 6749 §5.2 JSON for programs), none counts as a
failed sign-in, and no error is logged. URL-encoded forms cannot carry a surrogate at all:
invalid UTF-8 arrives as U+FFFD, which is checked too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.functional.harness import PASSWORD, Harness

pytestmark = pytest.mark.parametrize("backend", ["redis+postgres"], indirect=True)

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')
CONFIRM_RE = re.compile(r'name="confirm_token" value="([^"]*)"')
ADMIN, ADMIN_PASSWORD = "root-admin", "a long admin password"
TEXT_VALUES = {  # what a browser can send in a form
    "NUL": "adm\x00in",
    "C0 control": "adm\x01in",
    "DEL": "adm\x7fin",
    "line break": "adm\nin",
    "over-long": "a" * 5000,
}
JSON_VALUES = {**TEXT_VALUES, "lone surrogate": "adm\ud800in"}


@pytest.fixture
def settings() -> dict[str, Any]:
    return {"login_attempts": 3}  # so a malformed sign-in that counted would show


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, caplog.text


def csrf(http: FlaskClient, path: str) -> str:
    page = http.get(path)
    assert page.status_code == 200, page.text
    found = CSRF_RE.search(page.get_data(as_text=True))
    assert found
    return found.group(1)


def assert_html_4xx(response: TestResponse, label: str) -> str:
    assert 400 <= response.status_code < 500, (label, response.status_code, response.text)
    assert response.mimetype == "text/html", label
    return response.get_data(as_text=True)


def assert_json_4xx(response: TestResponse, label: str, error: str = "invalid_request") -> None:
    assert 400 <= response.status_code < 500, (label, response.status_code, response.text)
    assert response.get_json()["error"] == error, (label, response.get_json())


# --- The admin console ------------------------------------------------------------------------
def test_console_sign_in(harness: Harness) -> None:
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    http = harness.http.application.test_client()

    def sign_in(**fields: str) -> TestResponse:
        data = {"username": ADMIN, "password": ADMIN_PASSWORD, **fields}
        return http.post("/admin/login", data={**data, "csrf_token": csrf(http, "/admin/login")})

    for label, value in TEXT_VALUES.items():
        text = assert_html_4xx(sign_in(username=value), f"username {label}")
        assert "characters it cannot have" in text and "adm\x00in" not in text
    too_long = assert_html_4xx(sign_in(password="p" * 1025), "password over-long")
    assert "too long" in too_long
    # Controls are allowed in a password (it is only ever hashed): a wrong one, counted.
    assert sign_in(password="wrong\x00password").status_code == 401
    # Invalid UTF-8 (a surrogate's encoding) arrives as U+FFFD: an unknown admin.
    raw = f"username=%ED%A0%80&password=x&csrf_token={csrf(http, '/admin/login')}"
    answer = http.post("/admin/login", data=raw, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 401
    # Two failures counted (limit 3): the malformed ones were not, so the admin gets in.
    assert sign_in().status_code == 303


def test_console_forms_and_filters(harness: Harness) -> None:
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    http = harness.http.application.test_client()
    data = {"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf(http, "/admin/login")}
    assert http.post("/admin/login", data=data).status_code == 303
    token = csrf(http, "/admin/")
    for label, value in TEXT_VALUES.items():
        cancel = http.post("/admin/flows/cancel", data={"user_code": value, "csrf_token": token})
        assert_html_4xx(cancel, f"cancel {label}")
        assert_html_4xx(http.get("/admin/", query_string={"q": value}), f"search {label}")
        for name in ("user_id", "client_id", "session_id", "event", "actor_id"):
            found = http.get("/admin/audit", query_string={name: value})
            assert_html_4xx(found, f"audit {name} {label}")
        assert_html_4xx(http.get(f"/admin/users/{value}"), f"user page {label}")


# --- The verification page (/device) and the PC login page -----------------------------------
def test_device_sign_in_code_entry_and_decision(harness: Harness) -> None:
    started = harness.authorize()
    http = harness.http.application.test_client()

    def enter(**fields: str) -> TestResponse:
        data = {"user_code": started["user_code"], "username": harness.username}
        data |= {"password": PASSWORD, **fields}
        return http.post("/device", data={**data, "csrf_token": csrf(http, "/device")})

    for label, value in TEXT_VALUES.items():
        assert_html_4xx(enter(username=value), f"username {label}")
        assert_html_4xx(enter(user_code=value), f"user code {label}")
    assert "too long" in assert_html_4xx(enter(password="p" * 1025), "password over-long")
    assert enter(password="wrong\x00password").status_code == 401  # counted, like the app's
    assert enter(password="wrong\x01password").status_code == 401

    approval = enter()  # one right sign-in after two failures (limit 3): not locked out
    assert approval.status_code == 200, approval.text
    page = approval.get_data(as_text=True)
    token = CSRF_RE.search(page)
    assert token
    for label, value in TEXT_VALUES.items():
        decision = {"csrf_token": token.group(1), "decision": "approve"}
        decided = http.post(
            "/device/decision",
            data={**decision, "confirm_token": value, "user_code": started["user_code"]},
        )
        assert_html_4xx(decided, f"confirm token {label}")
    confirm = CONFIRM_RE.search(page)
    assert confirm
    done = http.post(
        "/device/decision",
        data={
            "csrf_token": token.group(1),
            "decision": "approve",
            "confirm_token": confirm.group(1),
            "user_code": started["user_code"],
        },
    )
    assert done.status_code == 200 and harness.poll(started["device_code"]).status_code == 200


def test_pages_query_values(harness: Harness) -> None:
    for label, value in TEXT_VALUES.items():
        assert_html_4xx(harness.http.get("/login", query_string={"client_id": value}), label)
        scoped = harness.http.get(
            "/login", query_string={"client_id": harness.client_id, "scope": value}
        )
        assert_html_4xx(scoped, f"scope {label}")
        # The code form shows itself, saying the link's code is not valid.
        page = harness.http.get("/device", query_string={"user_code": value})
        assert page.status_code == 200 and "not a valid code" in page.text, label


# --- JSON APIs: the admin API and the mobile app ----------------------------------------------
def test_admin_api_fields(harness: Harness) -> None:
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    http = harness.http
    for label, value in JSON_VALUES.items():
        signed = http.post("/admin/v1/auth/token", json={"username": value, "password": "x" * 12})
        assert_json_4xx(signed, f"sign-in username {label}")
    surrogate = {"username": ADMIN, "password": "adm\ud800in-password"}
    assert_json_4xx(http.post("/admin/v1/auth/token", json=surrogate), "password surrogate")

    body = {"username": ADMIN, "password": ADMIN_PASSWORD}
    signed_in = http.post("/admin/v1/auth/token", json=body)
    assert signed_in.status_code == 201, signed_in.text  # the malformed ones did not count
    auth = {"Authorization": f"Bearer {signed_in.get_json()['admin_token']}"}
    for label, value in JSON_VALUES.items():
        cancel = http.post("/admin/v1/flows/cancel", json={"user_code": value}, headers=auth)
        assert_json_4xx(cancel, f"cancel {label}")
        if "\ud800" in value:
            continue  # a URL carries no surrogate either (invalid UTF-8 is replaced)
        lookups: list[Callable[[], TestResponse]] = [
            lambda value=value: http.get(
                "/admin/v1/users", query_string={"q": value}, headers=auth
            ),
            lambda value=value: http.get(
                "/admin/v1/sessions", query_string={"user_id": value}, headers=auth
            ),
            lambda value=value: http.get(
                "/admin/v1/audit", query_string={"event": value}, headers=auth
            ),
        ]
        for lookup in lookups:
            assert_json_4xx(lookup(), f"lookup {label}")
        assert_json_4xx(http.get(f"/admin/v1/users/{value}", headers=auth), label, "not_found")


def test_mobile_api_fields(harness: Harness) -> None:
    started = harness.authorize()
    device = {"id": "phone-9", "name": "Phone", "platform": "ios"}
    for label, value in JSON_VALUES.items():
        for body in (
            {"username": value, "password": PASSWORD, "device": device},
            {"username": harness.username, "password": PASSWORD, "device": {**device, "id": value}},
            {
                "username": harness.username,
                "password": PASSWORD,
                "device": {**device, "name": value},
            },
        ):
            signed = harness.http.post("/mobile/v1/sessions", json=body)
            assert_json_4xx(signed, f"sign-in {label}")
    phone = harness.sign_in()  # none of that counted against the 3-attempt limit
    for label, value in JSON_VALUES.items():
        assert_json_4xx(harness.scan(phone, user_code=value), f"scan code {label}")
        assert_json_4xx(harness.decide(phone, value), f"confirm {label}")
    assert harness.scan(phone, qr=started["verification_uri_complete"]).status_code == 200
