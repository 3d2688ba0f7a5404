"""The phone's steps of a QR login: scan, then confirm or deny; and an operator's cancel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from authserver.config import Config
from authserver.domain import errors
from authserver.domain import flow as flows
from authserver.domain.codes import (
    format_user_code,
    hash_secret,
    match_choices,
    new_token,
    normalize_user_code,
)
from authserver.domain.context import RequesterContext
from authserver.domain.flow import FlowState, FlowStatus
from authserver.domain.models import Actor, AuditEventType, Client
from authserver.domain.ports import FlowStore, RateLimiter, Transaction
from authserver.domain.text import N_
from authserver.services.accounts import AccountService, DeviceCredentials, SignedInDevice
from authserver.services.audit import Auditor, flow_ref
from authserver.services.clients import ClientService
from authserver.services.context import RequesterFacts
from authserver.services.limits import AttemptGuard, user_code_limits
from authserver.services.qr_links import TOKEN_PARAMETER, QrLinks


@dataclass(frozen=True, slots=True)
class ApprovalScreen:
    """What the phone shows before the user confirms: who, what, from where, which code."""

    confirm_token: str
    expires_in: int
    client: Client
    scope: str
    requester_ip: str
    requester_user_agent: str
    requested_at: float
    user_code: str
    # Number matching: the numbers the phone picks from (one is what the PC shows); () if off.
    number_choices: tuple[int, ...] = ()
    # What the screens may say about the requester: parsed, placed, near or not (RFC 10027).
    context: RequesterContext | None = None


class Approvals:
    """PENDING -> SCANNED -> APPROVED or DENIED, from the phone (or the /device page); and
    PENDING, SCANNED or APPROVED -> DENIED by an operator."""

    def __init__(
        self,
        config: Config,
        store: FlowStore,
        clients: ClientService,
        accounts: AccountService,
        limiter: RateLimiter,
        auditor: Auditor,
        transaction: Transaction,
        clock: Callable[[], float],
        facts: RequesterFacts,
        qr_links: QrLinks,
    ) -> None:
        self._config = config
        self._facts = facts
        self._qr_links = qr_links
        self._store = store
        self._clients = clients
        self._accounts = accounts
        self._transaction = transaction
        self._limiter = limiter
        self._audit = auditor
        self._clock = clock

    def _user_code_from(
        self, qr: str | None, user_code: str | None
    ) -> tuple[str | None, str | None]:
        """(user code, scan token) of a scanned QR link, or the typed user code."""
        if qr is not None:
            parts = urlsplit(qr.strip())
            expected = urlsplit(self._config.verification_uri)
            if (parts.scheme, parts.netloc, parts.path) != (
                expected.scheme,
                expected.netloc,
                expected.path,
            ):
                raise errors.FlowNotFound("This QR code is not a login code of this server.")
            query = parse_qs(parts.query)
            values, tokens = query.get("user_code", []), query.get(TOKEN_PARAMETER, [])
            return (
                values[0] if len(values) == 1 else None,
                tokens[0] if len(tokens) == 1 else None,
            )
        return user_code, None

    def scan(
        self, credentials: DeviceCredentials, *, qr: str | None, user_code: str | None, ip: str
    ) -> ApprovalScreen:
        """PENDING -> SCANNED: bind the flow to this phone and show what is being approved.

        One unit of work: the phone's token is checked in it and its audit row committed with
        it. User-code entry is rate-limited per account and per IP; failures are never reset
        by a success (RFC 8628 §5.1 brute force).
        """
        with self._transaction():
            phone = self._accounts.authenticate(credentials)
            screen = self._scan(phone, qr=qr, user_code=user_code, ip=ip)
        if screen is None:
            raise errors.FlowExpired()  # after the unit of work, which recorded the expiry
        return screen

    def _scan(
        self, phone: SignedInDevice, *, qr: str | None, user_code: str | None, ip: str
    ) -> ApprovalScreen | None:
        now = self._clock()
        limits = user_code_limits(self._config, phone.user.user_id, ip)
        with AttemptGuard(self._limiter, limits, now, counts=(errors.FlowNotFound,)) as guard:
            typed, token = self._user_code_from(qr, user_code)
            normalized = normalize_user_code(typed or "")
            flow = self._store.find_by_user_code(hash_secret(normalized)) if normalized else None
            if flow is None or normalized is None:
                raise errors.FlowNotFound()
            guard.succeeded()
        client = self._clients.get(flow.client_id)
        if client is None or client.disabled_at is not None:
            raise errors.FlowNotActionable(N_("The client of this login request is disabled."))
        if flow.is_expired(now):
            self._audit.flow_expired(flow, Actor("user", phone.user.user_id), ip)
            return None
        if qr is not None and flow.rotating_qr and not self._qr_links.fresh(flow, token):
            # A photographed or forwarded QR code: the screen shows a newer one by now.
            raise errors.QrRefreshed()
        for _ in range(3):  # compare-and-set: re-read and retry if another step got in first
            confirm_token = new_token()
            scanned = flows.scan(
                flow,
                now,
                user_id=phone.user.user_id,
                mobile_device_id=phone.device.id,
                scanner_name=phone.user.display_name,
                scanner_platform=phone.device.platform,
                confirm_token_hash=hash_secret(confirm_token),
                confirm_ttl=self._config.confirm_token_ttl,
            )
            if self._store.replace(flow, scanned):
                break
            flow = self._store.get(flow.device_code_hash)
            if flow is None:
                raise errors.FlowNotFound()
        else:
            raise errors.FlowNotActionable(N_("The login request changed meanwhile; scan again."))
        assert scanned.confirm_expires_at is not None
        self._audit.record(
            AuditEventType.FLOW_SCANNED,
            Actor("user", phone.user.user_id),
            ip=ip,
            user_id=phone.user.user_id,
            client_id=flow.client_id,
            mobile_device_id=phone.device.id,
            flow_ref=flow_ref(flow.device_code_hash),
        )
        return ApprovalScreen(
            confirm_token=confirm_token,
            expires_in=int(scanned.confirm_expires_at - now),
            client=client,
            scope=flow.scope,
            requester_ip=flow.requester_ip,
            requester_user_agent=flow.requester_user_agent,
            requested_at=flow.created_at,
            user_code=format_user_code(normalized),
            number_choices=(
                tuple(match_choices(flow.match_number, flow.device_code_hash))
                if flow.match_number is not None
                else ()
            ),
            context=self._facts.describe(
                user_agent=flow.requester_user_agent,
                pc_ip=flow.requester_ip,
                phone_ip=ip,
                user_id=phone.user.user_id,
            ),
        )

    def decide(
        self,
        credentials: DeviceCredentials,
        confirm_token: str,
        *,
        approve: bool,
        ip: str,
        number: int | None = None,
    ) -> FlowStatus:
        """SCANNED -> APPROVED or DENIED; the confirm token works once (compare-and-set).

        With number matching, approving needs the number the PC shows; a wrong one denies the
        flow (audited) and raises NumberMismatch once that is committed.
        One unit of work: the phone's token check, and the audit row.
        """
        with self._transaction():
            status, mismatch = self._decide(
                self._accounts.authenticate(credentials),
                confirm_token,
                approve=approve,
                ip=ip,
                number=number,
            )
        if mismatch:
            raise errors.NumberMismatch()
        return status

    def _decide(
        self,
        phone: SignedInDevice,
        confirm_token: str,
        *,
        approve: bool,
        ip: str,
        number: int | None,
    ) -> tuple[FlowStatus, bool]:
        confirm_token_hash = hash_secret(confirm_token)
        flow = self._store.find_by_confirm_token(confirm_token_hash) if confirm_token else None
        if flow is None:
            raise errors.InvalidConfirmToken()
        now = self._clock()
        who = {"user_id": phone.user.user_id, "mobile_device_id": phone.device.id}
        if approve:
            decided = flows.confirm(
                flow, now, **who, confirm_token_hash=confirm_token_hash, number=number
            )
        else:
            decided = flows.deny(flow, now, **who, confirm_token_hash=confirm_token_hash)
        if not self._store.replace(flow, decided):
            raise errors.InvalidConfirmToken()
        mismatch = approve and decided.state is FlowState.DENIED
        event = AuditEventType.FLOW_APPROVED if approve else AuditEventType.FLOW_DENIED
        self._audit.record(
            AuditEventType.FLOW_NUMBER_MISMATCH if mismatch else event,
            Actor("user", phone.user.user_id),
            ip=ip,
            client_id=flow.client_id,
            flow_ref=flow_ref(flow.device_code_hash),
            **who,
        )
        return decided.status(now), mismatch

    # --- Operator side ------------------------------------------------------------------
    def cancel(self, user_code: str, actor: Actor, ip: str) -> None:
        """PENDING or SCANNED -> DENIED by an operator: the PC is told access_denied."""
        normalized = normalize_user_code(user_code)
        flow = self._store.find_by_user_code(hash_secret(normalized)) if normalized else None
        for _ in range(3):  # compare-and-set, as in scan()
            if flow is None:
                raise errors.NotFound("No pending login request has this user code.")
            if self._store.replace(flow, flows.cancel(flow, self._clock())):
                break
            flow = self._store.get(flow.device_code_hash)
        else:
            raise errors.FlowNotActionable(N_("The login request changed meanwhile; try again."))
        with self._transaction():
            self._audit.record(
                AuditEventType.FLOW_CANCELLED,
                actor,
                ip=ip,
                user_id=flow.user_id,
                client_id=flow.client_id,
                flow_ref=flow_ref(flow.device_code_hash),
            )
