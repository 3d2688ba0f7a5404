"""Endpoints for PC clients: RFC 8414 and OIDC Discovery metadata, RFC 8628 device flow, token,
JWKS, userinfo, status."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, abort, current_app, request

from authserver.domain import errors
from authserver.domain.codes import format_user_code, normalize_user_code
from authserver.domain.oidc import Scope, claims_for
from authserver.oauth.errors import to_wire
from authserver.oauth.requests import client_credentials, form_params, required
from authserver.services.device_grant import verification_uri_complete
from authserver.services.qr_links import with_token
from authserver.services.token_endpoint import ExchangedToken, TokenRequest
from authserver.web.api import bearer_claims
from authserver.web.common import (
    cacheable,
    client_ip,
    dpop_jkt,
    json_response,
    no_store,
    services,
    with_dpop_nonce,
)
from authserver.web.qr import qr_png, qr_svg

USERINFO_REALM = "userinfo"

bp = Blueprint("oauth", __name__)


def _params() -> dict[str, str]:
    return form_params(request.content_type, request.content_length, request.form, request.args)


def _plain_token(token: str | None) -> bool:
    """No token, or one shaped like a scan token (base64url, short)."""
    return token is None or (
        0 < len(token) <= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", token) is not None
    )


def _flag(params: dict[str, str], name: str) -> bool:
    """An optional boolean form parameter: "true" or "false" (or absent: false)."""
    value = params.get(name, "false")
    if value not in ("true", "false"):
        raise errors.MalformedRequest(f"{name!r} must be true or false.")
    return value == "true"


@bp.get("/.well-known/oauth-authorization-server")
@bp.get("/.well-known/openid-configuration")
def metadata() -> Response:
    """RFC 8414 §3 and OpenID Connect Discovery 1.0 §4: one document at both locations, so
    the two always agree (RFC 8414 §2 admits OpenID's members)."""
    return cacheable(current_app.config["AUTHSERVER_METADATA"], 3600)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """OIDC Core §5.3: the claims of the access token's user that its scope releases.

    The token is checked as a resource server checks it (web/api.py); it must carry `openid`.
    Errors are RFC 6750 §3 challenges in the "userinfo" realm.
    """
    try:
        claims = bearer_claims(Scope.OPENID, allow_body=True)
    except (errors.MissingBearerToken, errors.InvalidAccessToken, errors.InsufficientScope) as e:
        return json_response(*to_wire(e, realm=USERINFO_REALM))
    user = services().accounts.user(str(claims["sub"]))
    if user is None:
        return json_response(
            *to_wire(
                errors.InvalidAccessToken("The token's user no longer exists."),
                realm=USERINFO_REALM,
            )
        )
    return no_store(claims_for(user, str(claims["scope"])))


@bp.get("/oauth/jwks")
def jwks() -> Response:
    return cacheable(services().keys.jwks(), 300)


@bp.post("/oauth/device_authorization")
def device_authorization() -> Response:
    """RFC 8628 §3.1-3.2."""
    params = _params()
    credentials = client_credentials(request.headers, params)
    started = services().device_grant.start(
        credentials.client_id,
        credentials.client_secret,
        params.get("scope"),
        client_ip(),
        request.user_agent.string or "",
        # A proof here binds the device code to the PC's key (RFC 9449 applied to RFC 8628).
        dpop_jkt=dpop_jkt(),
        # An extension parameter (RFC 8628 §3.1 allows them): this client shows the status
        # channel's number, so the phone must pick it. Clients may also require it always.
        number_matching=_flag(params, "number_matching"),
        # Another extension: this client redraws its QR code from the status channel's scan
        # token, so a photographed or forwarded QR code is stale within a minute.
        rotating_qr=_flag(params, "rotating_qr"),
    )
    return with_dpop_nonce(
        no_store(
            {
                "device_code": started.device_code,
                "user_code": started.user_code,
                "verification_uri": started.verification_uri,
                "verification_uri_complete": started.verification_uri_complete,
                "expires_in": started.expires_in,
                "interval": started.interval,
                "message": started.message,
                "qr_code_png": started.qr_png,
                "qr_code_svg": started.qr_svg,
            }
        )
    )


@bp.post("/oauth/token")
def token() -> Response:
    """RFC 6749 §3.2 token endpoint: the grant table decides who answers (device_code, refresh,
    token exchange)."""
    params = _params()
    grant_type = required(params, "grant_type")
    credentials = client_credentials(request.headers, params)
    issued = services().token_endpoint.token(
        TokenRequest(
            grant_type,
            params,
            credentials.client_id,
            credentials.client_secret,
            client_ip(),
            dpop_jkt(),
        )
    )
    if isinstance(issued, ExchangedToken):
        # RFC 8693 §2.2.1. The device token is presented at the mobile API as a bearer token
        # (RFC 6750) or, bound to the app's key, with DPoP (RFC 9449): never N_A.
        return no_store(
            {
                "access_token": issued.access_token,
                "issued_token_type": issued.issued_token_type,
                "token_type": issued.token_type,
                "expires_in": issued.expires_in,
            }
        )
    # RFC 6749 §5.1; OIDC Core §3.1.3.3 adds the ID token.
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": issued.token_type,  # RFC 9449 §5: DPoP when bound to the proof's key
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    if issued.id_token is not None:
        body["id_token"] = issued.id_token
    return with_dpop_nonce(no_store(body))


@bp.post("/oauth/revoke")
def revoke() -> Response:
    """RFC 7009: a client revokes its own access or refresh token.

    200 whatever the token was (§2.2: unknown, expired, already revoked, or another client's,
    which is left untouched), so the answer says nothing about other clients' tokens.
    """
    params = _params()
    credentials = client_credentials(request.headers, params)
    caller = services().clients.authenticate(credentials.client_id, credentials.client_secret)
    services().lifecycle.revoke(
        caller, required(params, "token"), params.get("token_type_hint"), client_ip()
    )
    return no_store({})


@bp.post("/oauth/introspect")
def introspect() -> Response:
    """RFC 7662: is this token active, and what does it carry?

    §2.1 requires authorization: a confidential PC client (its own tokens only) or a resource
    server (any token of this issuer). Public clients cannot authenticate, so they are refused.
    """
    params = _params()
    credentials = client_credentials(request.headers, params)
    if not credentials.client_secret:
        raise errors.ClientAuthenticationFailed(
            "Introspection needs client credentials (RFC 7662 §2.1)."
        )
    caller = services().clients.authenticate(
        credentials.client_id, credentials.client_secret, kind=None
    )
    body = services().lifecycle.introspect(
        caller, required(params, "token"), params.get("token_type_hint")
    )
    return no_store(body)


@bp.post("/oauth/device_status")
def device_status() -> Response:
    """Non-standard status channel for the PC's screen; the device code stays in the body.

    Parameters: device_code, client authentication as on the token endpoint, and optionally
    `status` (the last one seen) with `wait` (seconds, bounded) to long-poll until it changes.
    """
    params = _params()
    credentials = client_credentials(request.headers, params)
    try:
        wait = float(params.get("wait", "0") or 0)
    except ValueError:
        raise errors.MalformedRequest("'wait' must be a number of seconds.") from None
    view = services().status_channel.status(
        required(params, "device_code"),
        credentials.client_id,
        credentials.client_secret,
        params.get("status"),
        wait,
        client_ip(),
    )
    body: dict[str, Any] = {"status": view.status.value, "expires_in": view.expires_in}
    if view.scanner:
        body["scanner"] = view.scanner
    if view.match_number is not None:
        body["match_number"] = view.match_number  # the PC shows it; the phone must pick it
    if view.qr_token is not None:
        # A rotating QR code: show verification_uri_complete + "&t=" + this token (or the
        # image /qr/<user code>.svg?t=...) until qr_token_expires_in, then ask again.
        body["qr_token"], body["qr_token_expires_in"] = view.qr_token
    return no_store(body)


@bp.get("/qr/<code>.<fmt>")
def qr_image(code: str, fmt: str) -> Response:
    """The QR code of verification_uri_complete for a user code, as PNG or SVG.

    It encodes only what the user code already says, so it needs no lookup (and is no oracle
    for which codes are live).
    """
    normalized = normalize_user_code(code)
    token = request.args.get("t")
    if normalized is None or fmt not in ("png", "svg") or not _plain_token(token):
        abort(404)
    text = verification_uri_complete(services().config, format_user_code(normalized))
    if token:  # a rotating QR code's scan token: checked when the phone scans, not here
        text = with_token(text, token)
    body, mimetype = (
        (qr_png(text), "image/png") if fmt == "png" else (qr_svg(text), "image/svg+xml")
    )
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "private, max-age=600"
    return response
