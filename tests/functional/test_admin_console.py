"""The admin web console (/admin) through the Flask test client, on each backend pair.

Sign-in and its cookie, no page without a session, CSRF refusals that change nothing, the
security headers, HTML (never JSON) errors, and that each console form really acts: a session
revoked here fails at the token endpoint and at the resource server.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from authserver import create_app
from authserver.domain.models import AuditFilter, FamilyFilter
from tests.functional.harness import Harness

ADMIN = "console-admin"
ADMIN_PASSWORD = "a long admin password"
SESSION_COOKIE = "authserver_admin"
LOGIN_COOKIE = "authserver_admin_login"
KNOWN_DEVICE_COOKIE = "authserver_admin_known"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture
def settings() -> dict[str, Any]:
    return {"login_attempts": 3}  # the admin sign-in limit: 3 failures per name and IP


@pytest.fixture
def console(harness: Harness) -> FlaskClient:
    """A fresh browser-like client (its own cookie jar) with an admin account on the server."""
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    return harness.http.application.test_client()


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


def sign_in(http: FlaskClient, password: str = ADMIN_PASSWORD) -> Any:
    form = http.get("/admin/login")
    assert form.status_code == 200
    return http.post(
        "/admin/login",
        data={"username": ADMIN, "password": password, "csrf_token": csrf_of(form.text)},
    )


def signed_in(http: FlaskClient) -> str:
    """Sign in; the CSRF token of the new console session."""
    response = sign_in(http)
    assert response.status_code == 303, response.text
    assert response.location == "/admin/"
    return csrf_of(http.get("/admin/").text)


def approved_session(harness: Harness) -> tuple[dict[str, Any], str]:
    """A QR login approved and redeemed: (the token response, its session id)."""
    started = harness.authorize()
    harness.approve(started)
    tokens = harness.poll(started["device_code"])
    assert tokens.status_code == 200, tokens.get_json()
    user = harness.services.accounts.find_user(harness.username)
    assert user is not None
    [view] = harness.services.administration.sessions(FamilyFilter(user_id=user.user_id))
    return dict(tokens.get_json()), view.family.id


def user_id_of(harness: Harness) -> str:
    user = harness.services.accounts.find_user(harness.username)
    assert user is not None
    return user.user_id


def session_active(harness: Harness, session_id: str) -> bool:
    return harness.services.administration.session(session_id).family.revoked_at is None


# --- No page without a session -------------------------------------------------------------
UNSIGNED = [
    ("GET", "/admin/"),
    ("GET", "/admin/clients"),
    ("GET", "/admin/audit"),
    ("GET", "/admin/users/anyone"),
    ("POST", "/admin/sessions/anything/revoke"),
    ("POST", "/admin/users/anyone/sessions/revoke"),
    ("POST", "/admin/users/anyone/devices/any/unbind"),
    ("POST", "/admin/clients/any/disable"),
    ("POST", "/admin/flows/cancel"),
    ("POST", "/admin/logout"),
]


def test_every_page_but_login_needs_a_session(console: FlaskClient) -> None:
    for method, path in UNSIGNED:
        response = console.open(path, method=method)
        assert response.status_code == 303, path
        assert response.location == "/admin/login?notice=signed_in_required", path
    page = console.get("/admin/login?notice=signed_in_required")
    assert page.status_code == 200
    assert "text/html" in page.content_type
    assert "Sign in to use the admin console." in page.text
    assert console.get("/admin").status_code == 308  # to /admin/, which redirects to login


def test_a_bogus_or_foreign_token_in_the_cookie_is_no_session(
    harness: Harness, console: FlaskClient
) -> None:
    phone = harness.sign_in()  # a device token is no admin credential
    for value in ("adm_forged", phone.token, "nothing"):
        console.set_cookie(SESSION_COOKIE, value, path="/admin")
        response = console.get("/admin/")
        assert response.status_code == 303
        assert response.location.startswith("/admin/login")
        # ... and the useless cookie is cleared.
        assert f"{SESSION_COOKIE}=;" in response.headers["Set-Cookie"]


def test_signed_out_session_stops_working(harness: Harness, console: FlaskClient) -> None:
    token = signed_in(console)
    session_cookie = console.get_cookie(SESSION_COOKIE, path="/admin")
    assert session_cookie is not None
    old_value = session_cookie.value

    response = console.post("/admin/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.location == "/admin/login?notice=signed_out"
    assert console.get_cookie(SESSION_COOKIE, path="/admin") is None
    assert "You are signed out." in console.get(response.location).text

    console.set_cookie(SESSION_COOKIE, old_value, path="/admin")  # a copied cookie is dead too
    assert console.get("/admin/").status_code == 303
    events = harness.services.administration.audit(AuditFilter(event="admin.signed_out"))
    assert len(events) == 1


# --- Signing in ----------------------------------------------------------------------------
def test_sign_in_sets_a_strict_http_only_cookie(harness: Harness, console: FlaskClient) -> None:
    response = sign_in(console)
    assert response.status_code == 303
    [session_header] = [
        h for h in response.headers.getlist("Set-Cookie") if h.startswith(SESSION_COOKIE + "=")
    ]
    attributes = {part.strip().split("=")[0].lower(): part for part in session_header.split(";")}
    assert "httponly" in attributes
    assert attributes["samesite"].strip() == "SameSite=Strict"
    assert attributes["path"].strip() == "Path=/admin"
    ttl = harness.services.config.admin_session_ttl
    assert attributes["max-age"].strip() == f"Max-Age={ttl}"
    assert "secure" not in attributes  # the test issuer is http://localhost
    assert session_header.split(";")[0].split("=", 1)[1].startswith("adm_")
    # The login form's double-submit cookie is dropped once used.
    assert any(h.startswith(LOGIN_COOKIE + "=;") for h in response.headers.getlist("Set-Cookie"))
    assert console.get("/admin/").status_code == 200


def test_cookies_are_secure_behind_an_https_issuer(harness: Harness) -> None:
    config = dataclasses.replace(harness.services.config, issuer="https://auth.example")
    app = create_app(services=dataclasses.replace(harness.services, config=config))
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    http = app.test_client()
    form = http.get("/admin/login", base_url="https://auth.example")
    assert "Secure" in form.headers["Set-Cookie"]
    response = http.post(
        "/admin/login",
        base_url="https://auth.example",
        headers={"Origin": "https://auth.example"},
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": csrf_of(form.text)},
    )
    assert response.status_code == 303
    cookies = response.headers.getlist("Set-Cookie")
    assert all("Secure" in c for c in cookies), cookies


def test_wrong_password_is_refused_and_audited(harness: Harness, console: FlaskClient) -> None:
    response = sign_in(console, password="not the password")
    assert response.status_code == 401
    assert "text/html" in response.content_type
    assert "Unknown admin or wrong password." in response.text
    assert console.get_cookie(SESSION_COOKIE, path="/admin") is None
    assert console.get("/admin/").status_code == 303
    events = harness.services.administration.audit(AuditFilter(event="admin.sign_in_failed"))
    assert [(e.actor.kind, e.ip) for e in events] == [("admin", "127.0.0.1")]


def test_sign_in_is_rate_limited(console: FlaskClient) -> None:
    for _ in range(3):
        assert sign_in(console, password="guessing wrong").status_code == 401
    response = sign_in(console)  # even the right password, once over the limit
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "text/html" in response.content_type
    assert console.get_cookie(SESSION_COOKIE, path="/admin") is None


def test_a_browser_that_signed_in_before_is_not_locked_out_by_others(
    harness: Harness, console: FlaskClient
) -> None:
    """The console's known-device cookie: HttpOnly, Strict, /admin only; with it, the admin's
    own browser gets in while another browser at the same address is refused."""
    signed_in(console)
    cookie = console.get_cookie(KNOWN_DEVICE_COOKIE, path="/admin")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    console.post("/admin/logout", data={"csrf_token": csrf_of(console.get("/admin/").text)})
    attacker = harness.http.application.test_client()
    for _ in range(3):
        assert sign_in(attacker, password="guessing wrong").status_code == 401
    assert sign_in(attacker).status_code == 429  # this browser, this address: over the limit
    assert sign_in(console).status_code == 303  # the admin's browser: same address, known


def test_login_form_needs_its_double_submit_cookie(console: FlaskClient) -> None:
    form = console.get("/admin/login")
    token = csrf_of(form.text)
    login_cookie = console.get_cookie(LOGIN_COOKIE, path="/admin/login")
    assert login_cookie is not None and login_cookie.value == token
    credentials = {"username": ADMIN, "password": ADMIN_PASSWORD}

    for data in (
        {**credentials},
        {**credentials, "csrf_token": "guess"},
        {**credentials, "csrf_token": "ü"},
    ):
        response = console.post("/admin/login", data=data)
        assert response.status_code == 403
        assert "nothing was changed" in response.text
    # A cross-site login (login CSRF) fails even with a matching pair.
    response = console.post(
        "/admin/login",
        data={**credentials, "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    # Without the cookie (another browser), the field alone is worth nothing.
    console.delete_cookie(LOGIN_COOKIE, path="/admin/login")
    response = console.post("/admin/login", data={**credentials, "csrf_token": token})
    assert response.status_code == 403
    assert console.get_cookie(SESSION_COOKIE, path="/admin") is None


# --- CSRF on signed-in forms ---------------------------------------------------------------
def test_forged_posts_change_nothing(harness: Harness, console: FlaskClient) -> None:
    _, session_id = approved_session(harness)
    token = signed_in(console)
    path = f"/admin/sessions/{session_id}/revoke"

    forged: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, {}),  # no token
        ({"csrf_token": ""}, {}),
        ({"csrf_token": "0" * 64}, {}),
        ({"csrf_token": "é" * 64}, {}),  # non-ASCII: refused, not a crash
        ({"csrf_token": token}, {"Origin": "https://evil.example"}),
        ({"csrf_token": token}, {"Origin": "null"}),
        ({"csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
    ]
    for data, headers in forged:
        response = console.post(path, data=data, headers=headers)
        assert response.status_code == 403, (data, headers)
        assert "text/html" in response.content_type
        assert "nothing was changed" in response.text
        assert session_active(harness, session_id)
    # Another admin session's token is not this one's.
    other = harness.http.application.test_client()
    other_token = signed_in(other)
    assert other_token != token
    assert console.post(path, data={"csrf_token": other_token}).status_code == 403
    assert session_active(harness, session_id)
    # Logging out is a POST too.
    assert console.post("/admin/logout").status_code == 403
    assert console.get("/admin/").status_code == 200

    response = console.post(
        path,
        data={"csrf_token": token, "confirmed": "yes"},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303
    assert not session_active(harness, session_id)


# --- Headers and errors --------------------------------------------------------------------
def test_security_headers_on_every_console_response(console: FlaskClient) -> None:
    responses = [console.get("/admin/login")]
    signed_in(console)
    responses += [
        console.get("/admin/"),
        console.get("/admin/users/no-such-user"),
        console.get("/admin/audit?before=x"),
        console.post("/admin/clients/x/disable"),  # refused: no CSRF token
    ]
    for response in responses:
        assert "text/html" in response.content_type
        assert response.headers["Cache-Control"] == "no-store"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self';" in csp and "unsafe" not in csp  # its one script, nothing inline
        assert "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null`.
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        # One external script of its own, nothing inline.
        scripts = re.findall(r"<script[^>]*>", response.text)
        assert scripts in ([], ['<script src="/admin/console.js" defer>']), scripts
    css = console.get("/admin/console.css")
    assert css.status_code == 200
    assert css.content_type.startswith("text/css")


def test_errors_are_html_pages_not_json(console: FlaskClient) -> None:
    token = signed_in(console)
    cases = [
        (console.get("/admin/users/no-such-user"), 404, "No such user."),
        (console.get("/admin/audit?before=x"), 400, "non-negative integer"),
        (console.get("/admin/audit?before=%C2%B2"), 400, "non-negative integer"),
        (console.get("/admin/users/a%00b"), 404, "No such resource"),
        (
            console.post(
                "/admin/sessions/nope/revoke", data={"csrf_token": token, "confirmed": "yes"}
            ),
            404,
            "session",
        ),
        (
            console.post("/admin/flows/cancel", data={"csrf_token": token, "user_code": "BCDF"}),
            404,
            "No pending login request",
        ),
        (
            console.post(
                "/admin/clients/nope/disable", data={"csrf_token": token, "confirmed": "yes"}
            ),
            404,
            "client",
        ),
    ]
    for response, status, text in cases:
        assert response.status_code == status
        assert "text/html" in response.content_type
        assert text in response.text
    # The JSON admin API next door still speaks JSON.
    api = console.get("/admin/v1/clients")
    assert api.status_code == 401
    assert api.get_json()["error"] == "invalid_admin_credentials"


def test_user_supplied_text_is_escaped(harness: Harness, console: FlaskClient) -> None:
    harness.services.accounts.create_user("mallory", "correct horse battery", "<b>Mallory</b>")
    signed_in(console)
    page = console.get("/admin/?q=<b>")
    assert page.status_code == 200
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in page.text
    assert "<b>Mallory" not in page.text


# --- The forms really act ------------------------------------------------------------------
def test_revoking_a_session_in_the_console_revokes_its_tokens(
    harness: Harness, console: FlaskClient
) -> None:
    tokens, session_id = approved_session(harness)
    assert harness.http.get("/api/v1/me", headers=bearer(tokens)).status_code == 200
    token = signed_in(console)
    user_id = user_id_of(harness)

    found = console.get("/admin/", query_string={"q": harness.username[:5]})
    assert f'href="/admin/users/{user_id}"' in found.text
    page = console.get(f"/admin/users/{user_id}")
    row = session_row(page.text, session_id)
    for fact in ("Test PC app", "Test phone", "ios", "203.0.113.7", "TestPC/1.0", "Active"):
        assert fact in row, fact

    # A destructive action asks first, on a page of its own, and changes nothing until confirmed.
    asked = console.post(f"/admin/sessions/{session_id}/revoke", data={"csrf_token": token})
    assert asked.status_code == 200 and "Are you sure?" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert "Active" in session_row(console.get(f"/admin/users/{user_id}").text, session_id)
    response = console.post(
        f"/admin/sessions/{session_id}/revoke", data={"csrf_token": token, "confirmed": "yes"}
    )
    assert response.status_code == 303
    assert response.location == f"/admin/users/{user_id}?notice=session_revoked#sessions"
    page = console.get(response.location)
    assert "The session was revoked." in page.text
    row = session_row(page.text, session_id)
    assert "Revoked" in row and "(admin)" in row
    assert ">Revoke<" not in row

    refreshed = harness.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.get_json()["error"] == "invalid_grant"
    assert harness.http.get("/api/v1/me", headers=bearer(tokens)).status_code == 401
    # The audit trail shows it, with the admin as actor, on the user's page.
    [event] = harness.services.administration.audit(AuditFilter(family_id=session_id))[:1]
    assert event.event == "token.revoked" and event.actor.kind == "admin"
    assert "token.revoked" in page.text


def test_every_other_console_action(harness: Harness, console: FlaskClient) -> None:
    token = signed_in(console)
    administration = harness.services.administration
    user_id = user_id_of(harness)

    def post(path: str, **form: str) -> Any:
        response = console.post(path, data={"csrf_token": token, "confirmed": "yes", **form})
        assert response.status_code == 303, response.text
        page = console.get(response.location)
        assert page.status_code == 200
        return page

    def active(**where: Any) -> int:
        views = administration.sessions(FamilyFilter(active_only=True, **where))
        return len(views)

    # Revoke all sessions of a user.
    approved_session(harness)
    page = post(f"/admin/users/{user_id}/sessions/revoke")
    assert "Sessions revoked: 1." in page.text
    assert active(user_id=user_id) == 0

    # Sign a phone out; then revoke everything approved from it.
    started = harness.authorize()
    phone = harness.approve(started, harness.sign_in("phone-2"))
    assert harness.poll(started["device_code"]).status_code == 200
    device = next(d for d in administration.devices(user_id) if d.device_id == "phone-2")
    page = post(f"/admin/users/{user_id}/devices/{device.id}/unbind")
    assert "The phone was signed out." in page.text
    assert harness.scan(phone, user_code="BCDF-GHJK").status_code == 401
    assert active(user_id=user_id) == 1  # unbinding keeps the PC sessions
    page = post(f"/admin/users/{user_id}/devices/{device.id}/revoke")
    assert "sessions revoked: 1." in page.text
    assert active(user_id=user_id) == 0
    # A device of another user is not reachable through this user's page.
    other = harness.create_user()
    other_id = harness.services.accounts.find_user(other)
    assert other_id is not None
    refused = console.post(
        f"/admin/users/{other_id.user_id}/devices/{device.id}/revoke",
        data={"csrf_token": token, "confirmed": "yes"},
    )
    assert refused.status_code == 404

    # Clients: revoke all sessions, disable, enable.
    approved_session_for_client = harness.authorize()
    harness.approve(approved_session_for_client)
    assert harness.poll(approved_session_for_client["device_code"]).status_code == 200
    clients_page = console.get("/admin/clients")
    assert "Test PC app" in clients_page.text and harness.client_id in clients_page.text
    page = post(f"/admin/clients/{harness.client_id}/sessions/revoke")
    assert "Sessions revoked: 1." in page.text
    page = post(f"/admin/clients/{harness.client_id}/disable")
    assert "The client was disabled" in page.text
    denied = harness.http.post("/oauth/device_authorization", data={"client_id": harness.client_id})
    assert denied.status_code in (400, 401)
    page = post(f"/admin/clients/{harness.client_id}/enable")
    assert "The client was enabled." in page.text

    # Cancel a pending QR login by its user code: the PC is told access_denied.
    started = harness.authorize()
    page = post("/admin/flows/cancel", user_code=started["user_code"])
    assert "The pending login request was cancelled." in page.text
    assert harness.poll(started["device_code"]).get_json()["error"] == "access_denied"

    # The audit page and its filters.
    audit = console.get("/admin/audit", query_string={"event": "client.disabled"})
    assert audit.status_code == 200
    assert "client.disabled" in audit.text and "client.enabled" not in audit.text
    home = console.get("/admin/")
    assert "flow.cancelled" in home.text


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def session_row(html: str, session_id: str) -> str:
    start = html.index(f'<tr id="session-{session_id}"')
    return html[start : html.index("</tr>", start)]
