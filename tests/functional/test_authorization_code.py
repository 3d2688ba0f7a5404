"""The authorization code flow with PKCE over HTTP (OIDC Core §3.1, RFC 6749 §4.1, RFC 7636,
RFC 9700 §2.1.1), whose sign-in step is the QR login: the sign-in page, the phone's scan and
approval, the completion, the code's exchange, browser sessions (prompt, max_age), logout, and
the hostile requests each rule is there for."""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from freezegun import freeze_time

from authserver.domain.authorization import s256
from authserver.domain.flow import DEVICE_CODE_GRANT
from tests.functional.harness import ISSUER, PASSWORD, Harness, Phone, basic
from tests.functional.test_oidc import verified
from tests.functional.test_pages import Browser, html_page

REDIRECT = "https://website.example/callback"
LOGOUT_DONE = "https://website.example/signed-out"
SCOPE = "openid profile email offline_access"
one_backend = pytest.mark.parametrize("backend", ["embedded+sqlite"], indirect=True)


@pytest.fixture
def site(harness: Harness) -> Harness:
    """The harness with a public website client and a user with an email."""
    client, _ = harness.services.clients.create(
        "Example website",
        confidential=False,
        scope=SCOPE,
        redirect_uris=[REDIRECT, "http://127.0.0.1:9000/cb"],
        post_logout_redirect_uris=[LOGOUT_DONE],
        grant_types=["authorization_code", "refresh_token"],
    )
    username = f"wendy-{uuid.uuid4().hex[:6]}"
    harness.services.accounts.create_user(
        username, PASSWORD, "Wendy Web", email="wendy@example.com", email_verified=True
    )
    harness.client_id, harness.username = client.client_id, username
    return harness


class Pkce:
    def __init__(self) -> None:
        self.verifier = secrets.token_urlsafe(48)
        self.challenge = s256(self.verifier)


def authorize(h: Harness, pkce: Pkce | None = None, **params: str) -> Any:
    """GET /authorize as a website's redirect sends the browser there."""
    query: dict[str, str] = {
        "response_type": "code",
        "client_id": h.client_id,
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "st-" + uuid.uuid4().hex[:8],
        "nonce": "n-" + uuid.uuid4().hex[:8],
    }
    if pkce is not None:
        query |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    query |= params
    return h.http.get("/authorize?" + urlencode({k: v for k, v in query.items() if v != ""}))


def page_fields(response: Any) -> tuple[str, str]:
    """(authorization id, user code) of a sign-in page."""
    assert response.status_code == 200, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    authorization = re.search(r'data-authorization="([0-9a-f]{32})"', text)
    user_code = re.search(r'id="user-code">([B-Z]{4}-[B-Z]{4})<', text)
    assert authorization and user_code, text
    return authorization.group(1), user_code.group(1)


def approve(
    h: Harness, user_code: str, phone: Phone | None = None, action: str = "confirm"
) -> Phone:
    phone = phone or h.sign_in(f"phone-{uuid.uuid4().hex[:6]}")
    scanned = h.scan(phone, user_code=user_code)
    assert scanned.status_code == 200, scanned.get_json()
    screen = scanned.get_json()
    decided = h.decide(phone, screen["confirm_token"], action)
    assert decided.status_code == 200, decided.get_json()
    return phone


def complete(h: Harness, authorization_id: str) -> Any:
    return h.http.post("/authorize/complete", data={"authorization": authorization_id})


def redirected(response: Any, expected_status: int = 303) -> dict[str, str]:
    """The query of a redirect to the registered URI."""
    assert response.status_code == expected_status, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    query = parse_qs(urlsplit(location).query)
    assert all(len(v) == 1 for v in query.values())
    return {k: v[0] for k, v in query.items()}


def exchange(h: Harness, code: str, verifier: str | None, **extra: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": h.client_id,
        **extra,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return h.http.post("/oauth/token", data={k: v for k, v in data.items() if v != ""})


def sign_in(h: Harness, pkce: Pkce, phone: Phone | None = None, **params: str) -> dict[str, str]:
    """The whole QR sign-in: page, scan, approve, completion; the redirect's query."""
    authorization_id, user_code = page_fields(authorize(h, pkce, **params))
    approve(h, user_code, phone)
    return redirected(complete(h, authorization_id))


def event_names(h: Harness, client_id: str) -> list[str]:
    from authserver.domain.models import AuditFilter

    events = h.services.administration.audit(AuditFilter(client_id=client_id, limit=100))
    return [e.event for e in reversed(events)]


# --- The QR sign-in, end to end over HTTP ----------------------------------------------------
def test_a_website_signs_a_user_in_by_qr_scan_with_pkce(site: Harness) -> None:
    h, pkce = site, Pkce()
    page = authorize(h, pkce, state="xyz", nonce="n-0S6_WzA2Mj")
    authorization_id, user_code = page_fields(page)
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "form-action 'self' https://website.example" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    # The device code lives in an HttpOnly cookie for /authorize only, never in the page.
    cookie = page.headers["Set-Cookie"]
    assert f"qa_{authorization_id}=" in cookie and "HttpOnly" in cookie
    assert "Path=/authorize" in cookie and "SameSite=Strict" in cookie
    device_code = cookie.split("=", 1)[1].split(";", 1)[0]
    assert device_code not in page.get_data(as_text=True)

    status = h.http.post("/authorize/status", data={"authorization": authorization_id})
    assert status.get_json()["status"] == "pending"
    phone = h.sign_in("phone-a")
    screen = h.scan(phone, user_code=user_code).get_json()
    assert screen["client"]["name"] == "Example website"  # the same approval screen
    status = h.http.post("/authorize/status", data={"authorization": authorization_id})
    assert status.get_json()["status"] == "scanned"
    assert status.get_json()["scanner"]["name"] == "W*** W***"
    assert h.decide(phone, screen["confirm_token"]).status_code == 200

    done = complete(h, authorization_id)
    query = redirected(done)
    assert query["state"] == "xyz" and query["iss"] == ISSUER  # RFC 9207
    assert set(query) == {"code", "state", "iss"}
    session_cookie = next(c for c in done.headers.getlist("Set-Cookie") if "authserver_sso" in c)
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie

    tokens = exchange(h, query["code"], pkce.verifier)
    assert tokens.status_code == 200, tokens.get_json()
    body = tokens.get_json()
    assert body["scope"] == SCOPE and body["refresh_token"]
    claims = verified(h, body["id_token"])
    assert claims["iss"] == ISSUER and claims["aud"] == h.client_id
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["amr"] == ["mca", "user"] and claims["acr"] == "phone"
    assert {"sub", "exp", "iat", "auth_time"} <= set(claims)
    assert claims["email"] == "wendy@example.com"
    me = h.http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.get_json()["preferred_username"] == h.username
    refreshed = h.refresh(body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()

    assert event_names(h, h.client_id) == [
        "flow.created",
        "flow.scanned",
        "flow.approved",
        "flow.redeemed",
        "browser_session.started",
        "authorization_code.issued",
        "token.issued",
        "token.refreshed",
    ]


def test_the_sign_in_flow_cannot_be_redeemed_by_a_token_poll_or_followed_by_the_pc_channel(
    site: Harness,
) -> None:
    h = site
    page = authorize(h, Pkce())
    authorization_id, user_code = page_fields(page)
    device_code = page.headers["Set-Cookie"].split("=", 1)[1].split(";", 1)[0]
    approve(h, user_code)
    polled = h.http.post(
        "/oauth/token",
        data={
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": device_code,
            "client_id": h.client_id,
        },
    )
    assert polled.status_code in (400, 401) and "access_token" not in polled.get_json()
    status = h.http.post(
        "/oauth/device_status", data={"device_code": device_code, "client_id": h.client_id}
    )
    assert status.status_code in (400, 401)
    # Nor by another browser: the completion needs this browser's cookie.
    other = h.http.application.test_client()
    refused = other.post("/authorize/complete", data={"authorization": authorization_id})
    assert refused.status_code == 400 and "Location" not in refused.headers
    assert "code" in redirected(complete(h, authorization_id))


def test_a_denial_on_the_phone_is_access_denied_at_the_redirect_uri(site: Harness) -> None:
    h = site
    authorization_id, user_code = page_fields(authorize(h, Pkce(), state="s1"))
    approve(h, user_code, action="deny")
    query = redirected(complete(h, authorization_id))
    assert query["error"] == "access_denied" and query["state"] == "s1"
    assert "code" not in query and "authserver_sso" not in str(
        complete(h, authorization_id).headers
    )


def test_completing_twice_issues_one_code(site: Harness) -> None:
    h = site
    authorization_id, user_code = page_fields(authorize(h, Pkce()))
    approve(h, user_code)
    assert "code" in redirected(complete(h, authorization_id))
    again = complete(h, authorization_id)
    assert again.status_code == 400 and "Location" not in again.headers


@one_backend
def test_the_device_page_with_a_password_is_the_fallback(site: Harness) -> None:
    """No app at hand: the code typed on /device in another browser, with the password."""
    h, pkce = site, Pkce()
    authorization_id, user_code = page_fields(authorize(h, pkce))
    other = Browser(h)
    approval = other.signed_in(user_code)
    assert "Example website" in approval  # the same approval facts
    assert "You approved" in html_page(other.decide(approval, "approve"), 200)
    code = redirected(complete(h, authorization_id))["code"]
    claims = verified(h, exchange(h, code, pkce.verifier).get_json()["id_token"])
    assert claims["amr"] == ["pwd"] and claims["acr"] == "password"


@one_backend
def test_completing_before_the_approval_changes_nothing(site: Harness) -> None:
    h = site
    authorization_id, user_code = page_fields(authorize(h, Pkce()))
    early = complete(h, authorization_id)
    assert early.status_code == 409 and "Location" not in early.headers
    approve(h, user_code)
    assert "code" in redirected(complete(h, authorization_id))


@one_backend
def test_a_completion_from_another_site_is_refused(site: Harness) -> None:
    h = site
    authorization_id, user_code = page_fields(authorize(h, Pkce()))
    approve(h, user_code)
    forged = h.http.post(
        "/authorize/complete",
        data={"authorization": authorization_id},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert forged.status_code == 403 and "Location" not in forged.headers


# --- The code at the token endpoint ----------------------------------------------------------
def test_a_replayed_code_is_refused_and_revokes_what_its_first_use_issued(site: Harness) -> None:
    h, pkce = site, Pkce()
    code = sign_in(h, pkce)["code"]
    first = exchange(h, code, pkce.verifier)
    assert first.status_code == 200
    replay = exchange(h, code, pkce.verifier)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: the tokens of the first use are revoked.
    assert h.refresh(first.get_json()["refresh_token"]).status_code == 400
    bearer = {"Authorization": f"Bearer {first.get_json()['access_token']}"}
    assert h.http.get("/userinfo", headers=bearer).status_code == 401
    assert "authorization_code.replayed" in event_names(h, h.client_id)


def test_a_wrong_or_missing_pkce_verifier_gets_nothing(site: Harness) -> None:
    h, pkce = site, Pkce()
    code = sign_in(h, pkce)["code"]
    for verifier in (Pkce().verifier, None, pkce.challenge, "short"):
        refused = exchange(h, code, verifier)
        assert refused.status_code == 400, verifier
        assert refused.get_json()["error"] == "invalid_grant"
    assert exchange(h, code, pkce.verifier).status_code == 200


@one_backend
def test_a_code_is_bound_to_its_client_and_redirect_uri(site: Harness) -> None:
    h, pkce = site, Pkce()
    code = sign_in(h, pkce)["code"]
    other, _ = h.services.clients.create(
        "Other website",
        confidential=False,
        scope=SCOPE,
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code"],
    )
    stolen = exchange(h, code, pkce.verifier, client_id=other.client_id)
    assert stolen.status_code == 400 and stolen.get_json()["error"] == "invalid_grant"
    moved = exchange(h, code, pkce.verifier, redirect_uri="http://127.0.0.1:9000/cb")
    assert moved.status_code == 400 and moved.get_json()["error"] == "invalid_grant"
    # Neither spent it: its own client still exchanges it.
    assert exchange(h, code, pkce.verifier).status_code == 200


@one_backend
def test_a_code_lives_a_minute(site: Harness) -> None:
    h, pkce = site, Pkce()
    with freeze_time("2026-06-01 10:00:00") as frozen:
        code = sign_in(h, pkce)["code"]
        frozen.tick(61)
        late = exchange(h, code, pkce.verifier)
        assert late.status_code == 400 and late.get_json()["error"] == "invalid_grant"


@one_backend
def test_a_confidential_website_authenticates_and_may_skip_pkce(site: Harness) -> None:
    h = site
    client, secret = h.services.clients.create(
        "Confidential website",
        confidential=True,
        scope="openid profile",
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code"],
    )
    h.client_id = client.client_id
    authorization_id, user_code = page_fields(authorize(h, None, scope="openid profile"))
    approve(h, user_code)
    code = redirected(complete(h, authorization_id))["code"]
    no_secret = exchange(h, code, None)
    assert no_secret.status_code == 401 and no_secret.get_json()["error"] == "invalid_client"
    # A verifier for a code issued without a challenge is a downgrade attempt (RFC 9700 §4.8.2).
    downgrade = h.http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": Pkce().verifier,
        },
        headers=basic(client.client_id, secret),
    )
    assert downgrade.status_code == 400
    tokens = h.http.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers=basic(client.client_id, secret),
    )
    assert tokens.status_code == 200, tokens.get_json()
    assert "refresh_token" not in tokens.get_json()  # openid without offline_access


# --- Hostile and malformed authorization requests --------------------------------------------
@one_backend
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        REDIRECT + "?extra=1",  # RFC 9700 §4.1.3: exact match, nothing looser
        REDIRECT + "/",
        "HTTPS://website.example/callback",
        "",
    ],
)
def test_an_unregistered_redirect_uri_gets_a_page_never_a_redirect(
    site: Harness, redirect_uri: str
) -> None:
    response = authorize(site, Pkce(), redirect_uri=redirect_uri)
    if redirect_uri == "":
        response = site.http.get(
            "/authorize?"
            + urlencode({"response_type": "code", "client_id": site.client_id, "state": "s"})
        )
    assert response.status_code == 400 and "Location" not in response.headers
    assert "not registered" in response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/html")


@one_backend
def test_a_repeated_redirect_uri_gets_a_page(site: Harness) -> None:
    query = urlencode(
        [
            ("response_type", "code"),
            ("client_id", site.client_id),
            ("redirect_uri", REDIRECT),
            ("redirect_uri", "https://evil.example/cb"),
        ]
    )
    response = site.http.get("/authorize?" + query)
    assert response.status_code == 400 and "Location" not in response.headers


@one_backend
@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge": "", "code_challenge_method": ""}, "invalid_request"),  # no PKCE
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),  # RFC 7636 defaults to plain
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),  # no browser session yet
        ({"max_age": "soon"}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "invalid_request"),
    ],
)
def test_a_bad_request_is_redirected_as_an_error_with_its_state(
    site: Harness, params: dict[str, str], error: str
) -> None:
    response = authorize(site, Pkce(), state="keep-me", **params)
    query = redirected(response, 302)
    assert query["error"] == error and query["state"] == "keep-me" and query["iss"] == ISSUER
    assert "code" not in query


@one_backend
def test_a_client_without_the_code_grant_is_unauthorized_client(site: Harness) -> None:
    h = site
    client, _ = h.services.clients.create(
        "Device app with a redirect", confidential=False, scope=SCOPE, redirect_uris=[REDIRECT]
    )
    h.client_id = client.client_id
    assert redirected(authorize(h, Pkce()), 302)["error"] == "unauthorized_client"


@one_backend
def test_unknown_and_disabled_clients_get_a_page(site: Harness) -> None:
    h = site
    h.services.clients.set_disabled(h.client_id, True)
    response = authorize(h, Pkce())
    assert response.status_code == 403 and "Location" not in response.headers
    h.client_id = "no-such-client"
    response = authorize(h, Pkce())
    assert response.status_code == 400 and "Location" not in response.headers


@one_backend
def test_a_repeated_parameter_is_invalid_request(site: Harness) -> None:
    pkce = Pkce()
    query = urlencode(
        [
            ("response_type", "code"),
            ("client_id", site.client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", pkce.challenge),
            ("code_challenge_method", "S256"),
            ("scope", "openid"),
            ("scope", "openid email"),
        ]
    )
    assert redirected(site.http.get("/authorize?" + query), 302)["error"] == "invalid_request"


@one_backend
def test_post_to_the_authorization_endpoint_works_as_get(site: Harness) -> None:
    pkce = Pkce()
    response = site.http.post(
        "/authorize",
        data={
            "response_type": "code",
            "client_id": site.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        },
    )
    page_fields(response)


# --- The browser session: prompt, max_age, a second website, logout ---------------------------
def test_prompt_none_with_a_session_returns_a_code_at_once(site: Harness) -> None:
    h = site
    phone = h.sign_in("phone-s")
    sign_in(h, Pkce(), phone)
    pkce = Pkce()
    query = redirected(authorize(h, pkce, prompt="none", state="quiet", nonce="n2"), 302)
    assert query["state"] == "quiet" and "code" in query
    tokens = exchange(h, query["code"], pkce.verifier)
    assert tokens.status_code == 200, tokens.get_json()
    claims = verified(h, tokens.get_json()["id_token"])
    assert claims["nonce"] == "n2" and claims["amr"] == ["mca", "user"]

    # A second website signs in from the same session, without a QR code.
    other, _ = h.services.clients.create(
        "Second website",
        confidential=False,
        scope=SCOPE,
        redirect_uris=[REDIRECT],
        grant_types=["authorization_code"],
    )
    h.client_id = other.client_id
    pkce = Pkce()
    query = redirected(authorize(h, pkce), 302)
    second = exchange(h, query["code"], pkce.verifier)
    assert verified(h, second.get_json()["id_token"], other.client_id)["sub"] == claims["sub"]

    # prompt=login asks for the QR login again, whatever the session.
    page_fields(authorize(h, Pkce(), prompt="login"))

    # The phone that approved signs out: the session no longer stands.
    assert h.http.delete("/mobile/v1/sessions", headers=phone.headers()).status_code in (200, 204)
    assert redirected(authorize(h, Pkce(), prompt="none"), 302)["error"] == "login_required"


@one_backend
def test_max_age_asks_for_a_fresh_sign_in_when_the_last_one_is_older(site: Harness) -> None:
    h = site
    with freeze_time("2026-06-01 10:00:00") as frozen:
        sign_in(h, Pkce())
        frozen.tick(120)
        assert "code" in redirected(authorize(h, Pkce(), max_age="300"), 302)
        page_fields(authorize(h, Pkce(), max_age="60"))
        query = redirected(authorize(h, Pkce(), max_age="60", prompt="none"), 302)
        assert query["error"] == "login_required"


def test_logout_with_an_id_token_hint_ends_the_session_and_returns(site: Harness) -> None:
    h, pkce = site, Pkce()
    id_token = exchange(h, sign_in(h, pkce)["code"], pkce.verifier).get_json()["id_token"]
    assert "code" in redirected(authorize(h, Pkce(), prompt="none"), 302)

    refused = h.http.get(
        "/logout?"
        + urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": REDIRECT + "x"})
    )
    assert refused.status_code == 400 and "Location" not in refused.headers

    out = h.http.get(
        "/logout?"
        + urlencode(
            {"id_token_hint": id_token, "post_logout_redirect_uri": LOGOUT_DONE, "state": "bye"}
        )
    )
    assert out.status_code == 302
    assert out.headers["Location"] == LOGOUT_DONE + "?state=bye"
    assert redirected(authorize(h, Pkce(), prompt="none"), 302)["error"] == "login_required"
    assert "browser_session.ended" in event_names(h, h.client_id)


@one_backend
def test_logout_without_a_hint_asks_first(site: Harness) -> None:
    h = site
    sign_in(h, Pkce())
    asked = h.http.get("/logout?" + urlencode({"client_id": h.client_id}))
    assert asked.status_code == 200 and "Sign out?" in asked.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', asked.get_data(as_text=True))
    assert csrf is not None
    # Still signed in: a link alone signs nobody out.
    assert "code" in redirected(authorize(h, Pkce(), prompt="none"), 302)
    forged = h.http.post("/logout", data={"csrf_token": "forged", "client_id": h.client_id})
    assert forged.status_code == 200 and "Sign out?" in forged.get_data(as_text=True)
    done = h.http.post("/logout", data={"csrf_token": csrf.group(1), "client_id": h.client_id})
    assert done.status_code == 200 and "Signed out" in done.get_data(as_text=True)
    assert redirected(authorize(h, Pkce(), prompt="none"), 302)["error"] == "login_required"


# --- Discovery -------------------------------------------------------------------------------
@one_backend
def test_discovery_advertises_the_code_flow(site: Harness) -> None:
    meta = site.http.get("/.well-known/openid-configuration").get_json()
    assert meta["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert meta["end_session_endpoint"] == f"{ISSUER}/logout"
    assert "authorization_code" in meta["grant_types_supported"]
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True


@one_backend
@pytest.mark.parametrize("settings", [{"device_authorizations_per_minute": 1}])
def test_a_rate_limited_sign_in_is_temporarily_unavailable_at_the_redirect_uri(
    site: Harness,
) -> None:
    page_fields(authorize(site, Pkce()))
    query = redirected(authorize(site, Pkce(), state="later"), 302)
    assert query["error"] == "temporarily_unavailable" and query["state"] == "later"


@one_backend
def test_revoking_the_users_sessions_ends_the_browser_session_and_its_codes(site: Harness) -> None:
    h, pkce = site, Pkce()
    sign_in(h, Pkce())
    code = redirected(authorize(h, pkce, prompt="none"), 302)["code"]
    user = h.services.accounts.find_user(h.username)
    assert user is not None
    with freeze_time(timedelta(seconds=1), tick=True):  # strictly after the sign-in
        h.services.administration.revoke_user_sessions(user.user_id, admin_of(h), "198.51.100.9")
        late = exchange(h, code, pkce.verifier)
        assert late.status_code == 400 and late.get_json()["error"] == "invalid_grant"
        assert redirected(authorize(h, Pkce(), prompt="none"), 302)["error"] == "login_required"


def admin_of(h: Harness) -> Any:
    return h.services.admin_auth.create(f"root-{uuid.uuid4().hex[:6]}", "admin password 123")
