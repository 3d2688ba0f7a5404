"""The QR login flow end to end: start, poll, status channel, scan, confirm, deny."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from authserver.config import Config
from authserver.domain import errors
from authserver.domain import flow as flows
from authserver.domain.codes import (
    format_user_code,
    hash_secret,
    mask_name,
    new_device_code,
    new_token,
    new_user_code,
    normalize_user_code,
    secrets_equal,
)
from authserver.domain.flow import Flow, FlowState, FlowStatus, PollOutcome
from authserver.domain.models import Actor, Client, TokenFamily
from authserver.domain.ports import FlowStore, RateLimiter, TokenRepository
from authserver.domain.text import printable
from authserver.services.accounts import AccountService, SignedInDevice
from authserver.services.audit import Auditor, flow_ref
from authserver.services.clients import ClientService
from authserver.services.limits import AttemptGuard
from authserver.services.revocation import Revocations
from authserver.services.tokens import IssuedTokens, TokenMinter

log = logging.getLogger(__name__)


def presented_secret_hash(client_secret: str | None) -> str:
    """How a flow stores a client's secret: its SHA-256, or "" for a public client."""
    return hash_secret(client_secret) if client_secret else ""


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """The RFC 8628 §3.2 response, before rendering."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int
    qr_png: str  # images of verification_uri_complete, served by this server
    qr_svg: str


@dataclass(frozen=True, slots=True)
class StatusView:
    """What the PC's status channel shows (non-standard; never via the token endpoint)."""

    status: FlowStatus
    expires_in: int
    scanner: dict[str, str] | None


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


class FlowService:
    """Orchestrates the flow's domain rules with the flow store and the token minter."""

    def __init__(
        self,
        config: Config,
        store: FlowStore,
        clients: ClientService,
        tokens: TokenRepository,
        accounts: AccountService,
        minter: TokenMinter,
        revocations: Revocations,
        limiter: RateLimiter,
        auditor: Auditor,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._store = store
        self._clients = clients
        self._tokens = tokens
        self._accounts = accounts
        self._minter = minter
        self._revocations = revocations
        self._limiter = limiter
        self._audit = auditor
        self._clock = clock
        # Long-polls hold a server thread each: cap them per process, one per device code, so
        # no caller can tie up every thread (then the status is simply answered at once).
        self._waiter_slots = threading.BoundedSemaphore(config.status_max_waiters)
        self._waiting: set[str] = set()
        self._waiting_lock = threading.Lock()

    # --- PC side ------------------------------------------------------------------------
    def start(
        self,
        client_id: str,
        client_secret: str | None,
        scope: str | None,
        ip: str,
        user_agent: str,
    ) -> DeviceAuthorization:
        """RFC 8628 §3.1-3.2: a new flow with a device code and a user code."""
        client = self._clients.authenticate(client_id, client_secret)
        granted = self._clients.resolve_scope(client, scope)
        now = self._clock()
        # Every flow costs store memory until it expires: bound how fast one caller makes them.
        key = f"da:{client.client_id}:{ip}"
        wait = self._limiter.hit(key, self._config.device_authorizations_per_minute, 60, now)
        if wait:
            raise errors.RateLimited(wait)
        for _ in range(8):  # 20^8 codes: a collision with a live flow is rare, retry it
            device_code, user_code = new_device_code(), new_user_code()
            flow = Flow(
                device_code_hash=hash_secret(device_code),
                user_code_hash=hash_secret(normalize_user_code(user_code) or ""),
                client_id=client.client_id,
                client_secret_hash=client.secret_hash or "",  # see presented_secret_hash
                scope=granted,
                requester_ip=ip,
                requester_user_agent=printable(user_agent, 200),
                created_at=now,
                expires_at=now + self._config.device_code_ttl,
                interval=self._config.poll_interval,
            )
            if self._store.create(flow):
                self._audit.record(
                    "flow.created",
                    Actor("client", client.client_id),
                    ip=ip,
                    client_id=client.client_id,
                    flow_ref=flow_ref(flow.device_code_hash),
                    scope=granted,
                    user_agent=flow.requester_user_agent,
                    expires_in=self._config.device_code_ttl,
                )
                return DeviceAuthorization(
                    device_code=device_code,
                    user_code=user_code,
                    verification_uri=self._config.verification_uri,
                    verification_uri_complete=self.verification_uri_complete(user_code),
                    expires_in=self._config.device_code_ttl,
                    interval=self._config.poll_interval,
                    qr_png=f"{self._config.issuer}/qr/{user_code}.png",
                    qr_svg=f"{self._config.issuer}/qr/{user_code}.svg",
                )
        raise RuntimeError("could not allocate a free user code")

    def verification_uri_complete(self, user_code: str) -> str:
        """RFC 8628 §3.3.1: the URI with the user code, which the QR code encodes."""
        return f"{self._config.verification_uri}?user_code={quote(user_code)}"

    def exchange(
        self, device_code: str, client_id: str, client_secret: str | None, ip: str
    ) -> IssuedTokens:
        """RFC 8628 §3.4-3.5: one poll of the token endpoint.

        A pending poll is decided by one atomic store call and touches no SQL: the flow carries
        the client binding and secret hash from its creation.
        """
        device_code_hash = hash_secret(device_code)
        family_id = str(uuid.uuid4())
        result = self._store.poll(
            device_code_hash,
            self._clock(),
            client_id=client_id,
            client_secret_hash=presented_secret_hash(client_secret),
            family_id=family_id,
        )
        outcome, flow = result.outcome, result.flow
        if outcome is PollOutcome.PENDING:
            raise errors.AuthorizationPending()
        if outcome is PollOutcome.SLOW_DOWN:
            raise errors.SlowDown()
        if outcome is PollOutcome.REDEEM and flow is not None:
            return self._issue(flow, family_id, client_secret, ip)
        # Every other answer is an error; authenticate the client first, so a caller with bad
        # credentials learns invalid_client and nothing about the code (RFC 6749 §5.2).
        client = self._clients.authenticate(client_id, client_secret)
        caller = Actor("client", client.client_id)
        if outcome is PollOutcome.DENIED:
            raise errors.AccessDenied()
        if outcome is PollOutcome.EXPIRED and flow is not None:
            self._record_expiry(flow, caller, ip)
            raise errors.FlowExpired()
        if outcome is PollOutcome.REPLAY and flow is not None and flow.family_id:
            family = self._tokens.family(flow.family_id)
            if family is not None:
                self._revoke_replayed(family, caller, ip)
        if outcome is PollOutcome.UNKNOWN:
            # The flow may have left the store; a family still remembers its device code.
            family = self._tokens.family_by_device_code(device_code_hash)
            if family is not None and family.client_id == client.client_id:
                self._revoke_replayed(family, caller, ip)
        raise errors.InvalidGrant(
            "The device code is invalid, was already used, or belongs to another client."
        )

    def _record_expiry(self, flow: Flow, actor: Actor, ip: str) -> None:
        """Audit a flow's expiry once, the first time anyone sees it expired.

        Seen by a token poll, the status channel or a scan. A flow nobody asks about after it
        expires leaves its flow.created event (with expires_in) and nothing more.
        """
        ref = flow_ref(flow.device_code_hash)
        self._audit.record(
            "flow.expired",
            actor,
            ip=ip,
            once_key=f"flow.expired:{ref}",
            client_id=flow.client_id,
            user_id=flow.user_id,
            flow_ref=ref,
            state=flow.state.value,
        )

    def _revoke_replayed(self, family: TokenFamily, actor: Actor, ip: str) -> None:
        self._audit.record(
            "flow.replay_detected",
            actor,
            ip=ip,
            user_id=family.user_id,
            client_id=family.client_id,
            family_id=family.id,
            flow_ref=flow_ref(family.device_code_hash or ""),
        )
        if self._revocations.revoke_family(family, "device_code_replay", actor, ip):
            log.warning("device code replayed: token family %s revoked", family.id)

    def _issue(
        self, flow: Flow, family_id: str, client_secret: str | None, ip: str
    ) -> IssuedTokens:
        """Commit the tokens of a flow this poll has claimed; give the flow back on failure.

        The approval must still stand when the PC redeems it: its client enabled, the approving
        phone still signed in, no revoke-all of the user since the flow started. It is checked
        before the tokens are committed, and again after, because a revocation that ran in
        between could not see them.
        """
        assert flow.user_id is not None
        family = TokenFamily(
            id=family_id,
            user_id=flow.user_id,
            client_id=flow.client_id,
            mobile_device_id=flow.mobile_device_id,
            scope=flow.scope,
            device_code_hash=flow.device_code_hash,
            created_at=self._clock(),
            requester_ip=flow.requester_ip,
            requester_user_agent=flow.requester_user_agent,
        )
        caller = Actor("client", family.client_id)
        try:
            self._check_approval(flow, client_secret)
            issued = self._minter.issue(family)
        except errors.AccessDenied:
            self._store.undo_redemption(flow.device_code_hash, family_id)
            self._withdraw(flow.device_code_hash, caller, ip)
            raise
        except BaseException:
            # Nothing approved is lost: the flow is APPROVED again and the next poll retries.
            self._store.undo_redemption(flow.device_code_hash, family_id)
            raise
        try:
            self._store.finish_redemption(flow.device_code_hash, family_id)
        except Exception:
            # The tokens are committed and must reach the client; only replay detection for
            # this code falls back to the SQL lookup once the flow leaves the store.
            log.exception("could not mark flow redeemed after issuing family %s", family_id)
        refs = {
            "user_id": family.user_id,
            "client_id": family.client_id,
            "mobile_device_id": family.mobile_device_id,
            "family_id": family.id,
        }
        ref = flow_ref(flow.device_code_hash)
        self._audit.record("flow.redeemed", caller, ip=ip, flow_ref=ref, **refs)
        self._audit.record("token.issued", caller, ip=ip, flow_ref=ref, scope=family.scope, **refs)
        try:
            self._check_approval(flow, client_secret)
        except errors.DomainError:
            self._revocations.revoke_family(family, "approval_withdrawn", caller, ip)
            raise
        except Exception:
            # The check passed before issuing; an outage now must not lose what was issued.
            log.exception("could not re-check the approval of family %s", family_id)
        return issued

    def _check_approval(self, flow: Flow, client_secret: str | None) -> None:
        """Raise unless the approval of this claimed flow still stands (see _issue)."""
        assert flow.user_id is not None
        # The flow vouched for the credentials; SQL says whether the client is still enabled.
        client = self._clients.authenticate(flow.client_id, client_secret)
        revoked_at = client.sessions_revoked_at
        if revoked_at is not None and flow.created_at <= revoked_at:
            raise errors.AccessDenied(
                "The approval was withdrawn: the client's sessions were revoked."
            )
        if not self._accounts.approval_stands(flow.user_id, flow.mobile_device_id, flow.created_at):
            raise errors.AccessDenied(
                "The approval was withdrawn: the approving phone was signed out or revoked."
            )

    def _withdraw(self, device_code_hash: str, actor: Actor, ip: str) -> None:
        """APPROVED -> DENIED: later polls read access_denied instead of retrying the claim."""
        flow = self._store.get(device_code_hash)
        if flow is None or flow.state is not FlowState.APPROVED:
            return
        if self._store.replace(flow, flows.cancel(flow, self._clock())):
            self._audit.record(
                "flow.withdrawn",
                actor,
                ip=ip,
                user_id=flow.user_id,
                client_id=flow.client_id,
                mobile_device_id=flow.mobile_device_id,
                flow_ref=flow_ref(device_code_hash),
            )

    def status(
        self,
        device_code: str,
        client_id: str,
        client_secret: str | None,
        known: str | None,
        wait: float,
        ip: str,
    ) -> StatusView:
        """The status channel: the flow's state, optionally waiting for it to change.

        The client is checked against what the flow recorded at creation (no SQL), the same
        way a token poll checks it.
        """
        device_code_hash = hash_secret(device_code)
        flow = self._store.get(device_code_hash)
        if (
            flow is None
            or flow.client_id != client_id
            or not secrets_equal(flow.client_secret_hash, presented_secret_hash(client_secret))
        ):
            # Error path only, as in exchange(): bad client credentials are invalid_client
            # (RFC 6749 §5.2) whatever the code, so the answer is no oracle for live codes.
            self._clients.authenticate(client_id, client_secret)
            raise errors.InvalidGrant("Unknown device code for this client.")
        now = self._clock()
        wait = min(max(wait, 0.0), self._config.status_max_wait, max(flow.expires_at - now, 0.0))
        if known == flow.status(now).value and wait > 0 and self._claim_waiter(device_code_hash):
            try:
                flow = self._store.wait_for_change(device_code_hash, flow.version, wait) or flow
            finally:
                self._release_waiter(device_code_hash)
            now = self._clock()
        view = self._view(flow, now)
        if view.status is FlowStatus.EXPIRED:
            self._record_expiry(flow, Actor("client", client_id), ip)
        return view

    def _claim_waiter(self, device_code_hash: str) -> bool:
        with self._waiting_lock:
            if device_code_hash in self._waiting or not self._waiter_slots.acquire(blocking=False):
                return False
            self._waiting.add(device_code_hash)
            return True

    def _release_waiter(self, device_code_hash: str) -> None:
        with self._waiting_lock:
            self._waiting.discard(device_code_hash)
            self._waiter_slots.release()

    @staticmethod
    def _view(flow: Flow, now: float) -> StatusView:
        status = flow.status(now)
        scanner = None
        if flow.scanner_name and status in (FlowStatus.SCANNED, FlowStatus.APPROVED):
            # Masked: a phishing PC must not learn who its victim is.
            scanner = {"name": mask_name(flow.scanner_name)}
            if flow.scanner_platform:
                scanner["platform"] = flow.scanner_platform
        return StatusView(status, max(int(flow.expires_at - now), 0), scanner)

    # --- Phone side ---------------------------------------------------------------------
    def _user_code_from(self, qr: str | None, user_code: str | None) -> str | None:
        if qr is not None:
            parts = urlsplit(qr.strip())
            expected = urlsplit(self._config.verification_uri)
            if (parts.scheme, parts.netloc, parts.path) != (
                expected.scheme,
                expected.netloc,
                expected.path,
            ):
                raise errors.FlowNotFound("This QR code is not a login code of this server.")
            values = parse_qs(parts.query).get("user_code", [])
            return values[0] if len(values) == 1 else None
        return user_code

    def scan(
        self, phone: SignedInDevice, *, qr: str | None, user_code: str | None, ip: str
    ) -> ApprovalScreen:
        """PENDING -> SCANNED: bind the flow to this phone and show what is being approved.

        User-code entry is rate-limited per account and per IP; failures are never reset by a
        success (RFC 8628 §5.1 brute force).
        """
        now = self._clock()
        limits = (
            (f"uc:user:{phone.user.user_id}", self._config.user_code_attempts),
            (f"uc:ip:{ip}", self._config.user_code_attempts_per_ip),
        )
        with AttemptGuard(self._limiter, limits, self._config.rate_limit_window, now) as guard:
            normalized = normalize_user_code(self._user_code_from(qr, user_code) or "")
            flow = self._store.find_by_user_code(hash_secret(normalized)) if normalized else None
            if flow is None or normalized is None:
                raise errors.FlowNotFound()
            guard.succeeded()
        client = self._clients.get(flow.client_id)
        if client is None or client.disabled_at is not None:
            raise errors.FlowNotActionable("The client of this login request is disabled.")
        if flow.is_expired(now):
            self._record_expiry(flow, Actor("user", phone.user.user_id), ip)
            raise errors.FlowExpired()
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
            raise errors.FlowNotActionable("The login request changed meanwhile; scan again.")
        assert scanned.confirm_expires_at is not None
        self._audit.record(
            "flow.scanned",
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
        )

    def decide(
        self, phone: SignedInDevice, confirm_token: str, *, approve: bool, ip: str
    ) -> FlowStatus:
        """SCANNED -> APPROVED or DENIED; the confirm token works once (compare-and-set)."""
        confirm_token_hash = hash_secret(confirm_token)
        flow = self._store.find_by_confirm_token(confirm_token_hash) if confirm_token else None
        if flow is None:
            raise errors.InvalidConfirmToken()
        now = self._clock()
        transition = flows.confirm if approve else flows.deny
        decided = transition(
            flow,
            now,
            user_id=phone.user.user_id,
            mobile_device_id=phone.device.id,
            confirm_token_hash=confirm_token_hash,
        )
        if not self._store.replace(flow, decided):
            raise errors.InvalidConfirmToken()
        self._audit.record(
            "flow.approved" if approve else "flow.denied",
            Actor("user", phone.user.user_id),
            ip=ip,
            user_id=phone.user.user_id,
            client_id=flow.client_id,
            mobile_device_id=phone.device.id,
            flow_ref=flow_ref(flow.device_code_hash),
        )
        return decided.status(now)

    # --- Admin side ---------------------------------------------------------------------
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
            raise errors.FlowNotActionable("The login request changed meanwhile; try again.")
        self._audit.record(
            "flow.cancelled",
            actor,
            ip=ip,
            user_id=flow.user_id,
            client_id=flow.client_id,
            flow_ref=flow_ref(flow.device_code_hash),
        )
