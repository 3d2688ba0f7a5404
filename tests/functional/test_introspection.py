"""RFC 7662 token introspection: who may ask, what an active token reads, and that every
inactive token reads exactly {"active": false}."""

from __future__ import annotations

import jwt
from freezegun import freeze_time

from tests.functional.harness import ISSUER, Harness, basic
from tests.functional.lifecycle import (
    introspect,
    introspection,
    login,
    refresh_login,
    resource_server,
    revoke,
    revoked_ok,
    user_id,
)

INACTIVE = {"active": False}


def test_active_access_token_reads_its_claims(harness: Harness) -> None:
    h = harness
    session = login(h, scope="profile")
    claims = jwt.decode(session.access_token, options={"verify_signature": False})

    for use_basic in (True, False):
        response = introspect(h, session.access_token, use_basic=use_basic)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        assert response.get_json() == {
            "active": True,
            "token_type": "Bearer",
            "scope": "profile",
            "client_id": h.client_id,
            "username": h.username,
            "sub": user_id(h),
            "aud": ISSUER,
            "iss": ISSUER,
            "exp": claims["exp"],
            "iat": claims["iat"],
            "jti": claims["jti"],
        }
    assert claims["exp"] - claims["iat"] == h.services.config.access_token_ttl


def test_active_refresh_token_reads_as_a_refresh_token(harness: Harness) -> None:
    h = harness
    with freeze_time("2030-01-01 12:00:00") as frozen:
        session = login(h)
        issued_at = int(frozen().timestamp())
    body = introspection(h, session.refresh_token)
    assert body == {
        "active": True,
        "token_type": "refresh_token",
        "scope": "profile email",
        "client_id": h.client_id,
        "username": h.username,
        "sub": user_id(h),
        "iss": ISSUER,
        "exp": issued_at + h.services.config.refresh_token_ttl,
    }


def test_hints_only_order_the_search(harness: Harness) -> None:
    h = harness
    session = login(h)
    for hint in ("access_token", "refresh_token", "bogus"):
        for token, kind in (
            (session.access_token, "Bearer"),
            (session.refresh_token, "refresh_token"),
        ):
            body = introspect(h, token, hint=hint).get_json()
            assert body["active"] is True and body["token_type"] == kind, (hint, kind)


def test_revoked_expired_unknown_and_spent_tokens_read_only_inactive(harness: Harness) -> None:
    h = harness
    with freeze_time("2030-01-01 12:00:00") as frozen:
        revoked = login(h)
        revoked_ok(revoke(h, revoked.refresh_token))
        assert introspection(h, revoked.access_token) == INACTIVE
        assert introspection(h, revoked.refresh_token) == INACTIVE

        only_access = login(h, phone=revoked.phone)
        revoked_ok(revoke(h, only_access.access_token))
        assert introspection(h, only_access.access_token) == INACTIVE
        assert introspection(h, only_access.refresh_token)["active"] is True

        # A rotated refresh token is spent; its successor is the live one.
        first = login(h, phone=revoked.phone)
        second = refresh_login(h, first)
        assert introspection(h, first.refresh_token) == INACTIVE
        assert introspection(h, second.refresh_token)["active"] is True
        assert introspection(h, first.access_token)["active"] is True  # not revoked by rotation

        for unknown in ("nope", "a.b.c", first.access_token[:-4] + "AAAA", "x" * 3000):
            assert introspection(h, unknown) == INACTIVE

        frozen.tick(h.services.config.access_token_ttl - 1)
        assert introspection(h, second.access_token)["active"] is True
        frozen.tick(1)  # exp reached: inactive, whatever the signature says
        assert introspection(h, second.access_token) == INACTIVE
        assert introspection(h, second.refresh_token)["active"] is True

        frozen.tick(h.services.config.refresh_token_ttl)
        assert introspection(h, second.refresh_token) == INACTIVE


def test_a_pc_client_sees_only_its_own_tokens(harness: Harness) -> None:
    h = harness
    client_id, secret = h.create_client(confidential=True)
    own = login(h, client_id=client_id, secret=secret)
    foreign = login(h, phone=own.phone)  # the harness's public client
    other_confidential = h.create_client(confidential=True)

    for token in (own.access_token, own.refresh_token):
        assert introspection(h, token, (client_id, secret))["active"] is True
        assert introspection(h, token, other_confidential) == INACTIVE
    for token in (foreign.access_token, foreign.refresh_token):
        assert introspection(h, token, (client_id, secret)) == INACTIVE
        assert introspection(h, token)["active"] is True  # a resource server sees every token


def test_introspection_needs_a_secret(harness: Harness) -> None:
    h = harness
    session = login(h)
    rs_id, rs_secret = resource_server(h)

    refused = [
        # A public client has no secret, so it cannot authenticate (RFC 7662 §2.1).
        h.http.post(
            "/oauth/introspect", data={"token": session.access_token, "client_id": h.client_id}
        ),
        introspect(h, session.access_token, (h.client_id, "made-up")),
        introspect(h, session.access_token, (h.client_id, "made-up"), use_basic=False),
        introspect(h, session.access_token, (rs_id, "wrong")),
        introspect(h, session.access_token, (rs_id, "wrong"), use_basic=False),
        introspect(h, session.access_token, ("no-such-client", rs_secret)),
        h.http.post("/oauth/introspect", data={"token": session.access_token, "client_id": rs_id}),
        h.http.post("/oauth/introspect", data={"token": session.access_token}),
        h.http.post(
            "/oauth/introspect",
            data={"token": session.access_token},
            headers={"Authorization": f"Bearer {session.access_token}"},
        ),
    ]
    for response in refused:
        assert response.status_code == 401, response.get_json()
        assert response.get_json()["error"] == "invalid_client"
        assert "active" not in response.get_json()

    missing = h.http.post("/oauth/introspect", headers=basic(rs_id, rs_secret))
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"


def test_a_disabled_clients_tokens_are_inactive(harness: Harness) -> None:
    h = harness
    client_id, secret = h.create_client(confidential=True)
    session = login(h, client_id=client_id, secret=secret)
    h.services.clients.set_disabled(client_id, True)  # without revoking: the check must hold alone
    assert introspection(h, session.access_token) == INACTIVE
    assert introspection(h, session.refresh_token) == INACTIVE
    # ...and the disabled client itself can no longer introspect.
    own = introspect(h, session.access_token, (client_id, secret))
    assert own.status_code == 401 and own.get_json()["error"] == "invalid_client"


def test_metadata_advertises_revocation_and_introspection(harness: Harness) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        meta = harness.http.get(path).get_json()
        assert meta["revocation_endpoint"] == f"{ISSUER}/oauth/revoke"
        assert meta["introspection_endpoint"] == f"{ISSUER}/oauth/introspect"
        assert set(meta["revocation_endpoint_auth_methods_supported"]) == {
            "none",
            "client_secret_basic",
            "client_secret_post",
        }
        assert set(meta["introspection_endpoint_auth_methods_supported"]) == {
            "client_secret_basic",
            "client_secret_post",
        }
