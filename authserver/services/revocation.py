"""Revoking what was issued: SQL first, then the jti deny-list that refuses live JWTs."""

from __future__ import annotations

import logging
from collections.abc import Callable

from authserver.domain.models import Actor, DeniedToken, FamilyFilter, TokenFamily
from authserver.domain.ports import RevocationList, TokenRepository
from authserver.services.audit import Auditor

log = logging.getLogger(__name__)


class Revocations:
    """Revokes token families and single access tokens; answers "is this jti denied?".

    SQL is the record. The deny-list (Redis, or process memory) holds the jti of every revoked,
    unexpired access token, so a resource server refuses a self-contained JWT within seconds
    without a SQL query per request. A lost list (a Redis restart) is rebuilt from SQL before
    it answers again.
    """

    def __init__(
        self,
        tokens: TokenRepository,
        deny_list: RevocationList,
        auditor: Auditor,
        clock: Callable[[], float],
    ) -> None:
        self._tokens = tokens
        self._deny_list = deny_list
        self._auditor = auditor
        self._clock = clock

    def is_denied(self, jti: str) -> bool:
        now = self._clock()
        denied = self._deny_list.is_denied(jti, now)
        if denied is None:
            log.warning("jti deny-list is incomplete; rebuilding it from SQL")
            self._deny_list.rebuild(self._tokens.denied_access_tokens(now), now)
            denied = self._deny_list.is_denied(jti, now)
        return bool(denied)

    def _deny(self, tokens: list[DeniedToken], now: float) -> None:
        """Add to the deny-list; if that fails, make the list rebuild itself from SQL."""
        try:
            self._deny_list.add(tokens, now)
        except Exception:
            log.exception("jti deny-list write failed; marking it incomplete")
            try:
                self._deny_list.mark_incomplete()
            except Exception:
                # Redis is unreachable: checks fail closed until it is back, and the marker's
                # TTL makes the list rebuild itself then (RedisRevocationList.COMPLETE_TTL).
                log.exception("could not mark the jti deny-list incomplete")
            raise

    def revoke_family(self, family: TokenFamily, reason: str, actor: Actor, ip: str) -> bool:
        """Revoke one grant: its refresh token and every access token it produced."""
        now = self._clock()
        revoked = self._tokens.revoke_family(family.id, now, reason)
        try:
            # Deny even if someone else revoked it first: their deny-list write may have failed.
            self._deny(self._tokens.live_access_tokens([family.id], now), now)
        finally:
            if revoked:  # committed in SQL: audit it whatever happened to the deny-list
                self._audit_family(family, reason, actor, ip)
        return revoked

    def revoke_families(
        self, where: FamilyFilter, reason: str, actor: Actor, ip: str
    ) -> list[TokenFamily]:
        """Revoke every live grant matching `where`; the ones this call revoked."""
        now = self._clock()
        families = self._tokens.revoke_families(where, now, reason)
        try:
            self._deny(self._tokens.live_access_tokens([f.id for f in families], now), now)
        finally:
            for family in families:
                self._audit_family(family, reason, actor, ip)
        return families

    def revoke_access_token(
        self, jti: str, expires_at: float, family: TokenFamily, actor: Actor, ip: str
    ) -> bool:
        """Revoke one access token (RFC 7009 §2.1 with token_type_hint=access_token)."""
        now = self._clock()
        revoked = self._tokens.revoke_access_token(jti, now)
        try:
            self._deny([DeniedToken(jti, expires_at)], now)
        finally:
            if revoked:
                self._auditor.record(
                    "token.access_revoked",
                    actor,
                    ip=ip,
                    user_id=family.user_id,
                    client_id=family.client_id,
                    family_id=family.id,
                    jti=jti,
                )
        return revoked

    def _audit_family(self, family: TokenFamily, reason: str, actor: Actor, ip: str) -> None:
        self._auditor.record(
            "token.revoked",
            actor,
            ip=ip,
            user_id=family.user_id,
            client_id=family.client_id,
            mobile_device_id=family.mobile_device_id,
            family_id=family.id,
            reason=reason,
        )
