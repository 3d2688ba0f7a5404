"""The one error table: every domain error and the wire error it becomes."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import errors as rfc6749
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc8628 import errors as rfc8628

from authserver.domain import errors

# domain error -> (wire error code, HTTP status). RFC 6749 §5.2 and RFC 8628 §3.5 codes where the
# RFCs define one; the mobile API's own codes otherwise, in the same JSON shape.
ERROR_TABLE: dict[type[errors.DomainError], tuple[str, int]] = {
    errors.MalformedRequest: ("invalid_request", 400),
    errors.ClientAuthenticationFailed: ("invalid_client", 401),
    errors.InvalidScope: ("invalid_scope", 400),
    errors.UnsupportedGrantType: ("unsupported_grant_type", 400),
    errors.AuthorizationPending: ("authorization_pending", 400),
    errors.SlowDown: ("slow_down", 400),
    errors.AccessDenied: ("access_denied", 400),
    errors.FlowExpired: ("expired_token", 400),
    errors.InvalidGrant: ("invalid_grant", 400),
    errors.InvalidCredentials: ("invalid_credentials", 401),
    errors.InvalidDeviceToken: ("invalid_token", 401),  # RFC 6750 §3.1
    errors.FlowNotFound: ("not_found", 404),
    errors.FlowAlreadyScanned: ("already_scanned", 409),
    errors.FlowNotActionable: ("not_actionable", 409),
    errors.InvalidConfirmToken: ("invalid_confirm_token", 400),
    errors.RateLimited: ("rate_limited", 429),
    errors.Conflict: ("conflict", 409),
}

# Authlib's classes for the RFC codes, so their headers (e.g. WWW-Authenticate) come along.
_AUTHLIB_CLASSES: dict[str, type[OAuth2Error]] = {
    "invalid_request": rfc6749.InvalidRequestError,
    "invalid_client": rfc6749.InvalidClientError,
    "invalid_scope": rfc6749.InvalidScopeError,
    # unsupported_grant_type: Authlib's class takes the grant type, not a description; the
    # generic OAuth2Error below gives the same body and headers.
    "authorization_pending": rfc8628.AuthorizationPendingError,
    "slow_down": rfc8628.SlowDownError,
    "access_denied": rfc6749.AccessDeniedError,
    "expired_token": rfc8628.ExpiredTokenError,
    "invalid_grant": rfc6749.InvalidGrantError,
}


def _ascii(text: str) -> str:
    # RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
    return "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')


def to_wire(error: errors.DomainError) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """(status, JSON body, headers) for a domain error, per the table above."""
    code, status = next(
        (entry for cls, entry in ERROR_TABLE.items() if isinstance(error, cls)),
        ("invalid_request", 400),
    )
    authlib_class = _AUTHLIB_CLASSES.get(code)
    description = _ascii(error.description)
    if authlib_class is not None:
        wire = authlib_class(description=description, status_code=status)
    else:
        wire = OAuth2Error(description=description, status_code=status, error=code)
    status, body, headers = wire()
    if code == "invalid_credentials":  # RFC 9110 §11.6.1: every 401 carries a challenge
        headers.append(("WWW-Authenticate", 'Bearer realm="mobile"'))
    if code == "invalid_token":
        headers.append(
            ("WWW-Authenticate", f'Bearer error="invalid_token", error_description="{description}"')
        )
    if isinstance(error, errors.RateLimited):
        headers.append(("Retry-After", str(error.retry_after)))
    return status, body, headers


def server_error() -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
    """A 500 that says nothing about internals."""
    status, body, headers = OAuth2Error(
        description="The server hit an unexpected condition. Try again later.",
        status_code=500,
        error="server_error",
    )()
    return status, body, headers
