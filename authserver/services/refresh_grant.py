"""The refresh_token grant (RFC 6749 §6): rotation, scope narrowing and reuse detection."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.codes import hash_secret
from authserver.domain.models import (
    Actor,
    AuditEventType,
    PresentedRefreshToken,
    RefreshTokenStanding,
    RevocationReason,
    TokenFamily,
)
from authserver.domain.oidc import context_of, wants_id_token
from authserver.domain.ports import TokenRepository, Transaction, UserRepository
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.id_tokens import IdTokenMinter
from authserver.services.revocation import Revocations
from authserver.services.token_endpoint import TokenRequest
from authserver.services.tokens import IssuedTokens, TokenMinter

_REPLAYED = "The refresh token was already used; the grant is revoked."


class RefreshGrant:
    """Refresh tokens rotate; a spent one presented again revokes its family (RFC 9700
    §4.14.2), except the one the last rotation replaced, once, within AUTHSERVER_REFRESH_GRACE
    seconds: that rotation's response may have been lost on the network."""

    grant_type = "refresh_token"

    def __init__(
        self,
        config: Config,
        clients: ClientService,
        tokens: TokenRepository,
        users: UserRepository,
        minter: TokenMinter,
        id_tokens: IdTokenMinter,
        revocations: Revocations,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._clients = clients
        self._tokens = tokens
        self._users = users
        self._minter = minter
        self._id_tokens = id_tokens
        self._revocations = revocations
        self._audit = auditor
        self._transaction = transaction
        self._clock = clock

    def token(self, request: TokenRequest) -> IssuedTokens:
        """The token endpoint's refresh_token grant (the grant table's entry)."""
        client = self._clients.authenticate(request.client_id, request.client_secret)
        return self.refresh(
            request.required("refresh_token"),
            client.client_id,
            request.params.get("scope"),
            request.ip,
            dpop_jkt=request.dpop_jkt,
            key_bound=not client.is_confidential,
        )

    def refresh(
        self,
        refresh_token: str,
        client_id: str,
        scope: str | None,
        ip: str,
        *,
        dpop_jkt: str | None = None,
        key_bound: bool = False,
    ) -> IssuedTokens:
        """Rotate `refresh_token` of `client_id`, optionally narrowing the scope: one unit of
        work, the family row locked from lookup to commit.

        RFC 9449 §5: a public client's refresh token issued with a DPoP key (`key_bound`) works
        only with a proof of that key; a stolen one is refused and changes nothing. The new
        access token is bound to the key of this request's proof, if any."""
        now = self._clock()
        presented_hash = hash_secret(refresh_token)
        issued: IssuedTokens | None = None
        with self._transaction():
            presented = self._tokens.presented_refresh_token(presented_hash)
            if presented is None or presented.family.client_id != client_id:
                raise errors.InvalidGrant("The refresh token is invalid.")
            family = presented.family
            if family.revoked_at is not None:
                raise errors.InvalidGrant("The refresh token was revoked.")
            if key_bound and family.dpop_jkt is not None and dpop_jkt != family.dpop_jkt:
                if dpop_jkt is None:
                    raise errors.InvalidDpopProof(
                        "This refresh token is bound to a DPoP key: send a proof signed with it."
                    )
                raise errors.InvalidGrant("The refresh token is bound to another DPoP key.")
            from_current = presented.standing is RefreshTokenStanding.CURRENT
            granted = family.scope
            if self._may_rotate(presented, now):
                if presented.expires_at is None or now >= presented.expires_at:
                    raise errors.InvalidGrant("The refresh token has expired.")
                granted = self._narrowed(family.scope, scope)
                grace = self._config.refresh_grace
                # None: the family moved under us (it was revoked): the token is spent.
                issued = self._minter.rotate(
                    presented,
                    presented_hash,
                    granted,
                    now,
                    now + grace if from_current and grace else None,
                    dpop_jkt,
                )
                if issued is not None and wants_id_token(granted):
                    issued = dataclasses.replace(
                        issued, id_token=self._id_token(family, granted, now)
                    )
            caller = Actor("client", client_id)
            if issued is None:
                self._revocations.revoke_family(
                    family, RevocationReason.REFRESH_TOKEN_REPLAY, caller, ip
                )
            else:
                self._audit.record(
                    AuditEventType.TOKEN_REFRESHED,
                    caller,
                    ip=ip,
                    user_id=family.user_id,
                    client_id=client_id,
                    family_id=family.id,
                    scope=granted,
                    grace=not from_current,
                )
        if issued is None:
            # Raised after the unit of work, which committed the revocation.
            raise errors.InvalidGrant(_REPLAYED)
        return issued

    def _id_token(self, family: TokenFamily, scope: str, now: float) -> str:
        """A new ID token about the same authentication (OIDC Core §12.2): same iss, sub and
        aud, a new iat, the original auth_time, amr and acr, and no nonce (no new request)."""
        user = self._users.get(family.user_id)
        if user is None:
            raise errors.InvalidGrant("The refresh token's user no longer exists.")
        return self._id_tokens.id_token(
            user=user,
            client_id=family.client_id,
            scope=scope,
            auth_time=family.auth_time if family.auth_time is not None else family.created_at,
            amr=family.amr,
            acr=context_of(family.amr),
            nonce=None,
            now=now,
        )

    def _may_rotate(self, presented: PresentedRefreshToken, now: float) -> bool:
        """The current token, or the previous one inside its one-time grace period."""
        if presented.standing is RefreshTokenStanding.CURRENT:
            return True
        return (
            presented.standing is RefreshTokenStanding.PREVIOUS
            and presented.grace_until is not None
            and now < presented.grace_until
        )

    @staticmethod
    def _narrowed(granted: str, requested: str | None) -> str:
        """RFC 6749 §6: the new scope may not include any scope not originally granted."""
        if requested is None or not requested.strip():
            return granted
        if not set(requested.split()) <= set(granted.split()):
            raise errors.InvalidScope("The scope exceeds what was originally granted.")
        return " ".join(s for s in granted.split() if s in requested.split())
