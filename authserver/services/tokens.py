"""The one token minter (RFC 9068 JWT access tokens, opaque rotating refresh tokens) and the
access-token verifier a resource server would run."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.codes import hash_secret, new_token
from authserver.domain.models import PresentedRefreshToken, RefreshToken, TokenFamily
from authserver.domain.oidc import gets_refresh_token
from authserver.domain.ports import TokenRepository
from authserver.services.keys import ALGORITHM, KeyRing
from authserver.services.revocation import Revocations


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What the token endpoint returns (RFC 6749 §5.1)."""

    access_token: str
    refresh_token: str | None  # None: an OpenID Connect grant without offline_access
    expires_in: int
    scope: str
    family_id: str
    user_id: str
    id_token: str | None = None  # OIDC Core §3.1.3.3: when `openid` was granted
    # RFC 9449 §5: "DPoP" when the access token is bound to the key of the request's proof.
    token_type: str = "Bearer"


class TokenMinter:
    """The one place tokens are made: access JWTs (RFC 9068) and opaque refresh tokens."""

    def __init__(
        self,
        config: Config,
        tokens: TokenRepository,
        keys: KeyRing,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._keys = keys
        self._clock = clock

    def access_token(
        self, family: TokenFamily, now: float, dpop_jkt: str | None = None
    ) -> tuple[str, str, float]:
        """An RFC 9068 access token: (jwt, jti, expires_at).

        `sid` names its session (token family), so revoking the family reaches every access
        token it produced through one deny-list entry, without a row per token. With
        `dpop_jkt`, the token is bound to that DPoP key (RFC 9449 §6.1 `cnf.jkt`).
        """
        jti = uuid.uuid4().hex
        expires_at = int(now) + self._config.access_token_ttl
        claims = {
            "iss": self._config.issuer,
            "sub": family.user_id,
            "aud": self._config.audience,
            "client_id": family.client_id,
            "iat": int(now),
            "exp": expires_at,
            "jti": jti,
            "sid": family.id,
            "scope": family.scope,
        }
        if dpop_jkt is not None:
            claims["cnf"] = {"jkt": dpop_jkt}
        kid, algorithm, private_key = self._keys.signer()
        token = jwt.encode(
            claims,
            private_key,
            algorithm=algorithm,
            headers={"typ": "at+jwt", "kid": kid},  # RFC 9068 §2.1
        )
        return token, jti, float(expires_at)

    def _refresh_token(self, family: TokenFamily, now: float) -> tuple[str, RefreshToken]:
        token = new_token()
        return token, RefreshToken(
            hash_secret(token), family.id, now + self._config.refresh_token_ttl
        )

    def issue(self, family: TokenFamily) -> IssuedTokens | None:
        """A new family with its first access token and, if its scope gets one, refresh token,
        stored in the caller's unit of work; None (nothing stored) if a family already holds
        its device code."""
        now = self._clock()
        refresh: str | None = None
        stored: RefreshToken | None = None
        if gets_refresh_token(family.scope):
            refresh, stored = self._refresh_token(family, now)
        if not self._tokens.issue(family, stored):
            return None
        access, _, _ = self.access_token(family, now, family.dpop_jkt)
        return IssuedTokens(
            access,
            refresh,
            self._config.access_token_ttl,
            family.scope,
            family.id,
            family.user_id,
            token_type=_token_type(family.dpop_jkt),
        )

    def rotate(
        self,
        presented: PresentedRefreshToken,
        presented_hash: str,
        scope: str,
        now: float,
        grace_until: float | None,
        dpop_jkt: str | None = None,
    ) -> IssuedTokens | None:
        """Replace a presented refresh token with a new one and mint an access token (RFC 6749
        §6), in the caller's unit of work; None if the family moved meanwhile or is revoked.
        The access token is bound to `dpop_jkt`, the key of this request's proof (RFC 9449 §5)."""
        family = presented.family
        refresh, stored = self._refresh_token(family, now)
        if not self._tokens.rotate(
            family.id, presented.standing, presented_hash, stored, now, grace_until
        ):
            return None
        access, _, _ = self.access_token(dataclasses.replace(family, scope=scope), now, dpop_jkt)
        return IssuedTokens(
            access,
            refresh,
            self._config.access_token_ttl,
            scope,
            family.id,
            family.user_id,
            token_type=_token_type(dpop_jkt),
        )


def _token_type(dpop_jkt: str | None) -> str:
    """RFC 9449 §5: a DPoP-bound access token's token_type is DPoP."""
    return "DPoP" if dpop_jkt is not None else "Bearer"


class AccessTokenVerifier:
    """Checks an access token as a resource server does: signature, claims, expiry, deny-list."""

    def __init__(
        self,
        config: Config,
        keys: KeyRing,
        revocations: Revocations,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._keys = keys
        self._revocations = revocations
        self._clock = clock

    def decode(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed with a published key, expired or not."""
        try:
            header = jwt.get_unverified_header(token)
            # RFC 9068 §4: the typ must be at+jwt, so no other JWT passes as an access token.
            typ = str(header.get("typ", "")).lower()
            if typ not in ("at+jwt", "application/at+jwt") or header.get("alg") != ALGORITHM:
                return None
            key = self._keys.verification_key(str(header.get("kid", "")))
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._config.audience,
                issuer=self._config.issuer,
                # Expiry is decided below with the injected clock, like every other expiry.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iat", "jti", "sid", "sub", "client_id", "scope"],
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        if not isinstance(claims.get("exp"), int) or not isinstance(claims.get("jti"), str):
            return None
        if not isinstance(claims.get("sid"), str):
            return None
        return claims

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unexpired, unrevoked access token; else InvalidAccessToken."""
        claims = self.decode(token)
        if claims is None:
            raise errors.InvalidAccessToken()
        if self._clock() >= claims["exp"]:
            raise errors.InvalidAccessToken("The access token has expired.")
        if self._revocations.is_denied(claims["jti"], claims["sid"]):
            raise errors.InvalidAccessToken("The access token was revoked.")
        return claims
