"""The one error table: every domain error and the wire error it becomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import errors as rfc6749
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc8628 import errors as rfc8628

from authserver.config import ASYMMETRIC_ALGORITHMS as DPOP_ALGORITHMS
from authserver.domain import errors

Wire = tuple[int, dict[str, Any], list[tuple[str, str]]]  # status, JSON body, headers


@dataclass(frozen=True, slots=True)
class WireError:
    """An error as the client sees it; `authlib` adds the RFC's headers (WWW-Authenticate)."""

    code: str
    status: int
    authlib: type[OAuth2Error] | None = None


# RFC 6749 §5.2 and RFC 8628 §3.5 codes where the RFCs define one; the mobile API's own codes
# otherwise, in the same JSON shape. (Authlib's UnsupportedGrantTypeError takes the grant type
# instead of a description, so that code goes through the generic class.)
ERROR_TABLE: dict[type[errors.DomainError], WireError] = {
    errors.MalformedRequest: WireError("invalid_request", 400, rfc6749.InvalidRequestError),
    errors.ClientAuthenticationFailed: WireError("invalid_client", 401, rfc6749.InvalidClientError),
    errors.InvalidScope: WireError("invalid_scope", 400, rfc6749.InvalidScopeError),
    errors.UnsupportedGrantType: WireError("unsupported_grant_type", 400),
    # RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6: sent to the redirect URI, never as JSON.
    errors.UnsupportedResponseType: WireError("unsupported_response_type", 400),
    errors.LoginRequired: WireError("login_required", 400),
    errors.AuthorizationPending: WireError(
        "authorization_pending", 400, rfc8628.AuthorizationPendingError
    ),
    errors.SlowDown: WireError("slow_down", 400, rfc8628.SlowDownError),
    errors.AccessDenied: WireError("access_denied", 400, rfc6749.AccessDeniedError),
    errors.FlowExpired: WireError("expired_token", 400, rfc8628.ExpiredTokenError),
    errors.InvalidGrant: WireError("invalid_grant", 400, rfc6749.InvalidGrantError),
    errors.InvalidTarget: WireError("invalid_target", 400),  # RFC 8693 §2.2.2
    errors.InvalidCredentials: WireError("invalid_credentials", 401),
    errors.InvalidDeviceToken: WireError("invalid_token", 401),  # RFC 6750 §3.1
    errors.FlowNotFound: WireError("not_found", 404),
    errors.FlowAlreadyScanned: WireError("already_scanned", 409),
    errors.FlowNotActionable: WireError("not_actionable", 409),
    errors.InvalidConfirmToken: WireError("invalid_confirm_token", 400),
    errors.NumberMismatch: WireError("number_mismatch", 400),
    errors.QrRefreshed: WireError("qr_refreshed", 410),
    errors.RateLimited: WireError("rate_limited", 429),
    errors.Conflict: WireError("conflict", 409),
    errors.MissingBearerToken: WireError("missing_token", 401),
    errors.InvalidAccessToken: WireError("invalid_token", 401),  # RFC 6750 §3.1
    errors.InsufficientScope: WireError("insufficient_scope", 403),  # RFC 6750 §3.1
    errors.UnauthorizedClient: WireError(
        "unauthorized_client", 400, rfc6749.UnauthorizedClientError
    ),
    errors.AdminAuthenticationFailed: WireError("invalid_admin_credentials", 401),
    errors.NotFound: WireError("not_found", 404),
    # RFC 6749 §4.1.2.1 defines the code (for redirects); it is used here in the §5.2 JSON
    # shape with a 503 and Retry-After (RFC 9110 §15.6.4). Authlib has no class for it.
    errors.TemporarilyUnavailable: WireError("temporarily_unavailable", 503),
    # RFC 9449 §5 and §8 (token endpoint); at a protected resource, §7.1 and §9 make them a
    # 401 with a DPoP challenge (see to_wire). UseDpopNonce first: it is an InvalidDpopProof.
    errors.UseDpopNonce: WireError("use_dpop_nonce", 400),
    errors.InvalidDpopProof: WireError("invalid_dpop_proof", 400),
}

# The protection space each bearer token belongs to (RFC 6750 §3): a phone's device token,
# an access token at the sample resource server.
_REALMS: dict[type[errors.DomainError], str] = {
    errors.InvalidDeviceToken: "mobile",
    errors.MissingBearerToken: "api",
    errors.InvalidAccessToken: "api",
    errors.InsufficientScope: "api",
}

# HTTP-level failures (routing, methods, sizes) in the same JSON shape.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _ascii(text: str) -> str:
    # RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
    return "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')


def to_wire(error: errors.DomainError, *, realm: str | None = None) -> Wire:
    """(status, JSON body, headers) for a domain error, per the table above; `realm` names the
    protection space of a bearer-token challenge where it is not the error's usual one."""
    wire = next(
        (entry for cls, entry in ERROR_TABLE.items() if isinstance(error, cls)),
        WireError("invalid_request", 400),
    )
    description = _ascii(error.description)
    if wire.authlib is not None:
        oauth_error = wire.authlib(description=description, status_code=wire.status)
    else:
        oauth_error = OAuth2Error(description=description, status_code=wire.status, error=wire.code)
    status, body, headers = oauth_error()
    # RFC 9110 §11.6.1: every 401 carries a challenge; the mobile API's is Bearer (RFC 6750).
    if wire.code == "invalid_credentials":
        headers.append(("WWW-Authenticate", 'Bearer realm="mobile"'))
    realm = realm or _REALMS.get(type(error))
    if isinstance(error, errors.MissingBearerToken):
        headers.append(("WWW-Authenticate", f'Bearer realm="{realm}"'))
    elif wire.code in ("invalid_token", "insufficient_scope"):
        headers.append(
            (
                "WWW-Authenticate",
                f'Bearer realm="{realm}", error="{wire.code}", error_description="{description}"',
            )
        )
    if isinstance(error, errors.InvalidDpopProof):
        if error.resource:
            status = 401
            headers.append(
                (
                    "WWW-Authenticate",
                    f'DPoP error="{wire.code}", error_description="{description}", '
                    f'algs="{" ".join(DPOP_ALGORITHMS)}"',
                )
            )
        if isinstance(error, errors.UseDpopNonce):
            headers.append(("DPoP-Nonce", error.nonce))
    if isinstance(error, errors.AdminAuthenticationFailed):
        headers.append(("WWW-Authenticate", 'Bearer realm="admin"'))
    if isinstance(error, errors.RateLimited | errors.TemporarilyUnavailable):
        headers.append(("Retry-After", str(error.retry_after)))
    return status, body, headers


# The codes an authorization response may carry (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6).
_REDIRECT_CODES = frozenset(
    {
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "login_required",
    }
)


def redirect_error(error: errors.DomainError) -> tuple[str, str]:
    """(error, error_description) of an authorization response (RFC 6749 §4.1.2.1), from the
    same table; what has no code there (a rate limit) is temporarily_unavailable, as a
    dependency failure is."""
    _, body, _ = to_wire(error)
    code = str(body["error"])
    if isinstance(error, errors.RateLimited):
        code = "temporarily_unavailable"
    elif code not in _REDIRECT_CODES:
        code = "server_error"
    return code, str(body.get("error_description", ""))


def http_to_wire(status: int, description: str) -> Wire:
    """An HTTP-level failure (404, 405, 413, any 5xx) as an RFC 6749 §5.2-shaped error."""
    if status >= 500:
        return server_error()
    code = _HTTP_CODES.get(status, "invalid_request")
    wire: Wire = OAuth2Error(description=_ascii(description), status_code=status, error=code)()
    return wire


def server_error() -> Wire:
    """A 500 that says nothing about internals."""
    wire: Wire = OAuth2Error(
        description="The server hit an unexpected condition. Try again later.",
        status_code=500,
        error="server_error",
    )()
    return wire
