"""A sample protected resource: what a resource server does with this server's access tokens."""

from __future__ import annotations

from flask import Blueprint, Response, request

from authserver.domain import errors
from authserver.web.common import no_store, services

bp = Blueprint("api", __name__, url_prefix="/api/v1")

FORM = "application/x-www-form-urlencoded"


def bearer_token(*, allow_body: bool = False) -> str:
    """The request's access token: the Authorization header (RFC 6750 §2.1) or, where
    `allow_body`, the `access_token` of a form-encoded POST body (§2.2); never both (§2)."""
    header = request.headers.get("Authorization")
    in_body = None
    if allow_body and request.method == "POST" and request.mimetype == FORM:
        in_body = request.form.get("access_token")
    if header is not None and in_body is not None:
        raise errors.MalformedRequest("Send the access token one way, not two (RFC 6750 §2).")
    if in_body is not None:
        if not in_body.strip():
            raise errors.MissingBearerToken()
        return in_body.strip()
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.MissingBearerToken()
    return token.strip()


def bearer_claims(
    required_scope: str | None = None, *, allow_body: bool = False
) -> dict[str, object]:
    """The claims of the request's bearer access token (RFC 6750 §2), checked locally.

    Like a resource server: the signature against the JWKS keys, iss, aud, typ and exp
    (RFC 9068 §4), then the jti deny-list, so a revoked token is refused within seconds.
    """
    claims = services().verifier.verify(bearer_token(allow_body=allow_body))
    if required_scope and required_scope not in str(claims.get("scope", "")).split():
        raise errors.InsufficientScope(f"This resource needs the {required_scope!r} scope.")
    return claims


@bp.get("/me")
def me() -> Response:
    """Who the access token speaks for."""
    claims = bearer_claims()
    scopes = str(claims["scope"]).split()
    body: dict[str, object] = {
        "sub": claims["sub"],
        "client_id": claims["client_id"],
        "scope": claims["scope"],
    }
    if "profile" in scopes:
        user = services().accounts.user(str(claims["sub"]))
        if user is not None:
            body.update(username=user.username, name=user.display_name)
    return no_store(body)
