"""The pages for people through the Flask test client, on each backend pair.

The PC login page (/login) refuses confidential and unknown clients; the verification page
(/device) takes a typed code in any formatting, signs a browser in, shows the approval facts
and approves or denies, so the PC's token poll gets tokens or access_denied. Wrong codes,
expired codes, codes another device holds, rate limits and failed sign-ins are HTML messages
(never JSON, never a 500); forged POSTs are refused and change nothing; every page carries the
security headers.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time
from werkzeug.test import TestResponse

from authserver.domain.models import ClientKind
from tests.functional.harness import ISSUER, PASSWORD, Harness

SESSION_COOKIE = "authserver_web"
DEVICE_COOKIE = "authserver_web_device"
FORM_COOKIE = "authserver_web_form"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')
CONFIRM_RE = re.compile(r'name="confirm_token" value="([^"]*)"')
HIDDEN_CODE_RE = re.compile(r'type="hidden" name="user_code" value="([^"]*)"')
# 600 s into a 900 s fixed rate-limit window (12:00-12:15): Retry-After is exactly 300.
FROZEN = "2026-01-01 12:10:00"


@pytest.fixture
def settings() -> dict[str, Any]:
    """Small limits, so the rate-limit tests need few attempts."""
    return {"user_code_attempts": 3, "user_code_attempts_per_ip": 100, "login_attempts": 3}


# --- Helpers -------------------------------------------------------------------------------
def field(name_re: re.Pattern[str], html: str) -> str:
    found = name_re.search(html)
    assert found, f"no {name_re.pattern} in the page"
    return found.group(1)


def html_page(response: TestResponse, status: int) -> str:
    """The response is an HTML page with this status and the pages' security headers."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "text/html", text
    assert_page_headers(response)
    return text


def assert_page_headers(response: TestResponse) -> None:
    headers = response.headers
    assert headers["Cache-Control"] == "no-store"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "base-uri 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null`.
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff"
    text = response.get_data(as_text=True)
    # No inline script or style: every <script> has a src or is a JSON data block (the
    # scripts' words, which a browser never runs); no style attributes or elements.
    assert not re.search(r'<script(?![^>]*\b(src=|type="application/json"))', text)
    assert " style=" not in text and "<style" not in text


class Browser:
    """A browser on the verification page: a cookie jar of its own."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.http: FlaskClient = harness.http.application.test_client()

    def open(self, path: str = "/device") -> TestResponse:
        return self.http.get(path)

    def sign_in_and_enter(
        self, code: str, *, password: str = PASSWORD, username: str | None = None
    ) -> TestResponse:
        """Open /device signed out and send the code with username and password."""
        form = html_page(self.open(), 200)
        assert 'name="password"' in form
        return self.http.post(
            "/device",
            data={
                "csrf_token": field(CSRF_RE, form),
                "user_code": code,
                "username": username or self.harness.username,
                "password": password,
            },
        )

    def enter(self, code: str) -> TestResponse:
        """Send a code from the signed-in form."""
        form = html_page(self.open(), 200)
        assert 'name="password"' not in form, "not signed in"
        return self.http.post(
            "/device", data={"csrf_token": field(CSRF_RE, form), "user_code": code}
        )

    def signed_in(self, code: str) -> str:
        """Sign in with `code`: the approval page's HTML."""
        return html_page(self.sign_in_and_enter(code), 200)

    def decide(self, approval: str, decision: str) -> TestResponse:
        return self.http.post(
            "/device/decision",
            data={
                "csrf_token": field(CSRF_RE, approval),
                "confirm_token": field(CONFIRM_RE, approval),
                "user_code": field(HIDDEN_CODE_RE, approval),
                "decision": decision,
            },
        )

    def cookie(self, name: str) -> str | None:
        cookie = self.http.get_cookie(name, path="/device")
        return cookie.value if cookie else None


def flow_state(harness: Harness, started: dict[str, Any]) -> str:
    """What the PC's status channel says about this flow."""
    return str(harness.status(started["device_code"]).get_json()["status"])


def devices_of(harness: Harness) -> list[Any]:
    user = harness.services.accounts.find_user(harness.username)
    assert user is not None
    return [d for d in harness.services.accounts.devices_of(user.user_id) if d.revoked_at is None]


# --- The PC login page ---------------------------------------------------------------------
def test_login_page_of_a_public_client(harness: Harness) -> None:
    response = harness.http.get(f"/login?client_id={harness.client_id}")
    text = html_page(response, 200)
    assert "Sign in to Test PC app" in text
    assert f'data-client-id="{harness.client_id}"' in text
    assert 'data-device-authorization-url="/oauth/device_authorization"' in text
    assert 'data-status-url="/oauth/device_status"' in text
    assert 'data-qr-url="/qr/USERCODE.svg"' in text
    assert f'href="{ISSUER}/device"' in text  # the verification URI, for typing the code
    assert 'role="status"' in text and 'aria-live="polite"' in text
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "img-src 'self'" in csp
    assert "require-trusted-types-for 'script'" in csp

    script = re.search(r'<script src="([^"]+)" defer></script>', text)
    assert script and script.group(1).startswith("/assets/login.js?v=")
    js = harness.http.get(script.group(1))
    assert js.status_code == 200
    assert js.mimetype == "text/javascript"
    assert js.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert js.headers["X-Content-Type-Options"] == "nosniff"
    assert "localStorage" not in js.get_data(as_text=True)  # tokens stay in memory
    # An unversioned or stale URL is revalidated, never cached for a year.
    assert harness.http.get("/assets/login.js?v=old").headers["Cache-Control"] == "no-cache"
    css = re.search(r'<link rel="stylesheet" href="([^"]+)">', text)
    assert css and harness.http.get(css.group(1)).mimetype == "text/css"
    html_page(harness.http.get("/assets/secrets.py"), 404)

    scoped = html_page(harness.http.get(f"/login?client_id={harness.client_id}&scope=email"), 200)
    assert 'data-scope="email"' in scoped


def test_login_page_refuses_confidential_unknown_and_disabled_clients(harness: Harness) -> None:
    confidential, _ = harness.create_client(confidential=True)
    text = html_page(harness.http.get(f"/login?client_id={confidential}"), 400)
    assert "confidential client" in text and "a web page cannot keep one" in text
    assert "login.js" not in text

    resource, _ = harness.services.clients.create(
        "Orders API", confidential=True, scope=None, kind=ClientKind.RESOURCE_SERVER
    )
    html_page(harness.http.get(f"/login?client_id={resource.client_id}"), 400)

    assert "No application has this client_id." in html_page(
        harness.http.get("/login?client_id=no-such-client"), 404
    )
    assert "needs a client_id" in html_page(harness.http.get("/login"), 400)
    html_page(harness.http.get("/login?client_id=%00%01"), 404)
    html_page(harness.http.get(f"/login?client_id={harness.client_id}&scope=admin"), 400)

    harness.services.clients.set_disabled(harness.client_id, True)
    assert "disabled" in html_page(harness.http.get(f"/login?client_id={harness.client_id}"), 403)


# --- The verification page: typed codes ----------------------------------------------------
def test_typed_code_in_any_formatting_shows_the_approval_facts(harness: Harness) -> None:
    started = harness.authorize()
    code = started["user_code"]  # XXXX-XXXX
    browser = Browser(harness)
    approval = browser.signed_in(code.lower())
    for text in ("Test PC app", "Your name and username", "203.0.113.7"):
        assert text in approval
    # The client may ask for email, but this user has none: nothing to promise.
    assert "Your email address" not in approval
    # What the PC says it is, parsed and labelled as its claim; never its raw user agent.
    assert "an unknown device" in approval and "its own claim" in approval
    assert "TestPC/1.0" not in approval
    assert f'<p class="user-code">{code}</p>' in approval
    assert "Deny unless you started this sign-in yourself" in approval
    assert 'value="deny"' in approval and 'value="approve"' in approval
    assert "Alice Liddell" in approval
    assert flow_state(harness, started) == "scanned"

    # RFC 8628 §3.3 / §6.1: case, dashes and spaces do not matter. The same browser may
    # enter the code again (a fresh confirm token each time).
    raw = code.replace("-", "")
    for typed in (raw.lower(), f"  {raw[:4]} {raw[4:]}  ", f"{raw[:2]}-{raw[2:6]}-{raw[6:]}", raw):
        again = html_page(browser.enter(typed), 200)
        assert f'<p class="user-code">{code}</p>' in again, typed


def test_the_qr_link_fills_the_code_in(harness: Harness) -> None:
    started = harness.authorize()
    browser = Browser(harness)
    text = html_page(browser.open(started["verification_uri_complete"]), 200)
    assert f'value="{started["user_code"]}"' in text
    assert "Filled in from the QR code" in text
    assert 'name="username"' in text and 'name="password"' in text
    assert flow_state(harness, started) == "pending"  # opening the link changes nothing

    bad = html_page(browser.open("/device?user_code=AEIOU"), 200)
    assert "not a valid code" in bad
    assert 'value="AEIOU"' not in bad


def test_wrong_malformed_and_expired_codes_are_messages(harness: Harness) -> None:
    browser = Browser(harness)
    started = harness.authorize()
    text = html_page(browser.sign_in_and_enter("BCDF-GHJK"), 404)
    assert "No sign-in request has this code." in text
    assert 'role="alert"' in text
    # Signed in now (the password was right): the form asks only for the code again.
    assert 'name="password"' not in text and 'value="BCDF-GHJK"' in text
    assert browser.cookie(SESSION_COOKIE)

    malformed = html_page(browser.enter("hello"), 400)
    assert "That is not a valid code." in malformed
    html_page(browser.enter("ä" * 10), 400)
    html_page(browser.enter("B" * 51), 400)
    assert flow_state(harness, started) == "pending"

    with freeze_time() as frozen:
        late = harness.authorize()
        frozen.tick(601)
        text = html_page(browser.enter(late["user_code"]), 410)
        assert "This code has expired." in text


def test_a_code_another_device_holds_is_refused(harness: Harness) -> None:
    started = harness.authorize()
    phone = harness.sign_in()
    assert harness.scan(phone, user_code=started["user_code"]).status_code == 200
    text = html_page(Browser(harness).sign_in_and_enter(started["user_code"]), 409)
    assert "already scanned by another device" in text
    # ... and the phone still holds it.
    assert flow_state(harness, started) == "scanned"


def test_typed_codes_are_rate_limited_like_the_app(harness: Harness) -> None:
    with freeze_time(FROZEN):
        started = harness.authorize()
        browser = Browser(harness)
        html_page(browser.sign_in_and_enter("BCDF-GHJK"), 404)
        # Malformed codes cannot be guesses: they do not count.
        for _ in range(5):
            html_page(browser.enter("nope"), 400)
        html_page(browser.enter("BCDF-GHJL"), 404)
        html_page(browser.enter("BCDF-GHJM"), 404)
        response = browser.enter(started["user_code"])  # even the right code, once over
        text = html_page(response, 429)
        # The window began at the first wrong code (frozen clock: all at once).
        assert "Too many wrong attempts. Try again in 15 minutes." in text
        assert response.headers["Retry-After"] == "900"
        assert flow_state(harness, started) == "pending"
        # The app on a phone of the same account is held back too: one limit per account.
        phone = harness.sign_in()
        assert harness.scan(phone, user_code=started["user_code"]).status_code == 429


# --- Signing in ----------------------------------------------------------------------------
def test_sign_in_failures_are_messages_and_leave_no_session(harness: Harness) -> None:
    with freeze_time(FROZEN):
        started = harness.authorize()
        browser = Browser(harness)
        text = html_page(browser.sign_in_and_enter(started["user_code"], password="wrong!"), 401)
        assert "Unknown username or wrong password." in text
        assert f'value="{harness.username}"' in text  # the username is kept, the password not
        assert 'value="wrong!"' not in text
        assert browser.cookie(SESSION_COOKIE) is None
        html_page(browser.sign_in_and_enter(started["user_code"], username="nobody"), 401)
        empty = browser.sign_in_and_enter(started["user_code"], password="")
        assert "Enter your username and password." in html_page(empty, 400)  # not counted

        for _ in range(2):  # the second and third failure of this username from this IP
            html_page(browser.sign_in_and_enter(started["user_code"], password="wrong"), 401)
        response = browser.sign_in_and_enter(started["user_code"])  # right, but over the limit
        text = html_page(response, 429)
        assert "Too many failed sign-ins. Try again in 15 minutes." in text
        assert response.headers["Retry-After"] == "900"  # the window began at the first failure
        assert browser.cookie(SESSION_COOKIE) is None
        assert devices_of(harness) == []
        assert flow_state(harness, started) == "pending"


def test_the_browser_session_is_a_signed_in_web_device(harness: Harness) -> None:
    started = harness.authorize()
    browser = Browser(harness)
    form = browser.open()
    form_cookie = next(h for h in form.headers.getlist("Set-Cookie") if h.startswith(FORM_COOKIE))
    assert "HttpOnly" in form_cookie and "SameSite=Strict" in form_cookie
    assert "Path=/device" in form_cookie

    response = browser.http.post(
        "/device",
        data={
            "csrf_token": field(CSRF_RE, form.get_data(as_text=True)),
            "user_code": started["user_code"],
            "username": harness.username,
            "password": PASSWORD,
        },
    )
    html_page(response, 200)
    cookies = {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}
    ttl = harness.services.config.web_session_ttl
    for name in (SESSION_COOKIE, DEVICE_COOKIE):
        attributes = [part.strip() for part in cookies[name].split(";")]
        assert "HttpOnly" in attributes and "SameSite=Strict" in attributes, name
        assert "Path=/device" in attributes, name
        assert "Secure" not in attributes  # the test issuer is http://localhost
    # A session cookie: gone when the browser closes; the server ends the session after ttl.
    assert "Max-Age" not in cookies[SESSION_COOKIE] and "Expires" not in cookies[SESSION_COOKIE]
    assert cookies[FORM_COOKIE].startswith(f"{FORM_COOKIE}=;")  # used up

    [device] = devices_of(harness)
    assert device.platform == "web"
    assert device.device_id == browser.cookie(DEVICE_COOKIE)
    assert device.name.startswith("Web browser")
    assert device.expires_at - device.created_at == ttl

    # Signing in again from this browser replaces its session (same device id).
    browser.http.delete_cookie(SESSION_COOKIE, path="/device")
    html_page(browser.sign_in_and_enter(harness.authorize()["user_code"]), 200)
    [again] = devices_of(harness)
    assert again.id != device.id and again.device_id == device.device_id


def test_sign_out(harness: Harness) -> None:
    started = harness.authorize()
    browser = Browser(harness)
    browser.signed_in(started["user_code"])
    token = browser.cookie(SESSION_COOKIE)
    form = html_page(browser.open(), 200)
    assert "Signed in as <strong>Alice Liddell</strong>" in form
    response = browser.http.post("/device/sign-out", data={"csrf_token": field(CSRF_RE, form)})
    assert response.status_code == 303 and response.location == "/device?notice=signed_out"
    assert browser.cookie(SESSION_COOKIE) is None
    assert "You are signed out." in html_page(browser.open(response.location), 200)
    assert devices_of(harness) == []
    # A copied cookie is dead too.
    assert token
    browser.http.set_cookie(SESSION_COOKIE, token, path="/device")
    assert 'name="password"' in html_page(browser.open(), 200)


def test_a_form_sent_after_the_session_ended_asks_to_sign_in(harness: Harness) -> None:
    started = harness.authorize()
    browser = Browser(harness)
    approval = browser.signed_in(started["user_code"])
    form = html_page(browser.open(), 200)
    [device] = devices_of(harness)
    harness.services.accounts.sign_out_everywhere(device.user_id, device.device_id)
    for response in (
        browser.http.post("/device", data={"csrf_token": field(CSRF_RE, form), "user_code": "x"}),
        browser.decide(approval, "approve"),
    ):
        text = html_page(response, 401)
        assert "Your sign-in on this page has ended." in text
        assert 'name="password"' in text
    assert flow_state(harness, started) == "scanned"


# --- Approve and deny lead the PC to tokens or access_denied -------------------------------
def test_approving_on_the_page_gives_the_pc_its_tokens(harness: Harness) -> None:
    started = harness.authorize()
    assert harness.poll(started["device_code"]).get_json()["error"] == "authorization_pending"
    browser = Browser(harness)
    approval = browser.signed_in(started["user_code"])
    status = harness.status(started["device_code"]).get_json()
    assert status["scanner"] == {"name": "A*** L***", "platform": "web"}

    text = html_page(browser.decide(approval, "approve"), 200)
    assert "You approved the sign-in." in text
    with freeze_time() as frozen:
        frozen.tick(started["interval"])
        tokens = harness.poll(started["device_code"])
        assert tokens.status_code == 200, tokens.get_json()
        access_token = tokens.get_json()["access_token"]
        me = harness.http.get("/api/v1/me", headers={"Authorization": f"Bearer {access_token}"})
        assert me.get_json()["username"] == harness.username

    # The browser forgot its sign-in with the decision: sending the form again asks to sign in
    # (a message, not a 500), and so does the next code typed on this (perhaps shared) browser.
    assert browser.cookie("authserver_web") is None
    again = html_page(browser.decide(approval, "approve"), 401)
    assert "Sign in again" in again
    assert 'name="password"' in html_page(browser.open(), 200)


def test_the_next_person_on_a_shared_browser_cannot_approve_as_the_last_one(
    harness: Harness,
) -> None:
    browser = Browser(harness)
    first = harness.authorize()
    html_page(browser.decide(browser.signed_in(first["user_code"]), "approve"), 200)
    # Someone else at the same browser starts their own sign-in and types its code.
    theirs = harness.authorize()
    form = html_page(browser.open(), 200)
    assert "Signed in as" not in form and 'name="password"' in form
    typed = browser.http.post(
        "/device", data={"csrf_token": field(CSRF_RE, form), "user_code": theirs["user_code"]}
    )
    assert typed.status_code in (400, 401)
    assert flow_state(harness, theirs) == "pending"


def test_denying_on_the_page_tells_the_pc_access_denied(harness: Harness) -> None:
    started = harness.authorize()
    browser = Browser(harness)
    approval = browser.signed_in(started["user_code"])
    assert "You denied the sign-in" in html_page(browser.decide(approval, "deny"), 200)
    denied = harness.poll(started["device_code"])
    assert denied.get_json()["error"] == "access_denied"
    assert flow_state(harness, started) == "denied"
    # A denied code cannot be entered again (the browser signs in anew: a decision ends its
    # sign-in).
    assert "can no longer be confirmed or denied" in html_page(
        browser.sign_in_and_enter(started["user_code"]), 409
    )


def test_a_late_answer_is_a_message(harness: Harness) -> None:
    with freeze_time() as frozen:
        started = harness.authorize()
        browser = Browser(harness)
        approval = browser.signed_in(started["user_code"])
        frozen.tick(harness.services.config.confirm_token_ttl + 1)
        text = html_page(browser.decide(approval, "approve"), 409)
        assert "took too long" in text
        assert f'value="{started["user_code"]}"' in text  # the code, ready to send again
        assert flow_state(harness, started) == "scanned"
        # Entering the code again shows it once more, with a fresh confirm token.
        html_page(
            browser.decide(html_page(browser.enter(started["user_code"]), 200), "approve"), 200
        )
    assert harness.poll(started["device_code"]).status_code == 200


# --- Request forgery -----------------------------------------------------------------------
FORGERIES: list[tuple[dict[str, str], dict[str, str]]] = [
    ({}, {}),  # no token
    ({"csrf_token": ""}, {}),
    ({"csrf_token": "0" * 64}, {}),
    ({"csrf_token": "é" * 64}, {}),  # non-ASCII: refused, not a crash
    ({"csrf_token": "TOKEN"}, {"Origin": "https://evil.example"}),
    ({"csrf_token": "TOKEN"}, {"Origin": "null"}),
    ({"csrf_token": "TOKEN"}, {"Sec-Fetch-Site": "cross-site"}),
]


def forged(token: str) -> list[tuple[dict[str, str], dict[str, str]]]:
    return [
        ({k: token if v == "TOKEN" else v for k, v in data.items()}, headers)
        for data, headers in FORGERIES
    ]


def test_forged_sign_in_changes_nothing(harness: Harness) -> None:
    started = harness.authorize()
    browser = Browser(harness)
    token = field(CSRF_RE, html_page(browser.open(), 200))
    credentials = {
        "user_code": started["user_code"],
        "username": harness.username,
        "password": PASSWORD,
    }
    for data, headers in forged(token):
        response = browser.http.post("/device", data={**credentials, **data}, headers=headers)
        assert "nothing was changed" in html_page(response, 403), (data, headers)
    # Without its cookie (another browser, or an attacker's page), the field is worth nothing.
    browser.http.delete_cookie(FORM_COOKIE, path="/device")
    response = browser.http.post("/device", data={**credentials, "csrf_token": token})
    html_page(response, 403)
    assert browser.cookie(SESSION_COOKIE) is None
    assert devices_of(harness) == []
    assert flow_state(harness, started) == "pending"


def test_forged_signed_in_posts_change_nothing(harness: Harness) -> None:
    started = harness.authorize()
    browser = Browser(harness)
    browser.signed_in(harness.authorize()["user_code"])  # signed in, on another flow
    token = field(CSRF_RE, html_page(browser.open(), 200))

    # Entering a code (which would bind the flow to this browser).
    for data, headers in forged(token):
        response = browser.http.post(
            "/device", data={"user_code": started["user_code"], **data}, headers=headers
        )
        html_page(response, 403)
    assert flow_state(harness, started) == "pending"

    # Approving.
    approval = html_page(browser.enter(started["user_code"]), 200)
    confirm = field(CONFIRM_RE, approval)
    for data, headers in forged(token):
        response = browser.http.post(
            "/device/decision",
            data={"confirm_token": confirm, "decision": "approve", **data},
            headers=headers,
        )
        html_page(response, 403)
    # Another browser session's token is not this one's.
    other = Browser(harness)
    other.signed_in(harness.authorize()["user_code"])
    other_token = field(CSRF_RE, html_page(other.open(), 200))
    assert other_token != token
    response = browser.http.post(
        "/device/decision",
        data={"confirm_token": confirm, "decision": "approve", "csrf_token": other_token},
    )
    html_page(response, 403)
    assert flow_state(harness, started) == "scanned"
    assert harness.poll(started["device_code"]).get_json()["error"] == "authorization_pending"

    # Signing out.
    for data, headers in forged(token):
        html_page(browser.http.post("/device/sign-out", data=data, headers=headers), 403)
    assert browser.cookie(SESSION_COOKIE)
    assert 'name="password"' not in html_page(browser.open(), 200)

    # The real form, same origin, works.
    response = browser.http.post(
        "/device/decision",
        data={"confirm_token": confirm, "decision": "approve", "csrf_token": token},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    html_page(response, 200)
    assert flow_state(harness, started) == "approved"


# --- Errors and headers --------------------------------------------------------------------
def test_errors_are_html_pages_never_json_or_a_bare_500(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser(harness)
    started = harness.authorize()
    approval = browser.signed_in(started["user_code"])
    token = field(CSRF_RE, approval)
    bad_choice = browser.http.post(
        "/device/decision",
        data={"csrf_token": token, "confirm_token": "x", "decision": "maybe"},
    )
    assert "Choose Approve or Deny." in html_page(bad_choice, 400)
    html_page(browser.decide(approval.replace(field(CONFIRM_RE, approval), "forged"), "deny"), 409)
    too_big = browser.http.post(
        "/device", data={"csrf_token": token, "user_code": "x" * (64 * 1024)}
    )
    html_page(too_big, 413)

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-internal-detail")

    monkeypatch.setattr(harness.services.approvals, "scan", explode)
    text = html_page(browser.enter(started["user_code"]), 500)
    assert "secret-internal-detail" not in text and "Traceback" not in text
    assert "secret-internal-detail" in caplog.text
    assert flow_state(harness, started) == "scanned"


def test_security_headers_on_every_page(harness: Harness) -> None:
    started = harness.authorize()
    browser = Browser(harness)
    responses = [
        harness.http.get(f"/login?client_id={harness.client_id}"),
        harness.http.get("/login?client_id=nope"),
        browser.open(),
        browser.open(started["verification_uri_complete"]),
        browser.http.post("/device", data={"user_code": "x", "username": "u", "password": "p"}),
        browser.http.post("/device/decision", data={}),
        browser.http.post("/device/sign-out"),
    ]
    approval_response = browser.sign_in_and_enter(started["user_code"])
    approval = approval_response.get_data(as_text=True)
    responses += [approval_response, browser.decide(approval, "deny")]
    for response in responses:
        assert response.mimetype == "text/html" or response.status_code == 303
        assert_page_headers(response)
    # The verification pages run no script at all.
    for response in responses[2:]:
        csp = response.headers["Content-Security-Policy"]
        assert "script-src" not in csp and "form-action 'self'" in csp
        assert "<script" not in response.get_data(as_text=True)
    assert harness.http.get("/").location == "/device"


def test_the_email_scope_is_listed_only_for_a_user_with_an_email(harness: Harness) -> None:
    username = f"erin-{uuid.uuid4().hex[:6]}"
    harness.services.accounts.create_user(username, PASSWORD, "Erin", email="erin@example.com")
    started = harness.authorize()
    page = html_page(
        Browser(harness).sign_in_and_enter(started["user_code"], username=username), 200
    )
    assert "Your email address" in page
