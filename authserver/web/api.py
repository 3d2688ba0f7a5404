"""A sample protected resource: what a resource server does with this server's access tokens."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request

from authserver.domain import errors
from authserver.web.common import dpop_jkt, no_store, services, with_dpop_nonce

bp = Blueprint("api", __name__, url_prefix="/api/v1")

FORM = "application/x-www-form-urlencoded"


def bearer_token(*, allow_body: bool = False) -> tuple[str, str]:
    """The request's access token and how it came: (scheme, token). The Authorization header
    with the Bearer (RFC 6750 §2.1) or DPoP (RFC 9449 §7.1) scheme or, where `allow_body`, the
    `access_token` of a form-encoded POST body (RFC 6750 §2.2, a bearer token); never both."""
    header = request.headers.get("Authorization")
    in_body = None
    if allow_body and request.method == "POST" and request.mimetype == FORM:
        in_body = request.form.get("access_token")
    if header is not None and in_body is not None:
        raise errors.MalformedRequest("Send the access token one way, not two (RFC 6750 §2).")
    if in_body is not None:
        if not in_body.strip():
            raise errors.MissingBearerToken()
        return "bearer", in_body.strip()
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() not in ("bearer", "dpop") or not token.strip():
        raise errors.MissingBearerToken()
    return scheme.lower(), token.strip()


def bearer_claims(
    required_scope: str | None = None, *, allow_body: bool = False
) -> dict[str, object]:
    """The claims of the request's access token, checked locally.

    Like a resource server: the signature against the JWKS keys, iss, aud, typ and exp
    (RFC 9068 §4), then the jti deny-list, so a revoked token is refused within seconds; and
    for a DPoP-bound token, the proof of its key (RFC 9449 §7.1).
    """
    scheme, token = bearer_token(allow_body=allow_body)
    claims = services().verifier.verify(token)
    cnf = claims.get("cnf")
    bound = cnf.get("jkt") if isinstance(cnf, dict) else None
    if isinstance(bound, str):
        # RFC 9449 §7.2: a DPoP-bound token is never accepted as a bearer token.
        if scheme != "dpop":
            raise errors.InvalidAccessToken(
                "This access token is DPoP-bound: send 'Authorization: DPoP <token>' with a proof."
            )
        proved = dpop_jkt(access_token=token, resource=True)
        if proved is None:
            raise errors.InvalidDpopProof("Send a DPoP proof with this token.", resource=True)
        if not hmac.compare_digest(proved, bound):
            raise errors.InvalidDpopProof(
                "The DPoP proof is signed with another key than the token's.", resource=True
            )
    elif scheme == "dpop":
        raise errors.InvalidAccessToken("This access token is not DPoP-bound: send it as Bearer.")
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
    return with_dpop_nonce(no_store(body))
