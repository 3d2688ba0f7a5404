"""Revoking what was issued: SQL first, then the deny-list that refuses live access JWTs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from authserver.domain.models import (
    Actor,
    AuditEventType,
    Denial,
    DenialKind,
    DenyListAnswer,
    FamilyFilter,
    RevocationReason,
    TokenFamily,
)
from authserver.domain.ports import RevocationList, TokenRepository, Transaction
from authserver.services.audit import Auditor

log = logging.getLogger(__name__)

# How often a process that could not repair the deny-list tries again, in seconds.
REPAIR_RETRY = 0.5


class Revocations:
    """Revokes token families and single access tokens; answers "is this token denied?".

    SQL is the record. The deny-list (Redis, or process memory) names every revoked, unexpired
    access token and every session (family) revoked within an access token's lifetime, so a
    resource server refuses a self-contained JWT within seconds without a SQL query per request.
    A lost list (a Redis restart) is rebuilt from SQL before it answers again.

    A revocation never reopens: the call succeeds once SQL has committed. If the deny-list
    write then fails, the list is marked incomplete (so every process rebuilds it from SQL); if
    even that fails (Redis is down), this process remembers it, refuses to accept any access
    token until it has repaired the list, and keeps trying in the background, so the other
    processes rebuild within seconds of Redis coming back.
    """

    def __init__(
        self,
        tokens: TokenRepository,
        deny_list: RevocationList,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
        *,
        access_token_ttl: int,
    ) -> None:
        self._tokens = tokens
        self._deny_list = deny_list
        self._auditor = auditor
        self._transaction = transaction
        self._clock = clock
        self._access_token_ttl = access_token_ttl
        self._lock = threading.Lock()
        self._needs_repair = False
        self._repairer: threading.Thread | None = None

    # --- Checking -----------------------------------------------------------------------
    def is_denied(self, jti: str, sid: str) -> bool:
        """Whether this access token, or its session, was revoked.

        Raises what the deny-list raises when it cannot answer (Redis down): a check fails
        closed, it never says "not denied" without knowing.
        """
        if self._needs_repair:
            self._repair()
        now = self._clock()
        answer = self._deny_list.is_denied(jti, sid, now)
        if answer is DenyListAnswer.DENIED:
            return True
        if answer is DenyListAnswer.ALLOWED:
            return False
        try:
            generation = self._deny_list.generation()
            denials = self._tokens.denials(now, self._access_token_ttl)
        except Exception:
            if answer is DenyListAnswer.STALE:
                # SQL is unreadable, and while it is no revocation can commit: the complete
                # list still answers, so resource checks keep working through a SQL outage.
                log.warning("deny-list not refreshed: SQL unavailable; answering from it")
                return False
            raise  # incomplete and no way to complete it: fail closed
        if answer is DenyListAnswer.INCOMPLETE:
            log.warning("deny-list is incomplete; rebuilt it from SQL")
        if not self._deny_list.rebuild(denials, now, generation):
            log.warning("deny-list marked incomplete during its rebuild; the next check rebuilds")
        # SQL, just read, answers this check: not the list, which another process may have
        # marked incomplete meanwhile.
        return any(
            denial.until > now and denial.id == (sid if denial.kind is DenialKind.SESSION else jti)
            for denial in denials
        )

    # --- Revoking -----------------------------------------------------------------------
    def revoke_family(
        self, family: TokenFamily, reason: RevocationReason, actor: Actor, ip: str
    ) -> bool:
        """Revoke one grant: its refresh token and every access token it produced."""
        now = self._clock()
        with self._transaction():
            revoked = self._tokens.revoke_family(family.id, now, reason)
            if revoked:
                self._audit_family(family, reason, actor, ip)
        # Deny even if someone else revoked it first: their deny-list write may have failed.
        self._deny([self._session_denial(family.id, now)], now)
        return revoked

    def revoke_families(
        self, where: FamilyFilter, reason: RevocationReason, actor: Actor, ip: str
    ) -> list[TokenFamily]:
        """Revoke every live grant matching `where`; the ones this call revoked."""
        now = self._clock()
        with self._transaction():
            families = self._tokens.revoke_families(where, now, reason)
            for family in families:
                self._audit_family(family, reason, actor, ip)
        self._deny([self._session_denial(f.id, now) for f in families], now)
        return families

    def revoke_access_token(
        self, jti: str, expires_at: float, family: TokenFamily, actor: Actor, ip: str
    ) -> bool:
        """Revoke one access token (RFC 7009 §2.1 with token_type_hint=access_token)."""
        now = self._clock()
        with self._transaction():
            revoked = self._tokens.revoke_access_token(jti, family.id, expires_at, now)
            if revoked:
                self._auditor.record(
                    AuditEventType.TOKEN_ACCESS_REVOKED,
                    actor,
                    ip=ip,
                    user_id=family.user_id,
                    client_id=family.client_id,
                    family_id=family.id,
                    jti=jti,
                )
        self._deny([Denial(DenialKind.ACCESS_TOKEN, jti, expires_at)], now)
        return revoked

    def _session_denial(self, family_id: str, now: float) -> Denial:
        # Every access token of the session was issued before now, so the last one expires
        # within an access token's lifetime.
        return Denial(DenialKind.SESSION, family_id, now + self._access_token_ttl)

    def _audit_family(
        self, family: TokenFamily, reason: RevocationReason, actor: Actor, ip: str
    ) -> None:
        self._auditor.record(
            AuditEventType.TOKEN_REVOKED,
            actor,
            ip=ip,
            user_id=family.user_id,
            client_id=family.client_id,
            mobile_device_id=family.mobile_device_id,
            family_id=family.id,
            reason=reason,
        )

    # --- Keeping the deny-list whole ----------------------------------------------------
    def _deny(self, denials: list[Denial], now: float) -> None:
        """Add to the deny-list after SQL committed; a failure never fails the revocation."""
        if not denials:
            return
        try:
            self._deny_list.add(denials, now)
        except Exception:
            log.warning("deny-list write failed; marking it incomplete", exc_info=True)
            self._needs_repair = True
            self._repair(raise_on_failure=False)

    def _repair(self, *, raise_on_failure: bool = True) -> None:
        """Make every process rebuild the list from SQL (which holds what the failed write
        missed) by deleting its completeness marker; until that works, fail closed."""
        try:
            self._deny_list.mark_incomplete()
        except Exception:
            self._start_repairer()
            if raise_on_failure:
                raise
            return
        self._needs_repair = False

    def _start_repairer(self) -> None:
        with self._lock:
            if self._repairer is not None and self._repairer.is_alive():
                return
            self._repairer = threading.Thread(
                target=self._repair_until_done, name="deny-list-repair", daemon=True
            )
            self._repairer.start()

    def _repair_until_done(self) -> None:
        stop = threading.Event()
        while self._needs_repair:
            try:
                self._deny_list.mark_incomplete()
                self._needs_repair = False
                log.info("deny-list marked incomplete after an outage; it will be rebuilt")
            except Exception:
                stop.wait(REPAIR_RETRY)
