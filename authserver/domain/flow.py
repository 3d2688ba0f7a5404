"""The QR login flow as a state machine (RFC 8628 device grant with a scanned state).

            scan (phone)          confirm (phone)         token exchange (PC)
 PENDING ───────────────▶ SCANNED ───────────────▶ APPROVED ──────────────────▶ REDEEMED
    │                        │ deny (phone)              │ cancel (operator, or the
    │ deny / cancel          ▼                           │ approving phone revoked)
    └──────────────────▶ DENIED ◀────────────────────────┘
 EXPIRED = now >= expires_at in any state before REDEEMED (computed, never a stored transition)

Every function here is pure: it takes the flow and `now` (Unix seconds) and returns a new flow
or raises a domain error. Stores make the transitions atomic; they never decide them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from authserver.domain import errors
from authserver.domain.codes import secrets_equal

# RFC 8628 §3.4: the grant_type a PC sends with its device code.
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: "the interval MUST be increased by 5 seconds"

# Stores keep a flow this long after it expires, so a late poll still reads expired_token; a
# replayed device code after that is still caught through its SQL token family.
CLEANUP_GRACE = 600

# Fields a token poll changes without a version bump (so polls do not wake status waiters).
# Compare-and-set writers (scan, confirm, deny) never change them, so stores keep the stored
# values instead of writing back what the writer read.
POLL_OWNED_FIELDS = frozenset({"interval", "last_poll_at"})


class FlowState(enum.StrEnum):
    """Stored states; EXPIRED is derived from the clock, never stored."""

    PENDING = "pending"
    SCANNED = "scanned"
    APPROVED = "approved"
    DENIED = "denied"
    REDEEMED = "redeemed"


class FlowStatus(enum.StrEnum):
    """What the PC's status channel reports."""

    PENDING = "pending"
    SCANNED = "scanned"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Flow:
    """One device authorization request and how far it has come."""

    device_code_hash: str
    user_code_hash: str
    client_id: str
    # SHA-256 of the client's secret at creation; "" for public clients. Kept here so a pending
    # poll authenticates a confidential client without touching SQL.
    client_secret_hash: str
    scope: str
    requester_ip: str
    requester_user_agent: str
    created_at: float
    expires_at: float
    interval: int
    state: FlowState = FlowState.PENDING
    version: int = 1
    last_poll_at: float | None = None
    user_id: str | None = None
    mobile_device_id: str | None = None
    scanner_name: str | None = None
    scanner_platform: str | None = None
    confirm_token_hash: str | None = None
    confirm_expires_at: float | None = None
    family_id: str | None = None
    issued: bool = False  # the redemption's tokens are committed; a later poll is a replay

    def is_expired(self, now: float) -> bool:
        """RFC 8628 §3.5 expired_token: any state before REDEEMED past expires_at."""
        return self.state is not FlowState.REDEEMED and now >= self.expires_at

    def status(self, now: float) -> FlowStatus:
        """The status channel's view; a redeemed flow reads as approved."""
        if self.is_expired(now):
            return FlowStatus.EXPIRED
        if self.state is FlowState.REDEEMED:
            return FlowStatus.APPROVED
        return FlowStatus(self.state.value)

    def _next(self, **changes: object) -> Flow:
        return dataclasses.replace(self, version=self.version + 1, **changes)  # type: ignore[arg-type]


# --- Phone-side transitions -----------------------------------------------------------------
def scan(
    flow: Flow,
    now: float,
    *,
    user_id: str,
    mobile_device_id: str,
    scanner_name: str,
    scanner_platform: str,
    confirm_token_hash: str,
    confirm_ttl: int,
) -> Flow:
    """PENDING -> SCANNED, binding the flow to one phone and handing it a one-time confirm token.

    The same phone may scan again (its app retried) and gets a fresh confirm token; any other
    phone is refused, so one flow is approved from exactly one device.
    """
    if flow.is_expired(now):
        raise errors.FlowExpired()
    if flow.state is FlowState.SCANNED:
        if flow.mobile_device_id != mobile_device_id or flow.user_id != user_id:
            raise errors.FlowAlreadyScanned()
    elif flow.state is not FlowState.PENDING:
        raise errors.FlowNotActionable()
    return flow._next(
        state=FlowState.SCANNED,
        user_id=user_id,
        mobile_device_id=mobile_device_id,
        scanner_name=scanner_name,
        scanner_platform=scanner_platform,
        confirm_token_hash=confirm_token_hash,
        confirm_expires_at=min(now + confirm_ttl, flow.expires_at),
    )


def _consume_confirm_token(
    flow: Flow,
    now: float,
    outcome: FlowState,
    *,
    user_id: str,
    mobile_device_id: str,
    confirm_token_hash: str,
) -> Flow:
    """SCANNED -> `outcome`, consuming the confirm token bound to this user, phone and flow."""
    if flow.is_expired(now):
        raise errors.FlowExpired()
    if flow.state is not FlowState.SCANNED or flow.confirm_token_hash is None:
        raise errors.InvalidConfirmToken()
    if not secrets_equal(flow.confirm_token_hash, confirm_token_hash):
        raise errors.InvalidConfirmToken()
    if flow.user_id != user_id or flow.mobile_device_id != mobile_device_id:
        raise errors.InvalidConfirmToken()
    if flow.confirm_expires_at is None or now >= flow.confirm_expires_at:
        raise errors.InvalidConfirmToken("The confirm token has expired: scan again.")
    return flow._next(state=outcome, confirm_token_hash=None, confirm_expires_at=None)


def confirm(
    flow: Flow, now: float, *, user_id: str, mobile_device_id: str, confirm_token_hash: str
) -> Flow:
    """SCANNED -> APPROVED with the confirm token, which is consumed by this transition."""
    return _consume_confirm_token(
        flow,
        now,
        FlowState.APPROVED,
        user_id=user_id,
        mobile_device_id=mobile_device_id,
        confirm_token_hash=confirm_token_hash,
    )


def deny(
    flow: Flow, now: float, *, user_id: str, mobile_device_id: str, confirm_token_hash: str
) -> Flow:
    """SCANNED -> DENIED with the confirm token, which is consumed by this transition."""
    return _consume_confirm_token(
        flow,
        now,
        FlowState.DENIED,
        user_id=user_id,
        mobile_device_id=mobile_device_id,
        confirm_token_hash=confirm_token_hash,
    )


def cancel(flow: Flow, now: float) -> Flow:
    """PENDING, SCANNED or APPROVED -> DENIED without the phone's confirm token.

    An operator cancels the request, or the approval is withdrawn because the phone that gave
    it was signed out or its user's sessions were revoked before the PC redeemed it.
    """
    if flow.is_expired(now):
        raise errors.FlowExpired()
    if flow.state not in (FlowState.PENDING, FlowState.SCANNED, FlowState.APPROVED):
        raise errors.FlowNotActionable()
    return flow._next(state=FlowState.DENIED, confirm_token_hash=None, confirm_expires_at=None)


# --- PC-side poll ---------------------------------------------------------------------------
class PollOutcome(enum.StrEnum):
    """What one token-endpoint poll decides (RFC 8628 §3.5)."""

    UNKNOWN = "unknown"  # no such device code
    WRONG_CLIENT = "wrong_client"  # code issued to another client_id
    BAD_SECRET = "bad_secret"  # confidential client, secret does not match
    PENDING = "pending"  # authorization_pending
    SLOW_DOWN = "slow_down"
    DENIED = "denied"  # access_denied
    EXPIRED = "expired"  # expired_token
    REDEEM = "redeem"  # approved: this caller, and only this one, gets the tokens
    CLAIMED = "claimed"  # another poll is redeeming it right now: invalid_grant
    REPLAY = "replay"  # redeemed and issued: invalid_grant, and revoke what was issued


@dataclass(frozen=True, slots=True)
class PollResult:
    """The outcome of a poll and the flow after it (None if there was none)."""

    outcome: PollOutcome
    flow: Flow | None


def poll(
    flow: Flow | None,
    now: float,
    *,
    client_id: str,
    client_secret_hash: str,
    family_id: str,
) -> PollResult:
    """Decide one token poll and the flow's next state; the Redis Lua script mirrors this.

    Checks run in a straight line, cheapest and most fundamental first; a rejected caller
    (wrong client, bad secret) changes nothing.
    """
    if flow is None:
        return PollResult(PollOutcome.UNKNOWN, None)
    # RFC 6749 §4.1.3 by analogy: a code is bound to the client it was issued to.
    if flow.client_id != client_id:
        return PollResult(PollOutcome.WRONG_CLIENT, flow)
    if not secrets_equal(flow.client_secret_hash, client_secret_hash):
        return PollResult(PollOutcome.BAD_SECRET, flow)
    if flow.state is FlowState.REDEEMED:
        # A second redemption after tokens were issued: the code leaked or the client is
        # confused; revoke (RFC 6749 §4.1.2 by analogy). While the winner is still issuing,
        # a concurrent duplicate only loses, so exactly one caller holds working tokens.
        outcome = PollOutcome.REPLAY if flow.issued else PollOutcome.CLAIMED
        return PollResult(outcome, flow)
    if flow.is_expired(now):
        return PollResult(PollOutcome.EXPIRED, flow)
    if flow.state is FlowState.DENIED:
        return PollResult(PollOutcome.DENIED, flow)
    if flow.state is FlowState.APPROVED:
        # Consume-once: the transition to REDEEMED is what makes exactly one poll win.
        return PollResult(
            PollOutcome.REDEEM,
            flow._next(state=FlowState.REDEEMED, family_id=family_id, last_poll_at=now),
        )
    # PENDING or SCANNED. RFC 8628 §3.5 slow_down: measured from the last accepted poll, the
    # first poll is never throttled, and the stored interval grows by 5 s for all later polls.
    if flow.last_poll_at is not None and now - flow.last_poll_at < flow.interval:
        return PollResult(
            PollOutcome.SLOW_DOWN,
            dataclasses.replace(flow, interval=flow.interval + SLOW_DOWN_STEP),
        )
    return PollResult(PollOutcome.PENDING, dataclasses.replace(flow, last_poll_at=now))


def finish_redemption(flow: Flow, family_id: str) -> Flow | None:
    """Mark a redemption's tokens as committed; from now on a poll is a replay."""
    if flow.state is not FlowState.REDEEMED or flow.family_id != family_id or flow.issued:
        return None
    return dataclasses.replace(flow, issued=True)


def undo_redemption(flow: Flow, family_id: str) -> Flow | None:
    """REDEEMED -> APPROVED when issuing the tokens failed, so nothing approved is lost.

    Only the redemption that claimed the flow (same family_id) may undo it, and only before
    its tokens were committed.
    """
    if flow.state is not FlowState.REDEEMED or flow.family_id != family_id or flow.issued:
        return None
    return flow._next(state=FlowState.APPROVED, family_id=None)
