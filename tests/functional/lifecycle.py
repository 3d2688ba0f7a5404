"""Helpers for the token-lifecycle tests: log in over HTTP, then probe what survives.

A token is "alive" when /api/v1/me accepts it and a resource server's introspection calls it
active; "dead" when the refresh token fails, introspection reads exactly {"active": false}
and /api/v1/me refuses it with 401 invalid_token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
import sqlalchemy as sa

from authserver.domain.models import ClientKind
from tests.functional.harness import Harness, Phone, basic

ADMIN_PASSWORD = "admin password of some length"


@dataclass
class Login:
    """What a PC got from one approved QR login."""

    access_token: str
    refresh_token: str
    device_code: str
    client_id: str
    secret: str | None
    phone: Phone

    @property
    def jti(self) -> str:
        return str(jwt.decode(self.access_token, options={"verify_signature": False})["jti"])


def secret_params(secret: str | None) -> dict[str, str]:
    return {"client_secret": secret} if secret else {}


def login(
    h: Harness,
    *,
    client_id: str | None = None,
    secret: str | None = None,
    phone: Phone | None = None,
    scope: str | None = None,
) -> Login:
    """A full QR login: start, scan, confirm, redeem."""
    client_id = client_id or h.client_id
    params = {**secret_params(secret), **({"scope": scope} if scope else {})}
    started = h.authorize(client_id, **params)
    phone = h.approve(started, phone)
    issued = h.poll(started["device_code"], client_id, **secret_params(secret))
    assert issued.status_code == 200, issued.get_json()
    body = issued.get_json()
    return Login(
        body["access_token"],
        body["refresh_token"],
        started["device_code"],
        client_id,
        secret,
        phone,
    )


def refresh(h: Harness, token: str, client_id: str | None = None, secret: str | None = None) -> Any:
    return h.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": client_id or h.client_id,
            **secret_params(secret),
        },
    )


def refresh_login(h: Harness, old: Login) -> Login:
    """Rotate `old`'s refresh token; the new pair, same client and phone."""
    response = refresh(h, old.refresh_token, old.client_id, old.secret)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return Login(
        body["access_token"],
        body["refresh_token"],
        old.device_code,
        old.client_id,
        old.secret,
        old.phone,
    )


def resource_server(h: Harness) -> tuple[str, str]:
    """A resource-server client (RFC 7662 §2.1), one per harness."""
    if "rs" not in h.extra:
        client, secret = h.services.clients.create(
            "Resource server", confidential=True, scope=None, kind=ClientKind.RESOURCE_SERVER
        )
        h.extra["rs"] = (client.client_id, secret)
    rs: tuple[str, str] = h.extra["rs"]
    return rs


def introspect(
    h: Harness,
    token: str,
    credentials: tuple[str, str] | None = None,
    *,
    hint: str | None = None,
    use_basic: bool = True,
) -> Any:
    """POST /oauth/introspect as `credentials` (default: the resource server); the response."""
    client_id, secret = credentials or resource_server(h)
    data = {"token": token, **({"token_type_hint": hint} if hint else {})}
    if use_basic:
        return h.http.post("/oauth/introspect", data=data, headers=basic(client_id, secret))
    return h.http.post(
        "/oauth/introspect", data={**data, "client_id": client_id, "client_secret": secret}
    )


def introspection(h: Harness, token: str, credentials: tuple[str, str] | None = None) -> Any:
    response = introspect(h, token, credentials)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def revoke(
    h: Harness,
    token: str,
    client_id: str | None = None,
    secret: str | None = None,
    *,
    hint: str | None = None,
    use_basic: bool = False,
) -> Any:
    """POST /oauth/revoke (RFC 7009) as a client; the response."""
    data = {"token": token, **({"token_type_hint": hint} if hint else {})}
    client_id = client_id or h.client_id
    if use_basic:
        assert secret is not None
        return h.http.post("/oauth/revoke", data=data, headers=basic(client_id, secret))
    return h.http.post(
        "/oauth/revoke", data={**data, "client_id": client_id, **secret_params(secret)}
    )


def revoked_ok(response: Any) -> None:
    """RFC 7009 §2.2: 200 with an empty body, whatever the token was."""
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {}
    assert response.headers["Cache-Control"] == "no-store"


def me(h: Harness, access_token: str) -> Any:
    return h.http.get("/api/v1/me", headers={"Authorization": f"Bearer {access_token}"})


def access_alive(h: Harness, access_token: str) -> bool:
    """True if /api/v1/me accepts the token and introspection calls it active; they must agree."""
    at_api = me(h, access_token)
    active = introspection(h, access_token)
    assert (at_api.status_code == 200) == (active["active"] is True), (at_api, active)
    if at_api.status_code != 200:
        assert at_api.status_code == 401
        assert at_api.get_json()["error"] == "invalid_token"
        assert at_api.headers["WWW-Authenticate"].startswith('Bearer realm="api", error=')
        assert active == {"active": False}
    return bool(at_api.status_code == 200)


def assert_dead(h: Harness, session: Login, *, refresh_error: str = "invalid_grant") -> None:
    """Every token of the session is refused."""
    assert not access_alive(h, session.access_token)
    assert introspection(h, session.refresh_token) == {"active": False}
    refused = refresh(h, session.refresh_token, session.client_id, session.secret)
    assert refused.get_json()["error"] == refresh_error, refused.get_json()


def assert_alive(h: Harness, session: Login) -> None:
    """The session's access token works and its refresh token is active (not used up)."""
    assert access_alive(h, session.access_token)
    assert introspection(h, session.refresh_token)["active"] is True


def session_id(h: Harness, session: Login) -> str:
    """The token family (an admin's "session") of a login: the access token's `sid`, which
    SQL must know by that id."""
    sid = str(jwt.decode(session.access_token, options={"verify_signature": False})["sid"])
    with h.services.database.engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT id FROM token_families WHERE id = :sid"), {"sid": sid}
        ).scalar_one()
    return str(found)


def user_id(h: Harness, username: str | None = None) -> str:
    user = h.services.accounts.find_user(username or h.username)
    assert user is not None
    return user.user_id


def admin_token(h: Harness, username: str = "root", ip: str = "198.51.100.9") -> str:
    """Create an admin (once per harness) and sign in over HTTP; the adm_ token."""
    if "admin" not in h.extra:
        h.extra["admin"] = h.services.admin_auth.create(username, ADMIN_PASSWORD)
    response = h.http.post(
        "/admin/v1/auth/token",
        json={"username": h.extra["admin"].username, "password": ADMIN_PASSWORD},
        environ_base={"REMOTE_ADDR": ip},
    )
    assert response.status_code == 201, response.get_json()
    token: str = response.get_json()["admin_token"]
    return token


def admin_headers(h: Harness) -> dict[str, str]:
    """Authorization for the admin API; one signed-in admin session per harness."""
    if "admin_token" not in h.extra:
        h.extra["admin_token"] = admin_token(h)
    return {"Authorization": f"Bearer {h.extra['admin_token']}"}


def admin_post(h: Harness, path: str, **kwargs: Any) -> Any:
    return h.http.post(
        f"/admin/v1{path}",
        headers=admin_headers(h),
        environ_base={"REMOTE_ADDR": "198.51.100.9"},
        **kwargs,
    )


def admin_get(h: Harness, path: str, **kwargs: Any) -> Any:
    return h.http.get(f"/admin/v1{path}", headers=admin_headers(h), **kwargs)
