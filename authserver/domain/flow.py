"""The QR login flow as a state machine (RFC 8628 device grant with a scanned state).

            scan (phone)          confirm (phone)         claim (PC's token poll)
 PENDING ───────────────▶ SCANNED ───────────────▶ APPROVED ───────────────────▶ REDEEMED ──▶ issued
    │                        │ deny (phone)          ▲   │ cancel (operator, or     │   (tokens
    │ deny / cancel          ▼                       │   │ approval withdrawn)      │   committed)
    └──────────────────▶ DENIED ◀────────────────────┼───┘                          │
                                                     └──── undo, or lease lapses ───┘
 REDEEMED ──(a new claim finds the tokens already issued but never confirmed)──▶ VOIDED
 EXPIRED = now >= expires_at before the tokens are issued (computed, never a stored transition)

A claim holds a lease: a claim whose tokens were never committed (the worker died, a dependency
failed, Redis ran a script after its caller had given up) lapses when its lease ends, and the next
poll claims again. SQL's unique device-code hash makes a second issue impossible; a claim that finds
the tokens already issued voids the flow (its family is revoked): the PC reads expired_token, a
terminal answer it acts on by starting again.

Every function here is pure: it takes the flow and `now` (Unix seconds) and returns a new flow
or raises a domain error. Stores make the transitions atomic; they never decide them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from authserver.domain import errors
from authserver.domain.codes import secrets_equal
from authserver.domain.models import ApprovalFacts, GrantType

# RFC 8628 §3.4: the grant_type a PC sends with its device code.
DEVICE_CODE_GRANT = GrantType.DEVICE_CODE.value

SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: "the interval MUST be increased by 5 seconds"

# Stores keep a flow this long after it expires, so a late poll still reads expired_token; a
# replayed device code after that is still caught through its SQL token family.
CLEANUP_GRACE = 600

# How long a claim may take to commit its tokens before another poll may claim again. Above
# every bounded SQL wait of one redemption (connect, lock, statements), so a live claim is never
# taken over; short enough that a stranded one costs the PC a few polls.
DEFAULT_REDEMPTION_LEASE = 15

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
    VOIDED = "voided"  # a redemption found its tokens issued by a claim that never finished


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
    approved_at: float | None = None  # the user approved then: the ID token's auth_time
    family_id: str | None = None  # set when the tokens are committed
    issued: bool = False  # the redemption's tokens are committed; a later poll is a replay
    lease_until: float | None = None  # a claim (REDEEMED, not issued) lapses then
    # RFC 9449 §6.1 thumbprint of the DPoP key that asked for this flow: only a poll proving
    # possession of that key may redeem it, so a stolen device code is worthless. None: bearer.
    dpop_jkt: str | None = None
    # Number matching: the PC shows this number once the flow is scanned, and the phone must
    # pick it before it can confirm (as Microsoft Authenticator; CIBA's binding_message).
    match_number: int | None = None
    # A rotating QR code: a scan of the QR needs a fresh scan token (services/qr_links.py).
    rotating_qr: bool = False

    def is_expired(self, now: float) -> bool:
        """RFC 8628 §3.5 expired_token: past expires_at, unless tokens were issued or a live
        claim is issuing them right now."""
        if self.state is FlowState.VOIDED:
            return True
        if self.state is FlowState.REDEEMED and (self.issued or self.claim_is_live(now)):
            return False
        return now >= self.expires_at

    def claim_is_live(self, now: float) -> bool:
        """A poll claimed this flow and its lease has not lapsed yet."""
        return (
            self.state is FlowState.REDEEMED
            and not self.issued
            and self.lease_until is not None
            and now < self.lease_until
        )

    def status(self, now: float) -> FlowStatus:
        """The status channel's view; a redeemed flow reads as approved, a voided one expired."""
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
    approved_at = now if outcome is FlowState.APPROVED else None
    return flow._next(
        state=outcome, confirm_token_hash=None, confirm_expires_at=None, approved_at=approved_at
    )


def confirm(
    flow: Flow,
    now: float,
    *,
    user_id: str,
    mobile_device_id: str,
    confirm_token_hash: str,
    number: int | None = None,
) -> Flow:
    """SCANNED -> APPROVED with the confirm token, which is consumed by this transition.

    With number matching, only with the number the PC shows: without one nothing changes
    (NumberRequired); a wrong one consumes the token and DENIES the flow, since whoever picks
    wrong is not looking at the PC that asked (the caller reports the mismatch).
    """
    outcome = FlowState.APPROVED
    if flow.match_number is not None:
        if number is None:
            raise errors.NumberRequired()
        if not secrets_equal(str(flow.match_number), str(number)):
            outcome = FlowState.DENIED
    return _consume_confirm_token(
        flow,
        now,
        outcome,
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
    WRONG_KEY = "wrong_key"  # bound to a DPoP key this poll did not prove it holds
    PENDING = "pending"  # authorization_pending
    SLOW_DOWN = "slow_down"
    DENIED = "denied"  # access_denied
    EXPIRED = "expired"  # expired_token (a voided flow too)
    REDEEM = "redeem"  # approved: this caller holds the claim and issues the tokens
    CLAIMED = "claimed"  # another poll holds a live claim: authorization_pending, poll again
    REPLAY = "replay"  # redeemed and issued: invalid_grant, and revoke what was issued


# The outcomes whose caller needs the flow; a store answers every other outcome without it
# (the pending poll is the hot path: it returns one word).
OUTCOMES_WITH_FLOW = frozenset({PollOutcome.REDEEM, PollOutcome.EXPIRED, PollOutcome.REPLAY})


@dataclass(frozen=True, slots=True)
class PollResult:
    """The outcome of a poll and, for OUTCOMES_WITH_FLOW, the flow after it."""

    outcome: PollOutcome
    flow: Flow | None


@dataclass(frozen=True, slots=True)
class PollDecision:
    """What domain.poll decides: the outcome and the flow to store (None: store nothing)."""

    outcome: PollOutcome
    flow: Flow | None

    def result(self, current: Flow | None) -> PollResult:
        """What a store answers its caller for this decision."""
        if self.outcome not in OUTCOMES_WITH_FLOW:
            return PollResult(self.outcome, None)
        return PollResult(self.outcome, self.flow or current)


def poll(
    flow: Flow | None,
    now: float,
    *,
    client_id: str,
    client_secret_hash: str,
    lease: float,
    dpop_jkt: str | None = None,
) -> PollDecision:
    """Decide one token poll and the flow's next state; the Redis Lua script mirrors this.

    Checks run in a straight line, cheapest and most fundamental first; a rejected caller
    (wrong client, bad secret) changes nothing.
    """
    if flow is None:
        return PollDecision(PollOutcome.UNKNOWN, None)
    # RFC 6749 §4.1.3 by analogy: a code is bound to the client it was issued to.
    if flow.client_id != client_id:
        return PollDecision(PollOutcome.WRONG_CLIENT, None)
    if not secrets_equal(flow.client_secret_hash, client_secret_hash):
        return PollDecision(PollOutcome.BAD_SECRET, None)
    # RFC 9449 §10 by analogy (dpop_jkt binds an authorization code): without the key that
    # asked for the code, the poll changes nothing and learns nothing about the flow.
    if flow.dpop_jkt is not None and not secrets_equal(flow.dpop_jkt, dpop_jkt or ""):
        return PollDecision(PollOutcome.WRONG_KEY, None)
    if flow.state is FlowState.REDEEMED and flow.issued:
        # A second redemption after tokens were issued: the code leaked or the client is
        # confused; revoke (RFC 6749 §4.1.2 by analogy).
        return PollDecision(PollOutcome.REPLAY, None)
    if flow.claim_is_live(now):
        # Another poll is issuing the tokens right now; this one only waits. If that claim
        # delivers, a later poll is a replay; if it never does, its lease lapses.
        return PollDecision(PollOutcome.CLAIMED, None)
    if flow.is_expired(now):
        return PollDecision(PollOutcome.EXPIRED, None)
    if flow.state is FlowState.DENIED:
        return PollDecision(PollOutcome.DENIED, None)
    if flow.state in (FlowState.APPROVED, FlowState.REDEEMED):
        # Consume-once with a lease: the claim (a new version) is what makes one poll win; a
        # REDEEMED flow here holds a lapsed claim that never issued.
        return PollDecision(
            PollOutcome.REDEEM,
            flow._next(state=FlowState.REDEEMED, lease_until=now + lease, last_poll_at=now),
        )
    # PENDING or SCANNED. RFC 8628 §3.5 slow_down: measured from the last accepted poll, the
    # first poll is never throttled, and the stored interval grows by 5 s for all later polls.
    if flow.last_poll_at is not None and now - flow.last_poll_at < flow.interval:
        return PollDecision(
            PollOutcome.SLOW_DOWN,
            dataclasses.replace(flow, interval=flow.interval + SLOW_DOWN_STEP),
        )
    return PollDecision(PollOutcome.PENDING, dataclasses.replace(flow, last_poll_at=now))


class ClaimSettlement(enum.StrEnum):
    """How a claim (a REDEEM poll's hold on the flow) ends."""

    ISSUED = "issued"  # the tokens are committed: later polls are replays
    GIVEN_BACK = "given_back"  # issuing failed: APPROVED again, the next poll claims again
    WITHDRAWN = "withdrawn"  # the approval no longer stands: DENIED, the PC reads access_denied
    # An earlier claim issued the tokens and never finished, so nobody knows whether the PC got
    # them; that family is revoked and the PC reads expired_token (and starts again).
    VOIDED = "voided"


# The state each settlement leaves the flow in (ISSUED stays REDEEMED, marked issued).
SETTLED_STATE = {
    ClaimSettlement.ISSUED: FlowState.REDEEMED,
    ClaimSettlement.GIVEN_BACK: FlowState.APPROVED,
    ClaimSettlement.WITHDRAWN: FlowState.DENIED,
    ClaimSettlement.VOIDED: FlowState.VOIDED,
}


def settle_claim(
    flow: Flow, claim: int, settlement: ClaimSettlement, family_id: str = ""
) -> Flow | None:
    """End a claim; None if `claim` (the version its REDEEM poll returned) no longer holds the
    flow: it lapsed and was claimed again, or was settled already. So a late or repeated call,
    or one from a claim that was taken over, changes nothing."""
    if flow.state is not FlowState.REDEEMED or flow.version != claim or flow.issued:
        return None
    if settlement is ClaimSettlement.ISSUED:
        # No version bump: status waiters already saw "approved" when the flow was claimed.
        return dataclasses.replace(flow, issued=True, family_id=family_id, lease_until=None)
    return flow._next(state=SETTLED_STATE[settlement], lease_until=None)


def withdrawal_reason(facts: ApprovalFacts | None, flow: Flow, now: float) -> str | None:
    """Why an approval no longer stands at redemption, or None if it does.

    No revoke-all of the client's sessions since the flow started (disabling a client is one);
    the approving phone still signed in; its user not revoked-all since the flow started.
    """
    return approval_withdrawn(facts, flow.user_id, flow.created_at, now)


def approval_withdrawn(
    facts: ApprovalFacts | None, user_id: str | None, started_at: float, now: float
) -> str | None:
    """Why an approval that `user_id` gave for a request started at `started_at` no longer
    stands, or None if it does (a flow's redemption; an authorization code's too)."""
    if facts is None or facts.device.user_id != user_id:
        return "The approval was withdrawn: the approving phone is gone."
    client, user, device = facts.client, facts.user, facts.device
    if client.sessions_revoked_at is not None and started_at <= client.sessions_revoked_at:
        return "The approval was withdrawn: the client's sessions were revoked."
    if device.revoked_at is not None or now >= device.expires_at:
        return "The approval was withdrawn: the approving phone was signed out or revoked."
    if user.sessions_revoked_at is not None and started_at <= user.sessions_revoked_at:
        return "The approval was withdrawn: the user's sessions were revoked."
    return None
