"""What clients and resource servers ask about issued tokens: RFC 7662 and RFC 7009."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authserver.config import Config
from authserver.domain.codes import hash_secret
from authserver.domain.models import (
    Actor,
    Client,
    ClientKind,
    RefreshTokenStanding,
    RevocationReason,
    TokenFamily,
)
from authserver.domain.ports import TokenRepository
from authserver.services.accounts import AccountService
from authserver.services.clients import ClientService
from authserver.services.revocation import Revocations
from authserver.services.tokens import AccessTokenVerifier

INACTIVE: dict[str, Any] = {"active": False}


class TokenLifecycle:
    """Introspection (RFC 7662) and revocation (RFC 7009) of access and refresh tokens."""

    def __init__(
        self,
        config: Config,
        tokens: TokenRepository,
        clients: ClientService,
        accounts: AccountService,
        verifier: AccessTokenVerifier,
        revocations: Revocations,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._clients = clients
        self._accounts = accounts
        self._verifier = verifier
        self._revocations = revocations
        self._clock = clock

    @staticmethod
    def _lookups(token: str, hint: str | None) -> tuple[str, str]:
        # RFC 7009 §2.1 / RFC 7662 §2.1: the hint only orders the search; an unknown hint is
        # ignored. Without one, a JWT (three dot-separated parts) is tried as an access token.
        if hint == "refresh_token" or (hint != "access_token" and token.count(".") != 2):
            return ("refresh_token", "access_token")
        return ("access_token", "refresh_token")

    # --- RFC 7662 -----------------------------------------------------------------------
    def introspect(self, caller: Client, token: str, hint: str | None) -> dict[str, Any]:
        """The token's claims if it is active and the caller may see it, else {"active": false}.

        A PC client sees only its own tokens; a resource server sees every token of this
        issuer. Revoked, expired, unknown and foreign tokens all read the same (RFC 7662 §2.2).
        """
        for kind in self._lookups(token, hint):
            found = (
                self._introspect_access(token)
                if kind == "access_token"
                else self._introspect_refresh(token)
            )
            if found is not None:
                family, claims = found
                if not self._may_see(caller, family):
                    return INACTIVE
                return claims
        return INACTIVE

    def _may_see(self, caller: Client, family: TokenFamily) -> bool:
        return caller.kind is ClientKind.RESOURCE_SERVER or caller.client_id == family.client_id

    def _live_family(self, family_id: str) -> TokenFamily | None:
        family = self._tokens.family(family_id)
        if family is None or family.revoked_at is not None:
            return None
        client = self._clients.get(family.client_id)
        if client is None or client.disabled_at is not None:
            return None
        return family

    def _username(self, user_id: str) -> str | None:
        user = self._accounts.user(user_id)
        return user.username if user else None

    def _introspect_access(self, token: str) -> tuple[TokenFamily, dict[str, Any]] | None:
        # Authoritative from SQL, so it needs no deny-list: it answers while Redis is down.
        claims = self._verifier.decode(token)
        if claims is None or self._clock() >= claims["exp"]:
            return None
        family = self._live_family(claims["sid"])
        if family is None or self._tokens.access_token_revoked(claims["jti"]):
            return None
        cnf = claims.get("cnf")
        body = {
            "active": True,
            # RFC 9449 §6.2: a bound token says so, and its key, for the resource to check.
            "token_type": "DPoP" if isinstance(cnf, dict) else "Bearer",
            "cnf": cnf if isinstance(cnf, dict) else None,
            "scope": claims["scope"],
            "client_id": claims["client_id"],
            "username": self._username(claims["sub"]),
            "sub": claims["sub"],
            "aud": claims["aud"],
            "iss": claims["iss"],
            "exp": claims["exp"],
            "iat": claims["iat"],
            "jti": claims["jti"],
        }
        return family, {k: v for k, v in body.items() if v is not None}

    def _introspect_refresh(self, token: str) -> tuple[TokenFamily, dict[str, Any]] | None:
        presented = self._tokens.presented_refresh_token(hash_secret(token), lock=False)
        if presented is None or presented.standing is not RefreshTokenStanding.CURRENT:
            return None
        if presented.expires_at is None or self._clock() >= presented.expires_at:
            return None
        family = self._live_family(presented.family.id)
        if family is None:
            return None
        body = {
            "active": True,
            "token_type": "refresh_token",
            "scope": family.scope,
            "client_id": family.client_id,
            "username": self._username(family.user_id),
            "sub": family.user_id,
            "iss": self._config.issuer,
            "exp": int(presented.expires_at),
        }
        return family, {k: v for k, v in body.items() if v is not None}

    # --- RFC 7009 -----------------------------------------------------------------------
    def revoke(self, caller: Client, token: str, hint: str | None, ip: str) -> None:
        """Revoke the caller's own token; anything else is left alone, and the answer is the same.

        A refresh token takes its whole grant with it (RFC 7009 §2.1: "SHOULD also invalidate
        all access tokens based on the same authorization grant"); an access token goes alone.
        """
        actor = Actor("client", caller.client_id)
        for kind in self._lookups(token, hint):
            if kind == "refresh_token":
                presented = self._tokens.presented_refresh_token(hash_secret(token), lock=False)
                if presented is not None:
                    family = presented.family
                    if family.client_id == caller.client_id:
                        self._revocations.revoke_family(
                            family, RevocationReason.REVOKED_BY_CLIENT, actor, ip
                        )
                    return
            else:
                claims = self._verifier.decode(token)
                if claims is None:
                    continue
                owner = self._tokens.family(claims["sid"])
                if owner is not None:
                    if owner.client_id == caller.client_id and self._clock() < claims["exp"]:
                        self._revocations.revoke_access_token(
                            claims["jti"], float(claims["exp"]), owner, actor, ip
                        )
                    return
