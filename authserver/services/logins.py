"""This wasn't me: the phone lists the user's signed-in computers, ends one, or reports one.

A report is an end with a verdict: the login's whole token family is revoked (SQL, then the
deny-list, so its access tokens are refused within seconds everywhere), the audit trail and the
admin console mark it reported, and its device code can never be redeemed again (a later poll
is a replay of a revoked family: invalid_grant).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from authserver.domain import errors
from authserver.domain.models import (
    Actor,
    AuditEventType,
    Client,
    FamilyFilter,
    MobileDevice,
    RevocationReason,
    TokenFamily,
)
from authserver.domain.ports import MobileDeviceRepository, TokenRepository, Transaction
from authserver.services.accounts import AccountService, DeviceCredentials
from authserver.services.audit import Auditor
from authserver.services.clients import ClientService
from authserver.services.revocation import Revocations

MAX_LISTED = 50


@dataclass(frozen=True, slots=True)
class SignedInComputer:
    """One live login of the user, as the phone lists it."""

    family: TokenFamily
    client: Client | None
    approved_by: MobileDevice | None
    this_phone: bool


class PhoneLogins:
    """The user's own logins, seen and ended from their signed-in phone."""

    def __init__(
        self,
        accounts: AccountService,
        tokens: TokenRepository,
        devices: MobileDeviceRepository,
        clients: ClientService,
        revocations: Revocations,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
    ) -> None:
        self._accounts = accounts
        self._tokens = tokens
        self._devices = devices
        self._clients = clients
        self._revocations = revocations
        self._audit = auditor
        self._transaction = transaction
        self._clock = clock

    def list(self, credentials: DeviceCredentials) -> list[SignedInComputer]:
        """The user's live logins, newest first."""
        with self._transaction():
            phone = self._accounts.authenticate(credentials)
            families = self._tokens.families(
                FamilyFilter(user_id=phone.user.user_id, active_only=True), MAX_LISTED, 0
            )
            phones = {d.id: d for d in self._devices.of_user(phone.user.user_id)}
        return [
            SignedInComputer(
                family,
                self._clients.get(family.client_id),
                phones.get(family.mobile_device_id or ""),
                family.mobile_device_id == phone.device.id,
            )
            for family in families
        ]

    def end(self, credentials: DeviceCredentials, family_id: str, ip: str, *, report: bool) -> None:
        """End one of the user's logins; with `report`, mark it as not theirs.

        One unit of work: the phone's check, the revocation and its audit rows. Another user's
        login reads as unknown (404), so ids cannot be probed.
        """
        with self._transaction():
            phone = self._accounts.authenticate(credentials)
            family = self._tokens.family(family_id) if len(family_id) <= 36 else None
            if family is None or family.user_id != phone.user.user_id:
                raise errors.NotFound("No such login of yours.")
            actor = Actor("user", phone.user.user_id)
            if report:
                self._audit.record(
                    AuditEventType.LOGIN_REPORTED,
                    actor,
                    ip=ip,
                    user_id=family.user_id,
                    client_id=family.client_id,
                    family_id=family.id,
                    mobile_device_id=phone.device.id,
                    requester_ip=family.requester_ip,
                )
            reason = RevocationReason.REPORTED_BY_USER if report else RevocationReason.ENDED_BY_USER
            self._revocations.revoke_family(family, reason, actor, ip)
