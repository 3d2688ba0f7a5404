"""Bad input gets a clear error in the RFC's format and changes nothing.

Every error is checked for the RFC 6749 §5.2 shape (a JSON object with `error` and at most
`error_description`/`error_uri`, in the §5.2 character set) and its status code; errors of the
OAuth and mobile endpoints also carry `Cache-Control: no-store`. After bad requests the flow is
shown to be where it was: the owner's next poll is still the never-throttled first one, the
status channel reads the same, and the right code or token still works.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from freezegun import freeze_time
from werkzeug.test import TestResponse

from authserver import app as app_module
from authserver.oauth.metadata import DEVICE_CODE_GRANT
from tests.functional.harness import ISSUER, PASSWORD, Harness, Phone, basic

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# RFC 6749 §5.2: error and error_description use %x20-21 / %x23-5B / %x5D-7E only.
RFC6749_CHARS = {chr(c) for c in range(0x20, 0x7F)} - {'"', "\\"}
# 600 s into a 900 s fixed rate-limit window (12:00-12:15): Retry-After is exactly 300 on both
# limiters, and a flow started now outlives the window (device codes last 600 s).
FROZEN = "2026-01-01 12:10:00"


@pytest.fixture
def settings() -> dict[str, Any]:
    """Small limits, so the rate-limit tests need few attempts."""
    return {"user_code_attempts": 3, "user_code_attempts_per_ip": 100, "login_attempts": 3}


# --- Helpers ---------------------------------------------------------------------------------
def assert_error(response: TestResponse, status: int, error: str, *, no_store: bool = True) -> str:
    """The RFC 6749 §5.2 error shape; returns the error_description ("" if none)."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == JSON, text
    body = response.get_json()
    assert isinstance(body, dict), text
    assert body.get("error") == error, text
    assert set(body) <= {"error", "error_description", "error_uri"}, text
    description = body.get("error_description", "")
    assert isinstance(description, str) and set(description) <= RFC6749_CHARS, text
    if no_store:
        assert response.headers.get("Cache-Control") == "no-store", response.headers
    return description


def assert_invalid_client(response: TestResponse) -> None:
    """RFC 6749 §5.2 invalid_client: 401 with a WWW-Authenticate challenge."""
    assert_error(response, 401, "invalid_client")
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Basic ") and 'error="invalid_client"' in challenge, challenge


def assert_invalid_token(response: TestResponse) -> None:
    """RFC 6750 §3.1 invalid_token: 401 with a Bearer challenge."""
    assert_error(response, 401, "invalid_token")
    challenge = response.headers.get("WWW-Authenticate", "")
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, challenge


def assert_untouched(harness: Harness, device_code: str, status: str = "pending") -> None:
    """The flow reads as before, and the owner's next poll is the first one (never throttled).

    A bad poll that had counted as a poll would make this one slow_down; the immediate second
    poll shows the first one did count.
    """
    assert harness.status(device_code).get_json()["status"] == status
    assert_error(harness.poll(device_code), 400, "authorization_pending")
    assert_error(harness.poll(device_code), 400, "slow_down")


def form(
    harness: Harness,
    path: str,
    body: dict[str, str] | list[tuple[str, str]] | str,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> TestResponse:
    """POST an application/x-www-form-urlencoded body exactly as given (repeats included)."""
    raw = body if isinstance(body, str) else urlencode(body)
    return harness.http.post(
        path, data=raw, content_type=FORM, headers=headers or {}, query_string=query
    )


def device_poll(device_code: str, client_id: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": DEVICE_CODE_GRANT,
        "device_code": device_code,
        "client_id": client_id,
        **extra,
    }


def sign_in_body(
    username: str, password: str = PASSWORD, device_id: str = "phone-1"
) -> dict[str, Any]:
    return {
        "username": username,
        "password": password,
        "device": {"id": device_id, "name": "Test phone", "platform": "ios"},
    }


def approved_tokens(harness: Harness, **params: str) -> dict[str, Any]:
    started = harness.authorize(**params)
    harness.approve(started)
    issued = harness.poll(started["device_code"])
    assert issued.status_code == 200, issued.get_json()
    return dict(issued.get_json())


# --- OAuth endpoints: encoding and parameters ------------------------------------------------
def test_form_endpoints_refuse_other_encodings_and_the_flow_is_untouched(harness: Harness) -> None:
    started = harness.authorize()
    code = started["device_code"]
    valid = {
        "/oauth/device_authorization": {"client_id": harness.client_id},
        "/oauth/token": device_poll(code, harness.client_id),
        "/oauth/device_status": {"device_code": code, "client_id": harness.client_id},
    }
    for path, params in valid.items():
        attempts: dict[str, dict[str, Any]] = {
            "json object": {"json": params},
            "json array": {"data": json.dumps([params]), "content_type": JSON},
            "invalid json": {"data": "{" + urlencode(params), "content_type": JSON},
            "text/plain": {"data": urlencode(params), "content_type": "text/plain"},
            "multipart": {"data": params, "content_type": "multipart/form-data"},
        }
        for label, kwargs in attempts.items():
            response = harness.http.post(path, **kwargs)
            description = assert_error(response, 400, "invalid_request")
            assert "x-www-form-urlencoded" in description, (path, label)
    assert_untouched(harness, code)


def test_missing_and_unknown_parameters(harness: Harness) -> None:
    started = harness.authorize()
    code, cid = started["device_code"], harness.client_id

    # An empty body: who is asking is the first question, then what is asked.
    assert_invalid_client(form(harness, "/oauth/device_authorization", ""))
    assert_invalid_client(form(harness, "/oauth/device_status", ""))
    assert "grant_type" in assert_error(form(harness, "/oauth/token", ""), 400, "invalid_request")

    # Missing client_id: no client authentication at all (RFC 6749 §5.2 invalid_client).
    assert_invalid_client(form(harness, "/oauth/device_authorization", {"scope": "profile"}))
    no_client = {"grant_type": DEVICE_CODE_GRANT, "device_code": code}
    assert_invalid_client(form(harness, "/oauth/token", no_client))

    # Missing grant_type is invalid_request; an unknown one is unsupported_grant_type.
    for grant in ({}, {"grant_type": ""}):
        body = {"device_code": code, "client_id": cid, **grant}
        description = assert_error(form(harness, "/oauth/token", body), 400, "invalid_request")
        assert "grant_type" in description

    for grant_type in (
        "authorization_code",
        "password",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        DEVICE_CODE_GRANT.upper(),
        DEVICE_CODE_GRANT + " ",
        "x" * 5000,
    ):
        body = device_poll(code, cid, grant_type=grant_type)
        assert_error(form(harness, "/oauth/token", body), 400, "unsupported_grant_type")
    # Checked before the client: an unknown client with an unknown grant learns only that.
    body = device_poll(code, "nobody", grant_type="password")
    assert_error(form(harness, "/oauth/token", body), 400, "unsupported_grant_type")

    # Each grant's own required parameter.
    for body in ({"grant_type": DEVICE_CODE_GRANT, "client_id": cid}, device_poll("", cid)):
        description = assert_error(form(harness, "/oauth/token", body), 400, "invalid_request")
        assert "device_code" in description
    refresh = {"grant_type": "refresh_token", "client_id": cid}
    description = assert_error(form(harness, "/oauth/token", refresh), 400, "invalid_request")
    assert "refresh_token" in description

    # The status channel: its device code, and a `wait` that is a number.
    no_code = form(harness, "/oauth/device_status", {"client_id": cid})
    assert "device_code" in assert_error(no_code, 400, "invalid_request")
    for wait in ("soon", "5s", "0x10"):
        body = {"device_code": code, "client_id": cid, "wait": wait}
        description = assert_error(
            form(harness, "/oauth/device_status", body), 400, "invalid_request"
        )
        assert "wait" in description
    assert_untouched(harness, code)


def test_repeated_parameters_and_secrets_in_the_url_are_invalid_request(harness: Harness) -> None:
    """RFC 6749 §3.2 / RFC 8628 §3.1: no parameter twice; §2.3.1: no credentials in the URL."""
    started = harness.authorize()
    code, cid = started["device_code"], harness.client_id
    valid = {
        "/oauth/device_authorization": [("client_id", cid), ("scope", "profile")],
        "/oauth/token": list(device_poll(code, cid).items()),
        "/oauth/device_status": [("device_code", code), ("client_id", cid)],
    }
    for path, pairs in valid.items():
        for index, (name, value) in enumerate(pairs):
            for repeat in (value, "other"):  # the same value twice is still a repeat
                body = [*pairs[: index + 1], (name, repeat), *pairs[index + 1 :]]
                description = assert_error(form(harness, path, body), 400, "invalid_request")
                assert name in description and "repeated" in description, (path, name)
        in_url = form(harness, path, pairs, query={"client_secret": "s3cret"})
        assert "URL" in assert_error(in_url, 400, "invalid_request"), path
    refresh = [("grant_type", "refresh_token"), ("refresh_token", "a"), ("refresh_token", "a")]
    assert_error(
        form(harness, "/oauth/token", [*refresh, ("client_id", cid)]), 400, "invalid_request"
    )

    # A confidential client putting its (right) secret in the URL is refused too.
    conf_id, secret = harness.create_client(confidential=True)
    in_url = form(
        harness,
        "/oauth/device_authorization",
        {"client_id": conf_id},
        query={"client_secret": secret},
    )
    assert_error(in_url, 400, "invalid_request")
    assert_untouched(harness, code)


def test_over_long_and_odd_values_get_the_ordinary_error(harness: Harness) -> None:
    """Long or strange values get the ordinary error: never a 500."""
    started = harness.authorize()
    code, cid = started["device_code"], harness.client_id
    # PostgreSQL text cannot hold NUL: such a value is refused before any lookup.
    for path, body in (
        ("/oauth/device_authorization", {"client_id": cid + "\x00"}),
        ("/oauth/token", device_poll(code, cid + "\x00")),
        ("/oauth/device_status", {"device_code": code, "client_id": "\x00" + cid}),
    ):
        assert_error(form(harness, path, body), 400, "invalid_request")
    long = "x" * 20_000
    assert_invalid_client(form(harness, "/oauth/device_authorization", {"client_id": long}))
    assert_invalid_client(form(harness, "/oauth/token", device_poll(code, long)))
    assert_invalid_client(form(harness, "/oauth/device_authorization", "client_id=%ff%fe%fd"))
    scope = {"client_id": cid, "scope": long}
    assert_error(form(harness, "/oauth/device_authorization", scope), 400, "invalid_scope")
    assert_error(form(harness, "/oauth/token", device_poll(long, cid)), 400, "invalid_grant")
    refresh = {"grant_type": "refresh_token", "refresh_token": long, "client_id": cid}
    assert_error(form(harness, "/oauth/token", refresh), 400, "invalid_grant")
    status = {"device_code": long, "client_id": cid}
    assert_error(form(harness, "/oauth/device_status", status), 400, "invalid_grant")
    # `wait` values that are numbers but no sensible wait answer at once.
    for wait in ("nan", "-5", ""):
        body = {"device_code": code, "client_id": cid, "wait": wait, "status": "pending"}
        answered = form(harness, "/oauth/device_status", body)
        assert answered.status_code == 200 and answered.get_json()["status"] == "pending"
    assert_untouched(harness, code)


# --- OAuth endpoints: who is asking ----------------------------------------------------------
def test_unknown_clients_and_bad_authorization_headers_get_invalid_client_401(
    harness: Harness,
) -> None:
    started = harness.authorize()
    code = started["device_code"]
    assert_invalid_client(form(harness, "/oauth/device_authorization", {"client_id": "nobody"}))
    assert_invalid_client(form(harness, "/oauth/token", device_poll(code, "nobody")))
    refresh = {"grant_type": "refresh_token", "refresh_token": "r", "client_id": "nobody"}
    assert_invalid_client(form(harness, "/oauth/token", refresh))
    assert_invalid_client(
        form(harness, "/oauth/device_authorization", {}, headers=basic("nobody", "secret"))
    )

    # A public client has no secret: presenting one fails authentication.
    with_secret = {"client_id": harness.client_id, "client_secret": "guess"}
    assert_invalid_client(form(harness, "/oauth/device_authorization", with_secret))
    assert_invalid_client(form(harness, "/oauth/token", device_poll(code, **with_secret)))
    as_basic = basic(harness.client_id, "guess")
    assert_invalid_client(form(harness, "/oauth/device_authorization", {}, headers=as_basic))

    # Authorization headers that are not usable Basic credentials.
    for header in (
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b":").decode(),  # empty client id
        "Bearer some-token",
        "Digest username=x",
        harness.client_id,
    ):
        bad = {"Authorization": header}
        assert_invalid_client(form(harness, "/oauth/device_authorization", {}, headers=bad))
        body = device_poll(code, harness.client_id)
        assert_invalid_client(form(harness, "/oauth/token", body, headers=bad))
    assert_untouched(harness, code)


def test_confidential_client_credentials_must_be_right_and_sent_one_way(harness: Harness) -> None:
    cid, secret = harness.create_client(confidential=True)
    started = form(harness, "/oauth/device_authorization", {}, headers=basic(cid, secret))
    assert started.status_code == 200
    code = started.get_json()["device_code"]
    poll = {"grant_type": DEVICE_CODE_GRANT, "device_code": code}

    for path, params in (("/oauth/device_authorization", {}), ("/oauth/token", poll)):
        # Wrong or missing secret, by either method.
        assert_invalid_client(form(harness, path, params, headers=basic(cid, "wrong")))
        assert_invalid_client(form(harness, path, params, headers=basic(cid, "")))
        wrong_post = {**params, "client_id": cid, "client_secret": "wrong"}
        assert_invalid_client(form(harness, path, wrong_post))
        assert_invalid_client(form(harness, path, {**params, "client_id": cid}))
        # RFC 6749 §2.3: one authentication method per request, even with the right secret.
        both = {**params, "client_id": cid, "client_secret": secret}
        description = assert_error(
            form(harness, path, both, headers=basic(cid, secret)), 400, "invalid_request"
        )
        assert "one client authentication method" in description
        # A body client_id that is not the Basic one.
        other = {**params, "client_id": harness.client_id}
        assert_error(form(harness, path, other, headers=basic(cid, secret)), 400, "invalid_request")

    # None of that counted as a poll: the first right one is not throttled, the next one is.
    first = form(harness, "/oauth/token", poll, headers=basic(cid, secret))
    assert_error(first, 400, "authorization_pending")
    assert_error(form(harness, "/oauth/token", poll, headers=basic(cid, secret)), 400, "slow_down")


def test_invalid_scope(harness: Harness) -> None:
    for scope in ("admin", "profile admin", "PROFILE", "openid"):
        body = {"client_id": harness.client_id, "scope": scope}
        assert_error(form(harness, "/oauth/device_authorization", body), 400, "invalid_scope")
    restricted_id, _ = harness.create_client(confidential=False)
    assert harness.authorize(client_id=restricted_id, scope="profile email")["user_code"]


def test_a_device_code_of_another_client_is_invalid_grant_and_the_owner_is_unaffected(
    harness: Harness,
) -> None:
    started = harness.authorize(scope="profile")
    code = started["device_code"]
    other_public, _ = harness.create_client(confidential=False)
    other_conf, other_secret = harness.create_client(confidential=True)

    assert_error(harness.poll(code, client_id=other_public), 400, "invalid_grant")
    by_conf = form(
        harness, "/oauth/token", device_poll(code, other_conf, client_secret=other_secret)
    )
    assert_error(by_conf, 400, "invalid_grant")
    # Credentials are checked first: a wrong secret learns nothing about the code.
    wrong = form(harness, "/oauth/token", device_poll(code, other_conf, client_secret="wrong"))
    assert_invalid_client(wrong)
    status = {"device_code": code, "client_id": other_public}
    assert_error(form(harness, "/oauth/device_status", status), 400, "invalid_grant")

    # The real owner's flow is untouched: it is approved and redeemed as if nothing happened.
    assert_untouched(harness, code)
    harness.approve(started)
    assert_error(harness.poll(code, client_id=other_public), 400, "invalid_grant")  # still
    issued = harness.poll(code)
    assert issued.status_code == 200, issued.get_json()
    claims = jwt.decode(issued.get_json()["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == harness.client_id and claims["scope"] == "profile"


def test_refresh_with_a_wider_scope_or_another_client_changes_nothing(harness: Harness) -> None:
    tokens = approved_tokens(harness, scope="profile")
    other_id, _ = harness.create_client(confidential=False)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    for scope in ("email", "profile email", "admin"):
        body = {**refresh, "client_id": harness.client_id, "scope": scope}
        assert_error(form(harness, "/oauth/token", body), 400, "invalid_scope")
    assert_error(harness.refresh(tokens["refresh_token"], client_id=other_id), 400, "invalid_grant")
    # Neither consumed nor revoked the refresh token.
    refreshed = harness.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()
    assert refreshed.get_json()["scope"] == "profile"


# --- Mobile API ------------------------------------------------------------------------------
def test_sign_in_with_a_malformed_body_is_invalid_request_and_not_counted(
    harness: Harness,
) -> None:
    good = sign_in_body(harness.username)
    device = good["device"]
    bad: dict[str, dict[str, Any]] = {
        "form body": {"data": {"username": harness.username, "password": PASSWORD}},
        "no body": {},
        "empty json": {"data": "", "content_type": JSON},
        "invalid json": {"data": '{"username": ', "content_type": JSON},
        "invalid utf-8": {"data": b'{"username": "\xff"}', "content_type": JSON},
        "array": {"json": [good]},
        "string": {"json": harness.username},
        "null": {"data": "null", "content_type": JSON},
        "number": {"json": 42},
        "huge number": {"data": "1" * 5000, "content_type": JSON},
        "deeply nested": {"data": "[" * 30_000 + "]" * 30_000, "content_type": JSON},
        "username number": {"json": {**good, "username": 42}},
        "username null": {"json": {**good, "username": None}},
        "username object": {"json": {**good, "username": {"name": harness.username}}},
        "username list": {"json": {**good, "username": [harness.username]}},
        "username blank": {"json": {**good, "username": "   "}},
        "username too long": {"json": {**good, "username": "a" * 151}},
        "password missing": {"json": {k: v for k, v in good.items() if k != "password"}},
        "password number": {"json": {**good, "password": 12345678}},
        "password too long": {"json": {**good, "password": "p" * 1025}},
        "device missing": {"json": {k: v for k, v in good.items() if k != "device"}},
        "device string": {"json": {**good, "device": "phone-1"}},
        "device list": {"json": {**good, "device": [device]}},
        "device id number": {"json": {**good, "device": {**device, "id": 1}}},
        "device name null": {"json": {**good, "device": {**device, "name": None}}},
        "device id too long": {"json": {**good, "device": {**device, "id": "d" * 201}}},
        # PostgreSQL text cannot hold NUL: refused up front, never a 500 from the database.
        "username with NUL": {"json": {**good, "username": harness.username + "\x00"}},
        "device id with NUL": {"json": {**good, "device": {**device, "id": "phone\x00-1"}}},
        "platform too long": {"json": {**good, "device": {**device, "platform": "p" * 51}}},
    }
    for label, kwargs in bad.items():
        response = harness.http.post("/mobile/v1/sessions", **kwargs)
        assert response.status_code == 400, label
        assert_error(response, 400, "invalid_request")

    wrong = harness.http.post(
        "/mobile/v1/sessions", json=sign_in_body(harness.username, "wrong pw!")
    )
    assert_error(wrong, 401, "invalid_credentials")
    # None of the malformed bodies counted against the 3-attempt login limit.
    assert harness.http.post("/mobile/v1/sessions", json=good).status_code == 201


def test_bearer_failures_are_invalid_token_401_and_change_nothing(harness: Harness) -> None:
    started = harness.authorize()
    phone = harness.sign_in("phone-1")
    endpoints: list[tuple[str, str, dict[str, Any] | None]] = [
        ("DELETE", "/mobile/v1/sessions", None),
        ("POST", "/mobile/v1/scan", {"qr": started["verification_uri_complete"]}),
        ("POST", "/mobile/v1/confirm", {"confirm_token": "t"}),
        ("POST", "/mobile/v1/deny", {"confirm_token": "t"}),
    ]
    bearer = f"Bearer {phone.token}"
    bad_headers: dict[str, dict[str, str]] = {
        "nothing": {},
        "basic": {**basic("u", "p"), "X-Device-Id": phone.device_id},
        "bearer, no token": {"Authorization": "Bearer ", "X-Device-Id": phone.device_id},
        "bearer only": {"Authorization": "Bearer", "X-Device-Id": phone.device_id},
        "no scheme": {"Authorization": phone.token, "X-Device-Id": phone.device_id},
        "garbage": {"Authorization": "Bearer garbage", "X-Device-Id": phone.device_id},
        "no device id": {"Authorization": bearer},
        "empty device id": {"Authorization": bearer, "X-Device-Id": ""},
        "another device id": phone.headers("phone-2"),
        "device id case": phone.headers(phone.device_id.upper()),
    }
    for method, path, body in endpoints:
        for label, headers in bad_headers.items():
            response = harness.http.open(path, method=method, json=body, headers=headers)
            assert response.status_code == 401, (path, label)
            assert_invalid_token(response)

    # Nothing was scanned or signed out: the flow is pending and the phone's token still works.
    assert harness.status(started["device_code"]).get_json()["status"] == "pending"
    assert harness.scan(phone, qr=started["verification_uri_complete"]).status_code == 200
    assert harness.http.delete("/mobile/v1/sessions", headers=phone.headers()).status_code == 204
    assert_invalid_token(harness.scan(phone, qr=started["verification_uri_complete"]))


def test_scan_with_a_malformed_body_or_a_foreign_qr_is_refused(harness: Harness) -> None:
    started = harness.authorize()
    phone = harness.sign_in()
    qr = started["verification_uri_complete"]
    shapes: dict[str, dict[str, Any]] = {
        "form body": {"data": {"qr": qr}},
        "invalid json": {"data": '{"qr": ', "content_type": JSON},
        "array": {"json": [{"qr": qr}]},
        "neither": {"json": {}},
        "both": {"json": {"qr": qr, "user_code": started["user_code"]}},
        "qr null": {"json": {"qr": None}},
        "qr number": {"json": {"qr": 42}},
        "qr object": {"json": {"qr": {"url": qr}}},
        "qr too long": {"json": {"qr": qr + "&x=" + "y" * 2000}},
        "user_code list": {"json": {"user_code": [started["user_code"]]}},
        "user_code blank": {"json": {"user_code": "  "}},
        "user_code too long": {"json": {"user_code": "B" * 51}},
    }
    for label, kwargs in shapes.items():
        response = harness.http.post("/mobile/v1/scan", headers=phone.headers(), **kwargs)
        assert response.status_code == 400, label
        assert_error(response, 400, "invalid_request")
    # Malformed requests are not user-code guesses: more than the limit (3), and still allowed.
    assert harness.status(started["device_code"]).get_json()["status"] == "pending"
    assert harness.scan(phone, qr=qr).status_code == 200

    # A QR code that is not this server's login code gets a clear not_found.
    path_and_query = qr.removeprefix(ISSUER)
    for foreign in (
        "https://evil.example" + path_and_query,
        ISSUER + "/login?" + qr.partition("?")[2],  # another path
        "WIFI:T:WPA;S:home;P:secret;;",
    ):  # three at most: whether these count as failed attempts is not this test's business
        description = assert_error(harness.scan(phone, qr=foreign), 404, "not_found")
        assert "not a login code of this server" in description, foreign


def test_typed_user_codes_are_rate_limited_even_across_a_success(harness: Harness) -> None:
    """RFC 8628 §5.1: every failed entry counts (malformed ones too); a success resets nothing."""
    with freeze_time(FROZEN) as frozen:
        first, second = harness.authorize(), harness.authorize()
        phone = harness.sign_in()
        assert_error(harness.scan(phone, user_code="AEIO-UAEI"), 404, "not_found")  # vowels
        assert_error(harness.scan(phone, user_code="BCDF-GHJ"), 404, "not_found")  # too short
        ok = harness.scan(phone, user_code=first["user_code"].lower())
        assert ok.status_code == 200, ok.get_json()
        this_server_bad_code = f"{ISSUER}/device?user_code=BCDF-GHJKL"  # too long
        assert_error(harness.scan(phone, qr=this_server_bad_code), 404, "not_found")

        # Three failures in the window: even the right code is refused, typed or scanned.
        for body in (
            {"user_code": second["user_code"]},
            {"qr": second["verification_uri_complete"]},
        ):
            refused = harness.scan(phone, **body)
            assert_error(refused, 429, "rate_limited")
            # The window began at the first failure (12:10:00) and ends at 12:25:00.
            assert refused.headers["Retry-After"] == "900"
        assert harness.status(second["device_code"]).get_json()["status"] == "pending"

        frozen.tick(900)  # a new window (and a new login: the second one expired meanwhile)
        third = harness.authorize()
        assert harness.scan(phone, user_code=third["user_code"]).status_code == 200


def test_sign_in_is_rate_limited_even_across_a_success(harness: Harness) -> None:
    with freeze_time(FROZEN) as frozen:
        sessions = "/mobile/v1/sessions"
        wrong, right = sign_in_body(harness.username, "wrong pw!"), sign_in_body(harness.username)
        for _ in range(2):
            assert_error(harness.http.post(sessions, json=wrong), 401, "invalid_credentials")
        assert harness.http.post(sessions, json=right).status_code == 201
        assert_error(harness.http.post(sessions, json=wrong), 401, "invalid_credentials")

        refused = harness.http.post(sessions, json=right)
        assert_error(refused, 429, "rate_limited")
        assert refused.headers["Retry-After"] == "900"  # from the first failure
        frozen.tick(900)  # a new window
        assert harness.http.post(sessions, json=right).status_code == 201


def test_bad_confirm_and_deny_leave_the_flow_scanned_and_the_right_token_working(
    harness: Harness,
) -> None:
    started = harness.authorize()
    phone = harness.sign_in("phone-1")
    same_user_other_phone = harness.sign_in("phone-2")
    stranger = harness.sign_in("phone-3", username=harness.create_user())
    screen = harness.scan(phone, qr=started["verification_uri_complete"]).get_json()
    token = screen["confirm_token"]

    def decide(who: Phone, action: str, **kwargs: Any) -> TestResponse:
        return harness.http.post(f"/mobile/v1/{action}", headers=who.headers(), **kwargs)

    for action in ("confirm", "deny"):
        for body in (
            {},
            {"confirm_token": None},
            {"confirm_token": 5},
            {"confirm_token": [token]},
            {"confirm_token": {"value": token}},
            {"confirm_token": ""},
            {"confirm_token": token + "x" * 200},  # over 200 characters
        ):
            assert_error(decide(phone, action, json=body), 400, "invalid_request")
        assert_error(decide(phone, action, json=[token]), 400, "invalid_request")
        assert_error(decide(phone, action, data={"confirm_token": token}), 400, "invalid_request")
        for garbage in ("garbage", "x" * 200, token[:-1], token.upper()):
            body = {"confirm_token": garbage}
            assert_error(decide(phone, action, json=body), 400, "invalid_confirm_token")
        # The right token from any other phone, even the same user's, is refused.
        for who in (same_user_other_phone, stranger):
            body = {"confirm_token": token}
            assert_error(decide(who, action, json=body), 400, "invalid_confirm_token")

    assert_untouched(harness, started["device_code"], status="scanned")
    assert harness.decide(phone, token).get_json() == {"status": "approved"}
    assert harness.poll(started["device_code"]).status_code == 200


# --- HTTP-level errors -----------------------------------------------------------------------
def test_qr_images_for_malformed_codes_are_json_404(harness: Harness) -> None:
    # Any well-formed code has an image: the endpoint is no oracle for live codes.
    for path in ("/qr/BCDF-GHJK.png", "/qr/bcdfghjk.png", "/qr/BCDF GHJK.png"):
        image = harness.http.get(path)
        assert image.status_code == 200 and image.mimetype == "image/png", path
        assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    for path in (
        "/qr/AEIO-UAEI.png",  # vowels
        "/qr/BCDF-GHJ.png",  # too short
        "/qr/BCDF-GHJKL.png",  # too long
        "/qr/BCDF-GHJK.gif",
        "/qr/BCDF-GHJK.PNG",
        "/qr/BCDF-GHJK",
        "/qr/.png",
        "/qr/%00%00.png",
        "/qr/" + "B" * 5000 + ".png",
    ):
        assert_error(harness.http.get(path), 404, "not_found", no_store=False)


def test_unknown_paths_wrong_methods_and_big_bodies_get_json_errors(harness: Harness) -> None:
    for method, path in (
        ("GET", "/nope"),
        ("POST", "/oauth/nope"),
        ("POST", "/oauth/token/extra"),
        ("GET", "/mobile/v1/nope"),
        ("POST", "/mobile/v2/scan"),
        ("GET", "/qr/"),
    ):
        response = harness.http.open(path, method=method)
        assert_error(response, 404, "not_found", no_store=False)

    for method, path, allowed in (
        ("GET", "/oauth/token", {"POST"}),
        ("GET", "/oauth/device_authorization", {"POST"}),
        ("PUT", "/oauth/device_status", {"POST"}),
        ("POST", "/oauth/jwks", {"GET"}),
        ("POST", "/.well-known/oauth-authorization-server", {"GET"}),
        ("GET", "/mobile/v1/sessions", {"POST", "DELETE"}),
        ("PATCH", "/mobile/v1/scan", {"POST"}),
        ("GET", "/mobile/v1/confirm", {"POST"}),
        ("DELETE", "/mobile/v1/deny", {"POST"}),
        ("POST", "/qr/BCDF-GHJK.png", {"GET"}),
        ("PUT", "/device", {"GET", "POST"}),
    ):
        response = harness.http.open(path, method=method)
        assert_error(response, 405, "method_not_allowed", no_store=False)
        assert allowed <= set(response.headers["Allow"].replace(" ", "").split(",")), path

    # MAX_CONTENT_LENGTH is 64 KiB: above it, a 413 in the same JSON shape, before any parsing.
    phone = harness.sign_in()
    big = "x" * (64 * 1024)
    big_json = json.dumps({"confirm_token": big})
    for path, kwargs in (
        ("/oauth/device_authorization", {"data": f"client_id={big}", "content_type": FORM}),
        ("/oauth/token", {"data": f"grant_type={big}", "content_type": FORM}),
        ("/oauth/device_status", {"data": f"device_code={big}", "content_type": FORM}),
        ("/mobile/v1/sessions", {"data": big_json, "content_type": JSON}),
        ("/mobile/v1/scan", {"data": big_json, "content_type": JSON, "headers": phone.headers()}),
        (
            "/mobile/v1/confirm",
            {"data": big_json, "content_type": JSON, "headers": phone.headers()},
        ),
    ):
        response = harness.http.post(path, **kwargs)
        assert_error(response, 413, "invalid_request", no_store=False)
    # Just under the limit, the request is read and gets its ordinary answer.
    under = form(harness, "/oauth/token", device_poll("d" * 60_000, harness.client_id))
    assert_error(under, 400, "invalid_grant")


def test_a_500_never_leaks_internals(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-internal-detail")

    monkeypatch.setattr(harness.services.device_grant, "start", explode)
    monkeypatch.setattr(harness.services.accounts, "sign_in", explode)
    for response in (
        form(harness, "/oauth/device_authorization", {"client_id": harness.client_id}),
        harness.http.post("/mobile/v1/sessions", json=sign_in_body(harness.username)),
    ):
        assert_error(response, 500, "server_error")
        text = response.get_data(as_text=True)
        assert "secret-internal-detail" not in text and "RuntimeError" not in text
        assert "Traceback" not in text and "flows.py" not in text
    # The detail goes to the log, for the operator.
    assert "secret-internal-detail" in caplog.text

    # Even when rendering an error fails (Flask then raises InternalServerError).
    monkeypatch.setattr(app_module, "to_wire", explode)
    response = form(harness, "/oauth/device_authorization", {"client_id": "nobody"})
    assert_error(response, 500, "server_error")
    assert "secret-internal-detail" not in response.get_data(as_text=True)


# --- Fixed server bugs, kept as regressions -----------------------------------------------
def test_undecodable_basic_credentials_are_invalid_client(harness: Harness) -> None:
    started = harness.authorize()
    body = device_poll(started["device_code"], harness.client_id)
    for header in (
        "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),  # not UTF-8
        "Basic ",  # a scheme and nothing after it
        "Basic \xa0",  # Latin-1 NBSP: `" " in auth` but str.split() finds one word
    ):
        bad = {"Authorization": header}
        assert_invalid_client(form(harness, "/oauth/device_authorization", {}, headers=bad))
        assert_invalid_client(form(harness, "/oauth/token", body, headers=bad))
    assert_untouched(harness, started["device_code"])


def test_device_status_refuses_a_wrong_secret_as_the_token_endpoint_does(harness: Harness) -> None:
    cid, secret = harness.create_client(confidential=True)
    started = form(harness, "/oauth/device_authorization", {}, headers=basic(cid, secret))
    code = started.get_json()["device_code"]
    right = form(harness, "/oauth/device_status", {"device_code": code}, headers=basic(cid, secret))
    assert right.status_code == 200
    wrong = form(harness, "/oauth/device_status", {"device_code": code}, headers=basic(cid, "nope"))
    assert_invalid_client(wrong)
    post = {"device_code": code, "client_id": cid, "client_secret": "nope"}
    assert_invalid_client(form(harness, "/oauth/device_status", post))
    assert_invalid_client(
        form(harness, "/oauth/device_status", {"device_code": code, "client_id": cid})
    )
    # The same mistakes on the token endpoint, for comparison.
    poll = {"grant_type": DEVICE_CODE_GRANT, "device_code": code}
    assert_invalid_client(form(harness, "/oauth/token", poll, headers=basic(cid, "nope")))


def test_http_level_errors_on_oauth_endpoints_are_no_store(harness: Harness) -> None:
    big = form(harness, "/oauth/token", {"grant_type": "x" * (64 * 1024)})
    assert_error(big, 413, "invalid_request")
    assert_error(harness.http.get("/oauth/token"), 405, "method_not_allowed")
    assert_error(harness.http.post("/oauth/nope"), 404, "not_found")
