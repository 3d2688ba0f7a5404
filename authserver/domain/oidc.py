"""OpenID Connect's vocabulary: scopes that mean something, claims, and how a user authenticated.

Pure rules (stdlib only): which scope yields an ID token or a refresh token, which claims a scope
releases (OIDC Core §5.4), and the `amr`/`acr` of each way this server authenticates a user.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from authserver.domain.models import User

# The platform a browser signed in on the verification page (/device) gets: it is a signed-in
# device like a phone, but the user typed a password there (web/verification.py).
WEB_PLATFORM = "web"


class Scope(enum.StrEnum):
    """The scopes with a meaning here (OIDC Core §5.4, §11); others are the operator's own."""

    OPENID = "openid"  # an OpenID Connect request: an ID token, and userinfo access
    PROFILE = "profile"  # name, preferred_username
    EMAIL = "email"  # email, email_verified (when the user has an email)
    OFFLINE_ACCESS = "offline_access"  # a refresh token for an OpenID Connect request


class AuthMethod(enum.StrEnum):
    """`amr` values (RFC 8176 §2), the ones that describe this server's sign-ins."""

    # A QR login approved on a signed-in phone: the request shows on one device and is approved
    # over the phone's own channel ("authentication involves communication over more than one
    # distinct communication channel"), by the user tapping Approve there (a presence test).
    MULTIPLE_CHANNEL = "mca"
    USER_PRESENCE = "user"
    # A password typed on the verification page (/device).
    PASSWORD = "pwd"


class AuthContext(enum.StrEnum):
    """`acr` values (OIDC Core §2): the classes of authentication this server performs."""

    PHONE = "phone"  # approved on a signed-in phone: possession of it, and its user's approval
    PASSWORD = "password"  # username and password on the verification page only


@dataclass(frozen=True, slots=True)
class Authentication:
    """How and when the user authenticated for a grant (OIDC Core §2 auth_time, amr, acr)."""

    time: float
    methods: tuple[AuthMethod, ...]

    @property
    def context(self) -> AuthContext | None:
        return context_of(self.methods)


def context_of(methods: tuple[str, ...]) -> AuthContext | None:
    """The `acr` that a set of `amr` values amounts to; None for methods not known here."""
    if AuthMethod.MULTIPLE_CHANNEL in methods:
        return AuthContext.PHONE
    if AuthMethod.PASSWORD in methods:
        return AuthContext.PASSWORD
    return None


def approval_authentication(
    platform: str, *, approved_at: float, signed_in_at: float
) -> Authentication:
    """How the user behind an approval authenticated.

    On the verification page the user authenticated with the password that signed the browser
    in (`signed_in_at`; the approval is a click within that session). On a phone the approval
    itself is the authentication: the signed-in phone, in the user's hand, approves.
    """
    if platform == WEB_PLATFORM:
        return Authentication(signed_in_at, (AuthMethod.PASSWORD,))
    return Authentication(approved_at, (AuthMethod.MULTIPLE_CHANNEL, AuthMethod.USER_PRESENCE))


def scopes_of(scope: str) -> frozenset[str]:
    return frozenset(scope.split())


def wants_id_token(scope: str) -> bool:
    """OIDC Core §3.1.2.1: a request is an OpenID Connect request iff it has `openid`."""
    return Scope.OPENID in scopes_of(scope)


def gets_refresh_token(scope: str) -> bool:
    """A refresh token for plain OAuth grants (as always) and for OpenID Connect grants that
    asked for `offline_access` (OIDC Core §11); an OpenID Connect grant without it gets none,
    so "stay signed in" is something the client asks for and the user sees on the approval."""
    granted = scopes_of(scope)
    return Scope.OPENID not in granted or Scope.OFFLINE_ACCESS in granted


# What each scope releases (OIDC Core §5.4); `sub` is always released.
SCOPE_CLAIMS: dict[Scope, tuple[str, ...]] = {
    Scope.PROFILE: ("name", "preferred_username"),
    Scope.EMAIL: ("email", "email_verified"),
}

# Every claim an ID token or the userinfo endpoint may carry (OIDC Discovery claims_supported).
CLAIMS_SUPPORTED = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "acr",
    *(claim for claims in SCOPE_CLAIMS.values() for claim in claims),
)


def claims_for(user: User, scope: str) -> dict[str, Any]:
    """The user's claims a grant of `scope` releases: `sub`, then per scope (OIDC Core §5.4).

    `email` only when the user has one (a claim is omitted rather than null, §5.3.2).
    """
    granted = scopes_of(scope)
    claims: dict[str, Any] = {"sub": user.user_id}
    if Scope.PROFILE in granted:
        claims["name"] = user.display_name
        claims["preferred_username"] = user.username
    if Scope.EMAIL in granted and user.email:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    return claims
