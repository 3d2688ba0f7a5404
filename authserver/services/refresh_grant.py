"""The refresh_token grant (RFC 6749 §6): rotation, scope narrowing and reuse detection."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from authserver.domain import errors
from authserver.domain.codes import hash_secret
from authserver.domain.models import Actor, TokenFamily
from authserver.domain.ports import TokenRepository
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.revocation import Revocations
from authserver.services.token_endpoint import TokenRequest
from authserver.services.tokens import IssuedTokens, TokenMinter


class RefreshGrant:
    """Refresh tokens rotate; a spent one presented again revokes its family (RFC 9700 §4.14.2)."""

    grant_type = "refresh_token"

    def __init__(
        self,
        clients: ClientService,
        tokens: TokenRepository,
        minter: TokenMinter,
        revocations: Revocations,
        auditor: Auditor,
        clock: Callable[[], float],
    ) -> None:
        self._clients = clients
        self._tokens = tokens
        self._minter = minter
        self._revocations = revocations
        self._audit = auditor
        self._clock = clock

    def token(self, request: TokenRequest) -> IssuedTokens:
        """The token endpoint's refresh_token grant (the grant table's entry)."""
        client = self._clients.authenticate(request.client_id, request.client_secret)
        issued = self.refresh(
            request.required("refresh_token"),
            client.client_id,
            request.params.get("scope"),
            request.ip,
        )
        self._audit.record(
            "token.refreshed",
            Actor("client", client.client_id),
            ip=request.ip,
            user_id=issued.user_id,
            client_id=client.client_id,
            family_id=issued.family_id,
            scope=issued.scope,
        )
        return issued

    def refresh(
        self, refresh_token: str, client_id: str, scope: str | None, ip: str
    ) -> IssuedTokens:
        """Rotate `refresh_token` of `client_id`, optionally narrowing the scope."""
        now = self._clock()
        old_hash = hash_secret(refresh_token)
        stored = self._tokens.refresh_token(old_hash)
        family = self._tokens.family(stored.family_id) if stored else None
        if stored is None or family is None or family.client_id != client_id:
            raise errors.InvalidGrant("The refresh token is invalid.")
        if family.revoked_at is not None:
            raise errors.InvalidGrant("The refresh token was revoked.")
        if stored.consumed_at is not None:
            self._replayed(family, ip)
        if now >= stored.expires_at:
            raise errors.InvalidGrant("The refresh token has expired.")
        granted = family.scope
        if scope is not None and scope.strip():
            # RFC 6749 §6: the new scope may not include any scope not originally granted.
            if not set(scope.split()) <= set(family.scope.split()):
                raise errors.InvalidScope("The scope exceeds what was originally granted.")
            granted = " ".join(s for s in family.scope.split() if s in scope.split())
        issued = self._minter.rotate(family, old_hash, granted, now)
        if issued is None:
            # Lost a race with another use of the same token, or the family was just revoked:
            # both mean this token is spent, so treat it as a replay.
            self._replayed(family, ip)
        return issued

    def _replayed(self, family: TokenFamily, ip: str) -> NoReturn:
        """A spent refresh token came back: revoke its whole family (RFC 9700 §4.14.2)."""
        caller = Actor("client", family.client_id)
        self._revocations.revoke_family(family, "refresh_token_replay", caller, ip)
        raise errors.InvalidGrant("The refresh token was already used; the grant is revoked.")
