"""OpenID Connect over HTTP, on the embedded store + SQLite and Redis + PostgreSQL: discovery,
scopes that mean something, ID tokens from the device grant and on refresh, and userinfo."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata
from freezegun import freeze_time

from authserver.domain.models import User
from tests.functional.harness import ISSUER, PASSWORD, Harness
from tests.functional.test_pages import Browser, html_page

OIDC_SCOPES = "openid profile email offline_access"
APPROVED_AT = "2026-03-01 09:00:00"  # the phone approves
REDEEMED_AT = "2026-03-01 09:00:07"  # the PC's next poll
# For what does not depend on the stores: one backend is enough.
one_backend = pytest.mark.parametrize("backend", ["embedded+sqlite"], indirect=True)


@pytest.fixture
def oidc(harness: Harness) -> Harness:
    """The harness with a client that may ask for every OpenID scope and a user with an email."""
    client, _ = harness.services.clients.create("OIDC app", confidential=False, scope=None)
    username = f"olga-{uuid.uuid4().hex[:6]}"
    harness.services.accounts.create_user(
        username, PASSWORD, "Olga Example", email="olga@example.com", email_verified=True
    )
    harness.client_id, harness.username = client.client_id, username
    return harness


def user(harness: Harness) -> User:
    found = harness.services.accounts.find_user(harness.username)
    assert found is not None
    return found


def verified(harness: Harness, token: str, audience: str | None = None) -> dict[str, Any]:
    """The claims of an ID token, checked as a relying party checks it (OIDC Core §3.1.3.7)."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["typ"] == "JWT"
    jwks = harness.http.get("/oauth/jwks").get_json()
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience=audience or harness.client_id,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},  # time is frozen in the past
    )
    return claims


def sign_in(harness: Harness, scope: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A QR login approved on the phone at APPROVED_AT and redeemed at REDEEMED_AT."""
    with freeze_time(APPROVED_AT) as frozen:
        started = harness.authorize(scope=scope)
        harness.approve(started)
        frozen.move_to(REDEEMED_AT)
        response = harness.poll(started["device_code"])
    assert response.status_code == 200, response.get_json()
    return started, dict(response.get_json())


def unix(text: str) -> int:
    """Unix seconds of a UTC time written as freeze_time takes it."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


# --- Discovery ----------------------------------------------------------------------------
@one_backend
def test_discovery_has_every_required_field_and_agrees_with_rfc_8414(harness: Harness) -> None:
    oidc = harness.http.get("/.well-known/openid-configuration")
    rfc8414 = harness.http.get("/.well-known/oauth-authorization-server")
    assert oidc.status_code == rfc8414.status_code == 200
    meta = oidc.get_json()
    assert meta == rfc8414.get_json()  # one document: they cannot disagree
    assert meta["issuer"] == ISSUER
    assert meta["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert meta["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert meta["userinfo_endpoint"] == f"{ISSUER}/userinfo"
    assert meta["jwks_uri"] == f"{ISSUER}/oauth/jwks"
    assert meta["device_authorization_endpoint"] == f"{ISSUER}/oauth/device_authorization"
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["subject_types_supported"] == ["public"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
    assert set(meta["scopes_supported"]) >= {"openid", "profile", "email", "offline_access"}
    assert set(meta["claims_supported"]) >= {
        "sub", "iss", "aud", "exp", "iat", "auth_time", "amr", "acr",
        "name", "preferred_username", "email", "email_verified",
    }  # fmt: skip
    assert meta["acr_values_supported"] == ["phone", "password"]
    assert meta["request_uri_parameter_supported"] is False  # its default would be true

    # Authlib's OpenID Provider metadata class finds nothing wrong but the one check it makes
    # of RS256, which OIDC Core §15.1 does not require of an OP that signs with one algorithm
    # and returns ID tokens only from the token endpoint.
    https = {
        k: v.replace("http://", "https://", 1) if isinstance(v, str) else v for k, v in meta.items()
    }
    with pytest.raises(ValueError, match="RS256"):
        OpenIDProviderMetadata(https).validate()
    OpenIDProviderMetadata({**https, "id_token_signing_alg_values_supported": ["RS256"]}).validate()


@one_backend
def test_the_authorization_endpoint_never_redirects_for_an_unknown_client(
    harness: Harness,
) -> None:
    for method in ("get", "post"):
        response = getattr(harness.http, method)(
            "/authorize?response_type=code&client_id=x&redirect_uri=https://evil.example/cb"
        )
        text = html_page(response, 400)
        assert "no known application" in text
        assert "Location" not in response.headers


# --- Device authorization -----------------------------------------------------------------
@one_backend
def test_device_authorization_says_what_to_do_in_one_line(harness: Harness) -> None:
    started = harness.authorize()
    message = started["message"]
    assert "\n" not in message
    assert started["verification_uri"] in message and started["user_code"] in message


# --- Scopes and ID tokens -----------------------------------------------------------------
def test_an_openid_login_gets_an_id_token_about_the_phone_approval(oidc: Harness) -> None:
    _, tokens = sign_in(oidc, OIDC_SCOPES)
    assert tokens["scope"] == OIDC_SCOPES
    assert tokens["refresh_token"]  # offline_access
    claims = verified(oidc, tokens["id_token"])
    me = user(oidc)
    assert claims["sub"] == me.user_id
    assert claims["aud"] == oidc.client_id and "azp" not in claims
    assert claims["iat"] == unix(REDEEMED_AT)
    assert claims["exp"] == unix(REDEEMED_AT) + oidc.services.config.access_token_ttl
    # The user authenticated by approving on the phone, seven seconds before the PC redeemed.
    assert claims["auth_time"] == unix(APPROVED_AT)
    assert claims["amr"] == ["mca", "user"] and claims["acr"] == "phone"
    assert "nonce" not in claims  # the device authorization request carries none
    assert claims["name"] == "Olga Example"
    assert claims["preferred_username"] == oidc.username
    assert claims["email"] == "olga@example.com" and claims["email_verified"] is True
    # It is not an access token, anywhere.
    api = oidc.http.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert api.status_code == 401


def test_scopes_release_only_their_claims(oidc: Harness) -> None:
    _, tokens = sign_in(oidc, "openid email")
    claims = verified(oidc, tokens["id_token"])
    assert "name" not in claims and "preferred_username" not in claims
    assert claims["email"] == "olga@example.com"
    # A user without an email has no email claims, whatever the scope.
    oidc.username = oidc.create_user()
    _, tokens = sign_in(oidc, "openid profile email")
    claims = verified(oidc, tokens["id_token"])
    assert claims["name"] == "Bob Example"
    assert "email" not in claims and "email_verified" not in claims


def test_openid_without_offline_access_gets_no_refresh_token(oidc: Harness) -> None:
    _, tokens = sign_in(oidc, "openid profile")
    assert "refresh_token" not in tokens and tokens["id_token"]
    with freeze_time(REDEEMED_AT):
        me = oidc.http.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200


def test_plain_oauth_grants_are_what_they_were(oidc: Harness) -> None:
    # No scope asked: the client's scopes but openid (an OpenID Connect request names it).
    _, tokens = sign_in(oidc, "")
    assert tokens["scope"] == "profile email offline_access"
    assert "id_token" not in tokens and tokens["refresh_token"]
    _, tokens = sign_in(oidc, "profile")
    assert "id_token" not in tokens and tokens["refresh_token"]


@one_backend
def test_a_client_not_allowed_openid_cannot_ask_for_it(harness: Harness) -> None:
    response = harness.http.post(
        "/oauth/device_authorization", data={"client_id": harness.client_id, "scope": "openid"}
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_scope"


def test_refreshed_id_tokens_describe_the_original_authentication(oidc: Harness) -> None:
    _, tokens = sign_in(oidc, OIDC_SCOPES)
    first = verified(oidc, tokens["id_token"])
    with freeze_time("2026-03-01 09:30:00"):
        refreshed = oidc.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()
    body = refreshed.get_json()
    second = verified(oidc, body["id_token"])
    # OIDC Core §12.2: same iss, sub, aud, auth_time (and amr, acr); a new iat; no azp.
    for claim in ("iss", "sub", "aud", "auth_time", "amr", "acr", "name", "email"):
        assert second[claim] == first[claim], claim
    assert second["iat"] == unix("2026-03-01 09:30:00") > first["iat"]
    assert "azp" not in second and "nonce" not in second

    # Narrowed (RFC 6749 §6): the claims follow the scope; without openid, no ID token.
    with freeze_time("2026-03-01 09:31:00"):
        narrowed = oidc.http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": body["refresh_token"],
                "client_id": oidc.client_id,
                "scope": "openid offline_access",
            },
        ).get_json()
        third = verified(oidc, narrowed["id_token"])
        assert "name" not in third and "email" not in third and third["sub"] == first["sub"]
        plain = oidc.http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": narrowed["refresh_token"],
                "client_id": oidc.client_id,
                "scope": "profile",
            },
        ).get_json()
        assert plain["scope"] == "profile" and "id_token" not in plain


def test_a_password_on_the_verification_page_is_amr_pwd(oidc: Harness) -> None:
    with freeze_time("2026-03-01 08:59:00") as frozen:
        started = oidc.authorize(scope=OIDC_SCOPES)
        browser = Browser(oidc)
        approval = browser.signed_in(started["user_code"])  # the password, at 08:59
        frozen.move_to(APPROVED_AT)
        assert "You approved" in html_page(browser.decide(approval, "approve"), 200)
        frozen.move_to(REDEEMED_AT)
        tokens = oidc.poll(started["device_code"]).get_json()
    claims = verified(oidc, tokens["id_token"])
    assert claims["amr"] == ["pwd"] and claims["acr"] == "password"
    assert claims["auth_time"] == unix("2026-03-01 08:59:00")  # when the password was typed
    with freeze_time("2026-03-01 09:10:00"):
        refreshed = oidc.refresh(tokens["refresh_token"]).get_json()
    again = verified(oidc, refreshed["id_token"])
    assert again["amr"] == ["pwd"] and again["auth_time"] == claims["auth_time"]


# --- Userinfo -----------------------------------------------------------------------------
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_userinfo_answers_the_claims_of_the_scope(oidc: Harness) -> None:
    _, tokens = sign_in(oidc, OIDC_SCOPES)
    access = tokens["access_token"]
    expected = {
        "sub": user(oidc).user_id,
        "name": "Olga Example",
        "preferred_username": oidc.username,
        "email": "olga@example.com",
        "email_verified": True,
    }
    with freeze_time(REDEEMED_AT):
        got = oidc.http.get("/userinfo", headers=bearer(access))
        assert got.status_code == 200 and got.get_json() == expected
        assert got.headers["Cache-Control"] == "no-store"
        assert oidc.http.post("/userinfo", headers=bearer(access)).get_json() == expected
        # RFC 6750 §2.2: the token in a form body; §2: never two ways at once.
        in_body = oidc.http.post("/userinfo", data={"access_token": access})
        assert in_body.get_json() == expected
        both = oidc.http.post("/userinfo", data={"access_token": access}, headers=bearer(access))
        assert both.status_code == 400 and both.get_json()["error"] == "invalid_request"


def test_userinfo_challenges(oidc: Harness) -> None:
    _, openid = sign_in(oidc, "openid email")
    _, plain = sign_in(oidc, "profile")
    with freeze_time(REDEEMED_AT) as frozen:
        # RFC 6750 §3.1: no token, a bare challenge; a bad one, invalid_token; no openid scope,
        # insufficient_scope.
        missing = oidc.http.get("/userinfo")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="userinfo"'
        for token in ("not-a-token", openid["id_token"]):
            bad = oidc.http.get("/userinfo", headers=bearer(token))
            assert bad.status_code == 401
            assert bad.headers["WWW-Authenticate"].startswith(
                'Bearer realm="userinfo", error="invalid_token"'
            )
        narrow = oidc.http.get("/userinfo", headers=bearer(plain["access_token"]))
        assert narrow.status_code == 403
        assert 'error="insufficient_scope"' in narrow.headers["WWW-Authenticate"]
        # Only email: sub and the email claims.
        assert set(
            oidc.http.get("/userinfo", headers=bearer(openid["access_token"])).get_json()
        ) == {
            "sub",
            "email",
            "email_verified",
        }
        # Expired, then revoked.
        frozen.tick(oidc.services.config.access_token_ttl)
        expired = oidc.http.get("/userinfo", headers=bearer(openid["access_token"]))
        assert expired.status_code == 401
    _, fresh = sign_in(oidc, "openid")
    with freeze_time(REDEEMED_AT):
        revoke = oidc.http.post(
            "/oauth/revoke", data={"token": fresh["access_token"], "client_id": oidc.client_id}
        )
        assert revoke.status_code == 200
        gone = oidc.http.get("/userinfo", headers=bearer(fresh["access_token"]))
        assert gone.status_code == 401 and gone.get_json()["error"] == "invalid_token"
