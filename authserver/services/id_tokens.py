"""The one place ID tokens are made (OpenID Connect Core §2, §3.1.3.6, §12.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jwt

from authserver.config import Config
from authserver.domain.models import User
from authserver.domain.oidc import claims_for
from authserver.services.keys import ALGORITHM, KeyRing

__all__ = ["IdTokenMinter", "claims_for"]


class IdTokenMinter:
    """Signs ID tokens with the key that signs access tokens, published at jwks_uri.

    An ID token lives as long as an access token (AUTHSERVER_ACCESS_TOKEN_TTL): the key ring
    keeps a retired key in the JWKS that long after its last signature, which covers both.
    """

    def __init__(self, config: Config, keys: KeyRing) -> None:
        self._config = config
        self._keys = keys

    def id_token(
        self,
        *,
        user: User,
        client_id: str,
        scope: str,
        auth_time: float,
        amr: Sequence[str],
        acr: str | None,
        nonce: str | None,
        now: float,
    ) -> str:
        """An ID token for `client_id` about `user`, with the claims `scope` releases.

        `aud` is the client alone, so `azp` is not needed (§2: it is for a party other than
        the single audience). On refresh the caller passes the original auth_time, amr and acr
        and no nonce (§12.2): the refreshed token describes the same authentication.
        """
        claims: dict[str, Any] = {
            **claims_for(user, scope),
            "iss": self._config.issuer,
            "aud": client_id,
            "iat": int(now),
            "exp": int(now) + self._config.access_token_ttl,
            "auth_time": int(auth_time),
        }
        if nonce is not None:
            claims["nonce"] = nonce  # §3.1.3.6: unmodified from the authentication request
        if amr:
            claims["amr"] = list(amr)
        if acr is not None:
            claims["acr"] = acr
        kid, algorithm, private_key = self._keys.signer()
        # typ "JWT", never "at+jwt": an ID token never passes as an access token (RFC 9068 §4).
        return jwt.encode(
            claims, private_key, algorithm=algorithm, headers={"typ": "JWT", "kid": kid}
        )

    def hint_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of an ID token this server signed, expired or not (OIDC RP-Initiated
        Logout §2: an id_token_hint may have expired), or None."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM or str(header.get("typ", "")).lower() != "jwt":
                return None
            key = self._keys.verification_key(str(header.get("kid", "")))
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._config.issuer,
                options={"verify_exp": False, "verify_aud": False, "require": ["sub", "aud"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("aud"), str):
            return None
        return claims
