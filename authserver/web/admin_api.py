"""The admin JSON API (/admin/v1): sessions, users, devices, clients, flows, audit.

Authenticated only by an admin session token in `Authorization: Bearer adm_...`, never by a
cookie (so no request forgery) and never by a client, device, access or refresh token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, request

from authserver.domain import errors
from authserver.domain.models import (
    Admin,
    AuditEvent,
    AuditFilter,
    Client,
    FamilyFilter,
    MobileDevice,
    User,
)
from authserver.services.admin import BrowserSessionView, SessionView
from authserver.services.context import device_summary, place_of
from authserver.web.common import (
    client_ip,
    int_arg,
    json_body,
    no_store,
    path_ids_are_plain,
    services,
    string_field,
    text_arg,
)
from authserver.web.context import place_json

bp = Blueprint("admin_api", __name__, url_prefix="/admin/v1")

MAX_PAGE = 200


def iso(ts: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC, or None."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def user_json(user: User) -> dict[str, Any]:
    return {"user_id": user.user_id, "username": user.username, "name": user.display_name}


def client_json(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "kind": client.kind.value,
        "confidential": client.is_confidential,
        "scope": client.scope,
        "disabled_at": iso(client.disabled_at),
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": [str(grant) for grant in client.grant_types],
        "number_matching": client.number_matching,
    }


def device_json(device: MobileDevice) -> dict[str, Any]:
    return {
        "mobile_device_id": device.id,
        "user_id": device.user_id,
        "device_id": device.device_id,
        "name": device.name,
        "platform": device.platform,
        "signed_in_at": iso(device.created_at),
        "expires_at": iso(device.expires_at),
        "revoked_at": iso(device.revoked_at),
        "active": device.revoked_at is None,
    }


def session_json(view: SessionView) -> dict[str, Any]:
    family = view.family
    return {
        "session_id": family.id,
        "active": family.revoked_at is None,
        "created_at": iso(family.created_at),
        "revoked_at": iso(family.revoked_at),
        "revoked_reason": family.revoked_reason,
        "reported": view.reported,  # "this wasn't me", from the user's phone
        "scope": family.scope,
        "requester": {
            "ip": family.requester_ip,
            # Exactly what the PC sent, for the operator; `device_says` and `place` are what
            # the approval screens showed the user (RFC 10027).
            "user_agent": family.requester_user_agent,
            "device_says": device_summary(family.requester_user_agent),
            "place": place_json(place_of(family.requester_ip)),
        },
        "user": user_json(view.user) if view.user else {"user_id": family.user_id},
        "client": client_json(view.client) if view.client else {"client_id": family.client_id},
        "mobile_device": device_json(view.device) if view.device else None,
    }


def browser_session_json(view: BrowserSessionView) -> dict[str, Any]:
    """A browser signed in by a QR login; never its secret or the secret's hash."""
    session = view.session
    return {
        "browser_session_id": session.id,
        "user_id": session.user_id,
        "mobile_device": (
            device_json(view.device)
            if view.device
            else {"mobile_device_id": session.mobile_device_id}
        ),
        "active": view.active,
        "auth_time": iso(session.auth_time),
        "amr": list(session.amr),
        "created_at": iso(session.created_at),
        "expires_at": iso(session.expires_at),
        "ended_at": iso(session.ended_at),
    }


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "event": event.event,
        "occurred_at": iso(event.occurred_at),
        "actor": {"type": event.actor.kind, "id": event.actor.id or None},
        "ip": event.ip or None,
        "user_id": event.user_id,
        "client_id": event.client_id,
        "mobile_device_id": event.mobile_device_id,
        "session_id": event.family_id,
        "flow_ref": event.flow_ref,
        "detail": event.detail,
    }


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.AdminAuthenticationFailed("Send 'Authorization: Bearer <admin token>'.")
    return token.strip()


@bp.before_request
def _require_admin() -> None:
    if not path_ids_are_plain():
        raise errors.NotFound()
    if request.endpoint == "admin_api.sign_in":
        return
    g.admin = services().admin_auth.authenticate(_bearer())


def _admin() -> Admin:
    admin: Admin = g.admin
    return admin


# --- Admin sessions ------------------------------------------------------------------------
@bp.post("/auth/token")
def sign_in() -> Response:
    """Exchange admin username and password for an admin session token.

    `device_cookie`, what an earlier sign-in answered, lifts the limits others can fill.
    """
    body = json_body()
    signed_in = services().admin_auth.sign_in(
        string_field(body, "username", max_len=150),
        string_field(body, "password", max_len=1024, controls=True),
        client_ip(),
        string_field(body, "device_cookie", required=False, max_len=100),
    )
    admin = signed_in.admin
    return no_store(
        {
            "admin_token": signed_in.token,
            "token_type": "Bearer",
            "expires_in": services().config.admin_session_ttl,
            "admin": {"admin_id": admin.admin_id, "username": admin.username},
            "device_cookie": signed_in.device_cookie,
        },
        201,
    )


@bp.delete("/auth/token")
def sign_out() -> Response:
    services().admin_auth.sign_out(_bearer(), _admin(), client_ip())
    return Response(status=204)


# --- Sessions (token families) -------------------------------------------------------------
@bp.get("/sessions")
def list_sessions() -> Response:
    """Sessions by user, client or mobile device; ?active=true for live ones only."""
    device = text_arg("mobile_device_id")
    where = FamilyFilter(
        user_id=text_arg("user_id"),
        client_id=text_arg("client_id"),
        mobile_device_ids=(device,) if device else None,
        active_only=request.args.get("active") == "true",
    )
    limit = int_arg("limit", 50, MAX_PAGE)
    offset = int_arg("offset", 0, 10**9)
    views = services().administration.sessions(where, limit, offset)
    return no_store({"sessions": [session_json(v) for v in views], "offset": offset})


@bp.get("/sessions/<session_id>")
def get_session(session_id: str) -> Response:
    return no_store(session_json(services().administration.session(session_id)))


@bp.post("/sessions/<session_id>/revoke")
def revoke_session(session_id: str) -> Response:
    revoked = services().administration.revoke_session(session_id, _admin(), client_ip())
    return no_store({"revoked": [session_id] if revoked else []})


def _revoked(families: list[Any]) -> Response:
    return no_store({"revoked": [f.id for f in families]})


@bp.post("/users/<user_id>/sessions/revoke")
def revoke_user_sessions(user_id: str) -> Response:
    return _revoked(services().administration.revoke_user_sessions(user_id, _admin(), client_ip()))


@bp.post("/clients/<client_id>/sessions/revoke")
def revoke_client_sessions(client_id: str) -> Response:
    administration = services().administration
    return _revoked(administration.revoke_client_sessions(client_id, _admin(), client_ip()))


@bp.post("/mobile-devices/<mobile_device_id>/sessions/revoke")
def revoke_device_sessions(mobile_device_id: str) -> Response:
    """Revoke every session approved from this phone and sign the phone out."""
    administration = services().administration
    return _revoked(administration.revoke_device_sessions(mobile_device_id, _admin(), client_ip()))


# --- Browser sessions (the code flow's sign-ins to this server) ----------------------------
@bp.get("/browser-sessions")
def list_browser_sessions() -> Response:
    """Browser sessions, newest first, by ?user_id=; ?active=true for live ones only."""
    limit = int_arg("limit", 50, MAX_PAGE)
    offset = int_arg("offset", 0, 10**9)
    found = services().administration.browser_sessions(
        text_arg("user_id"), request.args.get("active") == "true", limit, offset
    )
    return no_store(
        {"browser_sessions": [browser_session_json(b) for b in found], "offset": offset}
    )


@bp.get("/browser-sessions/<session_id>")
def get_browser_session(session_id: str) -> Response:
    return no_store(browser_session_json(services().administration.browser_session(session_id)))


@bp.post("/browser-sessions/<session_id>/revoke")
def revoke_browser_session(session_id: str) -> Response:
    """Sign one browser out of this server; the tokens websites got from it stay."""
    administration = services().administration
    revoked = administration.revoke_browser_session(session_id, _admin(), client_ip())
    return no_store({"revoked": [session_id] if revoked else []})


@bp.post("/users/<user_id>/browser-sessions/revoke")
def revoke_user_browser_sessions(user_id: str) -> Response:
    administration = services().administration
    ended = administration.revoke_user_browser_sessions(user_id, _admin(), client_ip())
    return no_store({"revoked": [session.id for session in ended]})


# --- Users and their phones ----------------------------------------------------------------
@bp.get("/users")
def find_users() -> Response:
    """Users whose username or name contains ?q=."""
    users = services().administration.find_users(text_arg("q") or "", int_arg("limit", 50, 200))
    return no_store({"users": [user_json(u) for u in users]})


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    return no_store(user_json(services().administration.user(user_id)))


@bp.get("/users/<user_id>/mobile-devices")
def list_devices(user_id: str) -> Response:
    devices = services().administration.devices(user_id)
    return no_store({"mobile_devices": [device_json(d) for d in devices]})


@bp.delete("/users/<user_id>/mobile-devices/<mobile_device_id>")
def unbind_device(user_id: str, mobile_device_id: str) -> Response:
    """Sign a phone out; its device token stops working at once."""
    services().administration.unbind_device(user_id, mobile_device_id, _admin(), client_ip())
    return Response(status=204)


# --- Clients -------------------------------------------------------------------------------
@bp.get("/clients")
def list_clients() -> Response:
    return no_store({"clients": [client_json(c) for c in services().administration.clients()]})


def _registration(body: dict[str, Any]) -> dict[str, Any]:
    """The registration members of a client's JSON body that are present, checked."""
    changes: dict[str, Any] = {}
    if "scope" in body:
        changes["scope"] = string_field(body, "scope", max_len=1000)
    for name in ("redirect_uris", "post_logout_redirect_uris", "grant_types"):
        if name in body:
            value = body[name]
            if not isinstance(value, list) or len(value) > 20:
                raise errors.MalformedRequest(f"{name} must be a list of at most 20 strings.")
            if not all(isinstance(item, str) and len(item) <= 500 for item in value):
                raise errors.MalformedRequest(f"{name} must be a list of at most 20 strings.")
            changes[name] = value
    if "number_matching" in body:
        if not isinstance(body["number_matching"], bool):
            raise errors.MalformedRequest("number_matching must be true or false.")
        changes["number_matching"] = body["number_matching"]
    return changes


@bp.post("/clients")
def create_client() -> Response:
    """Register a client: {"name", "confidential", "scope", "redirect_uris",
    "post_logout_redirect_uris", "grant_types"}; a secret is shown once."""
    body = json_body()
    confidential = body.get("confidential", False)
    if not isinstance(confidential, bool):
        raise errors.MalformedRequest("confidential must be true or false.")
    client, secret = services().administration.create_client(
        _admin(),
        client_ip(),
        string_field(body, "name", max_len=200),
        confidential=confidential,
        **{"scope": None, **_registration(body)},
    )
    answer = client_json(client)
    if secret:
        answer["client_secret"] = secret  # shown once; only its SHA-256 is stored
    return no_store(answer, 201)


@bp.patch("/clients/<client_id>")
def update_client(client_id: str) -> Response:
    """Change a client's name, scope, redirect URIs or grants (members left out stay)."""
    body = json_body()
    changes = _registration(body)
    if "name" in body:
        changes["name"] = string_field(body, "name", max_len=200)
    client = services().administration.update_client(client_id, _admin(), client_ip(), **changes)
    return no_store(client_json(client))


@bp.post("/clients/<client_id>/disable")
def disable_client(client_id: str) -> Response:
    """No new device codes; every token the client holds is revoked."""
    administration = services().administration
    client = administration.set_client_enabled(client_id, False, _admin(), client_ip())
    return no_store(client_json(client))


@bp.post("/clients/<client_id>/enable")
def enable_client(client_id: str) -> Response:
    administration = services().administration
    client = administration.set_client_enabled(client_id, True, _admin(), client_ip())
    return no_store(client_json(client))


# --- Flows and audit -------------------------------------------------------------------------
@bp.post("/flows/cancel")
def cancel_flow() -> Response:
    """Cancel a pending QR login by its user code: the PC gets access_denied."""
    user_code = string_field(json_body(), "user_code", max_len=50)
    services().administration.cancel_flow(user_code, _admin(), client_ip())
    return no_store({"cancelled": True})


@bp.get("/audit")
def audit() -> Response:
    """Audit events, newest first; filter by user_id, client_id, session_id, mobile_device_id,
    event, actor_id; page with ?before=<id>."""
    before = int_arg("before", 0, 2**62)
    where = AuditFilter(
        user_id=text_arg("user_id"),
        client_id=text_arg("client_id"),
        family_id=text_arg("session_id"),
        mobile_device_id=text_arg("mobile_device_id"),
        event=text_arg("event"),
        actor_id=text_arg("actor_id"),
        before_id=before or None,
        limit=int_arg("limit", 100, MAX_PAGE),
    )
    return no_store({"events": [event_json(e) for e in services().administration.audit(where)]})
