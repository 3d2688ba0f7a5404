"""The authorization_code grant of the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.5-4.6,
OIDC Core §3.1.3)."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.authorization import verifier_matches
from authserver.domain.codes import hash_secret
from authserver.domain.flow import approval_withdrawn
from authserver.domain.models import (
    Actor,
    AuditEventType,
    Authorization,
    GrantType,
    RevocationReason,
    TokenFamily,
)
from authserver.domain.oidc import context_of, wants_id_token
from authserver.domain.ports import (
    AuthorizationCodeRepository,
    MobileDeviceRepository,
    TokenRepository,
    Transaction,
)
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.id_tokens import IdTokenMinter
from authserver.services.revocation import Revocations
from authserver.services.token_endpoint import TokenRequest
from authserver.services.tokens import IssuedTokens, TokenMinter


class _Refusal(enum.StrEnum):
    """Why an exchange issues nothing (each is invalid_grant on the wire, RFC 6749 §5.2)."""

    UNKNOWN = "The authorization code is invalid, expired, or was issued to another client."
    REPLAYED = "The authorization code was already used."
    REDIRECT_URI = "redirect_uri does not match the authorization request's."
    VERIFIER = "code_verifier does not match the code_challenge (RFC 7636 §4.6)."


class AuthorizationCodeGrant:
    """Exchanges an authorization code for tokens, once; a replay revokes what it issued."""

    grant_type = GrantType.AUTHORIZATION_CODE.value

    def __init__(
        self,
        config: Config,
        clients: ClientService,
        codes: AuthorizationCodeRepository,
        tokens: TokenRepository,
        devices: MobileDeviceRepository,
        minter: TokenMinter,
        id_tokens: IdTokenMinter,
        revocations: Revocations,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._clients = clients
        self._codes = codes
        self._tokens = tokens
        self._devices = devices
        self._minter = minter
        self._id_tokens = id_tokens
        self._revocations = revocations
        self._audit = auditor
        self._transaction = transaction
        self._clock = clock

    def token(self, request: TokenRequest) -> IssuedTokens:
        """RFC 6749 §4.1.3: authenticate the client, then check and consume the code.

        One unit of work with the code's row locked: two exchanges of one code are serialised,
        so exactly one issues; the other finds it used and revokes what the first issued (RFC
        6749 §4.1.2: "SHOULD revoke ... all tokens previously issued based on that code").
        """
        client = self._clients.authenticate(request.client_id, request.client_secret)
        if not client.allows(GrantType.AUTHORIZATION_CODE):
            raise errors.UnauthorizedClient("This client may not use the authorization_code grant.")
        code = request.required("code")
        redirect_uri = request.params.get("redirect_uri", "")
        verifier = request.params.get("code_verifier") or None
        caller = Actor("client", client.client_id)
        now = self._clock()
        refusal: _Refusal | None = None
        issued: IssuedTokens | None = None
        with self._transaction():
            authorization = self._codes.lock_by_code(hash_secret(code))
            if authorization is None or authorization.client_id != client.client_id:
                # Another client's code is not its to spend, or to revoke (RFC 6749 §4.1.3).
                refusal = _Refusal.UNKNOWN
            elif authorization.used_at is not None:
                refusal = _Refusal.REPLAYED
                self._revoke_replayed(authorization, caller, request.ip)
            elif now >= authorization.expires_at:
                refusal = _Refusal.UNKNOWN
            elif redirect_uri != authorization.redirect_uri:
                refusal = _Refusal.REDIRECT_URI  # RFC 6749 §4.1.3: identical
            elif not _pkce_holds(authorization, verifier):
                refusal = _Refusal.VERIFIER
            else:
                issued = self._issue(authorization, caller, request.ip, now, request.dpop_jkt)
        if refusal is not None:
            raise errors.InvalidGrant(refusal.value)
        assert issued is not None
        return issued

    def _issue(
        self,
        authorization: Authorization,
        caller: Actor,
        ip: str,
        now: float,
        dpop_jkt: str | None,
    ) -> IssuedTokens:
        """Consume the code and issue the family, in the caller's unit of work; bound to the
        key of the request's DPoP proof, if it sent one (RFC 9449 §5)."""
        assert authorization.user_id is not None and authorization.mobile_device_id is not None
        facts = self._devices.lock_for_redemption(
            authorization.mobile_device_id, authorization.client_id
        )
        withdrawn = approval_withdrawn(facts, authorization.user_id, authorization.created_at, now)
        if withdrawn is not None or facts is None:
            raise errors.InvalidGrant(withdrawn or "The approval was withdrawn.")
        family = TokenFamily(
            id=str(uuid.uuid4()),
            user_id=authorization.user_id,
            client_id=authorization.client_id,
            mobile_device_id=authorization.mobile_device_id,
            scope=authorization.scope,
            device_code_hash=None,
            created_at=now,
            requester_ip=ip,
            auth_time=authorization.auth_time,
            amr=authorization.amr,
            dpop_jkt=dpop_jkt,
        )
        issued = self._minter.issue(family)
        if issued is None or not self._codes.mark_used(authorization.id, now, family.id):
            raise errors.InvalidGrant(_Refusal.REPLAYED.value)
        if wants_id_token(family.scope):
            # OIDC Core §3.1.3.6 and §2: nonce as sent, auth_time, amr and acr.
            assert family.auth_time is not None
            id_token = self._id_tokens.id_token(
                user=facts.user,
                client_id=family.client_id,
                scope=family.scope,
                auth_time=family.auth_time,
                amr=family.amr,
                acr=context_of(family.amr),
                nonce=authorization.nonce,
                now=now,
            )
            issued = IssuedTokens(
                issued.access_token,
                issued.refresh_token,
                issued.expires_in,
                issued.scope,
                issued.family_id,
                issued.user_id,
                id_token,
            )
        self._audit.record(
            AuditEventType.TOKEN_ISSUED,
            caller,
            ip=ip,
            user_id=family.user_id,
            client_id=family.client_id,
            mobile_device_id=family.mobile_device_id,
            family_id=family.id,
            scope=family.scope,
            amr=" ".join(family.amr),
            grant_type=self.grant_type,
            authorization_id=authorization.id,
        )
        return issued

    def _revoke_replayed(self, authorization: Authorization, caller: Actor, ip: str) -> None:
        """RFC 6749 §4.1.2 and RFC 9700 §4.5: a used code presented again revokes its tokens."""
        self._audit.record(
            AuditEventType.AUTHORIZATION_CODE_REPLAYED,
            caller,
            ip=ip,
            user_id=authorization.user_id,
            client_id=authorization.client_id,
            family_id=authorization.family_id,
            authorization_id=authorization.id,
        )
        family = self._tokens.family(authorization.family_id) if authorization.family_id else None
        if family is not None:
            self._revocations.revoke_family(
                family, RevocationReason.AUTHORIZATION_CODE_REPLAY, caller, ip
            )


def _pkce_holds(authorization: Authorization, verifier: str | None) -> bool:
    """RFC 7636 §4.6; RFC 9700 §4.8.2: a verifier for a code issued without a challenge is a
    downgrade attempt and fails too."""
    if authorization.code_challenge is None:
        return verifier is None
    return verifier is not None and verifier_matches(verifier, authorization.code_challenge)
