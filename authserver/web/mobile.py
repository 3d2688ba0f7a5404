"""The mobile app's JSON API: sign in a phone, scan, confirm, deny."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request

from authserver.config import PhoneKeys
from authserver.domain import errors
from authserver.services.accounts import DeviceCredentials
from authserver.services.context import device_summary, place_of
from authserver.web.common import (
    client_ip,
    dpop_jkt,
    json_body,
    no_store,
    services,
    string_field,
)
from authserver.web.context import context_json, warnings_of

bp = Blueprint("mobile", __name__, url_prefix="/mobile/v1")


def _keys_required() -> bool:
    return services().config.phone_keys == PhoneKeys.REQUIRED


def _phone() -> DeviceCredentials:
    """The phone's credentials: its device token, presented from its own device id (seed
    003) and, for a phone that registered a key at sign-in, with a DPoP proof of that key
    (RFC 9449 §7.1 applied to the mobile API); each service checks them inside the step's
    unit of work."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "dpop") or not token:
        raise errors.InvalidDeviceToken("Send 'Authorization: DPoP <device_token>' (or Bearer).")
    device_id = request.headers.get("X-Device-Id", "")
    if not device_id:
        raise errors.InvalidDeviceToken("Send the 'X-Device-Id' header.")
    proved = None
    if scheme.lower() == "bearer" and _keys_required():
        raise errors.InvalidDeviceToken(
            "This server needs key-bound device tokens: 'Authorization: DPoP <device_token>'."
        )
    if scheme.lower() == "dpop":
        proved = dpop_jkt(access_token=token)
        if proved is None:
            raise errors.InvalidDpopProof("Send a DPoP proof with the device token.")
    return DeviceCredentials(token, device_id, proved)


@bp.post("/sessions")
def sign_in() -> Response:
    body = json_body()
    device: Any = body.get("device")
    if not isinstance(device, dict):
        raise errors.MalformedRequest("'device' must be an object with id, name and platform.")
    key = dpop_jkt()  # a proof here registers the app's key: later calls must prove it
    if key is None and _keys_required():
        raise errors.InvalidDpopProof("Send a DPoP proof of the app's key with the sign-in.")
    signed_in = services().accounts.sign_in(
        string_field(body, "username", max_len=150),
        string_field(body, "password", max_len=1024, controls=True),  # never stored
        device_id=string_field(device, "id", max_len=200),
        device_name=string_field(device, "name", max_len=200),
        platform=string_field(device, "platform", max_len=50),
        ip=client_ip(),
        # What an earlier sign-in to this account answered: lifts the limits others can fill.
        device_cookie=string_field(body, "device_cookie", required=False, max_len=100),
        dpop_jkt=key,
    )
    return no_store(
        {
            "device_token": signed_in.token,
            "token_type": "DPoP" if signed_in.device.dpop_jkt else "Bearer",
            "expires_in": services().config.mobile_token_ttl,
            "device": {"id": signed_in.device.device_id, "name": signed_in.device.name},
            "device_cookie": signed_in.device_cookie,
        },
        201,
    )


@bp.delete("/sessions")
def sign_out() -> Response:
    services().accounts.sign_out(_phone(), client_ip())
    return Response(status=204)


@bp.post("/scan")
def scan() -> Response:
    phone = _phone()
    body = json_body()
    has_qr, has_code = "qr" in body, "user_code" in body
    if has_qr == has_code:
        raise errors.MalformedRequest("Send exactly one of 'qr' and 'user_code'.")
    screen = services().approvals.scan(
        phone,
        qr=string_field(body, "qr", max_len=2000) if has_qr else None,
        user_code=string_field(body, "user_code", max_len=50) if has_code else None,
        ip=client_ip(),
    )
    # What the approval screen shows: who asks, for what, from where, and the code to match.
    matching = {"number_choices": list(screen.number_choices)} if screen.number_choices else {}
    return no_store(
        {
            **matching,
            "confirm_token": screen.confirm_token,
            "expires_in": screen.expires_in,
            "client": {"client_id": screen.client.client_id, "name": screen.client.name},
            "scopes": screen.scope.split(),
            "requesting_device": {
                "ip": screen.requester_ip,
                **context_json(screen.context),
                "requested_at": datetime.fromtimestamp(screen.requested_at, UTC).isoformat(),
            },
            "warnings": [str(w) for w in warnings_of(screen.context)],
            "user_code": screen.user_code,
        }
    )


def _decide(approve: bool) -> Response:
    phone = _phone()
    body = json_body()
    confirm_token = string_field(body, "confirm_token", max_len=200)
    number = body.get("number")
    # Number matching: the number the user picked (or typed) from the approval screen.
    if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
        raise errors.MalformedRequest("'number' must be the whole number the computer shows.")
    status = services().approvals.decide(
        phone, confirm_token, approve=approve, ip=client_ip(), number=number
    )
    return no_store({"status": status.value})


@bp.post("/confirm")
def confirm() -> Response:
    return _decide(True)


@bp.post("/deny")
def deny() -> Response:
    return _decide(False)


# --- "This wasn't me": the user's signed-in computers, from the phone -------------------------
@bp.get("/logins")
def logins() -> Response:
    """The user's live logins: which app, from where, when, approved by which phone."""
    found = services().logins.list(_phone())
    return no_store(
        {
            "logins": [
                {
                    "id": login.family.id,
                    "client": {
                        "client_id": login.family.client_id,
                        "name": login.client.name if login.client else None,
                    },
                    "requesting_device": {
                        "ip": login.family.requester_ip,
                        "place": place_of(login.family.requester_ip).name,
                        "device_says": device_summary(login.family.requester_user_agent),
                    },
                    "signed_in_at": datetime.fromtimestamp(
                        login.family.created_at, UTC
                    ).isoformat(),
                    "last_refreshed_at": (
                        datetime.fromtimestamp(login.family.refreshed_at, UTC).isoformat()
                        if login.family.refreshed_at is not None
                        else None
                    ),
                    "approved_by": {
                        "name": login.approved_by.name if login.approved_by else None,
                        "this_phone": login.this_phone,
                    },
                }
                for login in found
            ]
        }
    )


@bp.delete("/logins/<family_id>")
def end_login(family_id: str) -> Response:
    """Sign that computer out: its tokens stop working."""
    services().logins.end(_phone(), family_id, client_ip(), report=False)
    return Response(status=204)


@bp.post("/logins/<family_id>/report")
def report_login(family_id: str) -> Response:
    """Report it (this wasn't me) and sign it out: audit trail and admin console say so."""
    services().logins.end(_phone(), family_id, client_ip(), report=True)
    return Response(status=204)
