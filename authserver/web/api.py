"""A sample protected resource: what a resource server does with this server's access tokens."""

from __future__ import annotations

from flask import Blueprint, Response, request

from authserver.domain import errors
from authserver.web.common import no_store, services

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def bearer_claims(required_scope: str | None = None) -> dict[str, object]:
    """The claims of the request's bearer access token (RFC 6750 §2.1), checked locally.

    Like a resource server: the signature against the JWKS keys, iss, aud, typ and exp
    (RFC 9068 §4), then the jti deny-list, so a revoked token is refused within seconds.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.MissingBearerToken()
    claims = services().verifier.verify(token.strip())
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
