"""Unit tests of domain.flow: the QR login state machine and the RFC 8628 poll decision."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from authserver.domain import errors
from authserver.domain.codes import hash_secret
from authserver.domain.flow import (
    SLOW_DOWN_STEP,
    ClaimSettlement,
    Flow,
    FlowState,
    FlowStatus,
    PollOutcome,
    cancel,
    confirm,
    deny,
    poll,
    scan,
    settle_claim,
)

T0 = 1_700_000_000.0  # created_at of every test flow
LIFETIME = 600.0
INTERVAL = 5
CONFIRM_TTL = 60
CLIENT_ID = "pc-app"
SECRET_HASH = hash_secret("client-secret")
USER = "user-1"
PHONE = "phone-1"
CONFIRM_HASH = hash_secret("confirm-token-1")


def make_flow(**changes: Any) -> Flow:
    """A fresh PENDING flow for a public client; override any field."""
    base = Flow(
        device_code_hash=hash_secret("device-code"),
        user_code_hash=hash_secret("WDJBMJHT"),
        client_id=CLIENT_ID,
        client_secret_hash="",
        scope="openid profile",
        requester_ip="192.0.2.10",
        requester_user_agent="TestAgent/1.0",
        created_at=T0,
        expires_at=T0 + LIFETIME,
        interval=INTERVAL,
    )
    return dataclasses.replace(base, **changes)


def do_scan(
    flow: Flow,
    now: float = T0 + 1,
    *,
    user_id: str = USER,
    mobile_device_id: str = PHONE,
    confirm_token_hash: str = CONFIRM_HASH,
    confirm_ttl: int = CONFIRM_TTL,
) -> Flow:
    return scan(
        flow,
        now,
        user_id=user_id,
        mobile_device_id=mobile_device_id,
        scanner_name="Alice Liddell",
        scanner_platform="ios",
        confirm_token_hash=confirm_token_hash,
        confirm_ttl=confirm_ttl,
    )


def scanned(now: float = T0 + 1) -> Flow:
    return do_scan(make_flow(), now)


def approved() -> Flow:
    return confirm(
        scanned(),
        T0 + 2,
        user_id=USER,
        mobile_device_id=PHONE,
        confirm_token_hash=CONFIRM_HASH,
    )


LEASE = 10.0


def do_poll(flow: Flow | None, now: float, **kwargs: Any) -> Any:
    args: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret_hash": "", "lease": LEASE}
    args.update(kwargs)
    return poll(flow, now, **args)


# --- the Flow record ------------------------------------------------------------------------
def test_new_flow_defaults() -> None:
    flow = make_flow()
    assert flow.state is FlowState.PENDING
    assert flow.version == 1
    assert flow.last_poll_at is None
    assert flow.confirm_token_hash is None
    assert flow.family_id is None
    assert flow.issued is False
    assert flow.lease_until is None


def test_flow_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_flow().state = FlowState.APPROVED  # type: ignore[misc]


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (FlowState.PENDING, FlowStatus.PENDING),
        (FlowState.SCANNED, FlowStatus.SCANNED),
        (FlowState.APPROVED, FlowStatus.APPROVED),
        (FlowState.DENIED, FlowStatus.DENIED),
        (FlowState.REDEEMED, FlowStatus.APPROVED),  # the status channel never says "redeemed"
        (FlowState.VOIDED, FlowStatus.EXPIRED),
    ],
)
def test_status_before_expiry(state: FlowState, status: FlowStatus) -> None:
    flow = make_flow(state=state)
    assert flow.status(T0 + LIFETIME - 0.001) is status
    assert flow.is_expired(T0 + LIFETIME - 0.001) is (state is FlowState.VOIDED)


@pytest.mark.parametrize(
    "state", [FlowState.PENDING, FlowState.SCANNED, FlowState.APPROVED, FlowState.DENIED]
)
def test_expired_is_computed_at_expires_at_for_every_state_before_redeemed(
    state: FlowState,
) -> None:
    flow = make_flow(state=state)
    assert not flow.is_expired(T0 + LIFETIME - 0.001)
    assert flow.is_expired(T0 + LIFETIME)  # RFC 8628 §3.5: at expires_at it is gone
    assert flow.status(T0 + LIFETIME) is FlowStatus.EXPIRED
    assert flow.status(T0 + 10 * LIFETIME) is FlowStatus.EXPIRED
    assert flow.state is state  # computed, never stored


def test_issued_never_expires_and_reads_approved() -> None:
    flow = make_flow(state=FlowState.REDEEMED, family_id="fam-1", issued=True)
    assert not flow.is_expired(T0 + 10 * LIFETIME)
    assert flow.status(T0 + 10 * LIFETIME) is FlowStatus.APPROVED


def test_a_live_claim_outlives_expires_at_and_a_lapsed_one_does_not() -> None:
    flow = make_flow(state=FlowState.REDEEMED, lease_until=T0 + LIFETIME + 5)
    assert not flow.is_expired(T0 + LIFETIME + 4)  # the claim is issuing right now
    assert flow.status(T0 + LIFETIME + 4) is FlowStatus.APPROVED
    assert flow.is_expired(T0 + LIFETIME + 5)  # it lapsed: nothing was issued in time
    assert flow.status(T0 + LIFETIME + 5) is FlowStatus.EXPIRED


def test_a_voided_flow_reads_expired_at_once() -> None:
    flow = make_flow(state=FlowState.VOIDED)
    assert flow.is_expired(T0 + 1)
    assert flow.status(T0 + 1) is FlowStatus.EXPIRED


# --- scan -----------------------------------------------------------------------------------
def test_scan_pending_to_scanned_binds_the_phone() -> None:
    flow = make_flow()
    out = do_scan(flow, T0 + 10)
    assert out.state is FlowState.SCANNED
    assert out.version == flow.version + 1
    assert out.user_id == USER
    assert out.mobile_device_id == PHONE
    assert out.scanner_name == "Alice Liddell"
    assert out.scanner_platform == "ios"
    assert out.confirm_token_hash == CONFIRM_HASH
    assert out.confirm_expires_at == T0 + 10 + CONFIRM_TTL
    assert out.status(T0 + 10) is FlowStatus.SCANNED
    # The input is untouched (pure function).
    assert flow.state is FlowState.PENDING
    assert flow.version == 1


def test_scan_confirm_expiry_is_capped_at_the_flow_expiry() -> None:
    out = do_scan(make_flow(), T0 + LIFETIME - 10, confirm_ttl=CONFIRM_TTL)
    assert out.confirm_expires_at == T0 + LIFETIME


def test_same_phone_rescan_gets_a_new_confirm_token() -> None:
    first = scanned()
    new_hash = hash_secret("confirm-token-2")
    second = do_scan(first, T0 + 30, confirm_token_hash=new_hash)
    assert second.state is FlowState.SCANNED
    assert second.confirm_token_hash == new_hash
    assert second.confirm_expires_at == T0 + 30 + CONFIRM_TTL
    assert second.version == first.version + 1


def test_rescan_invalidates_the_old_confirm_token() -> None:
    second = do_scan(scanned(), T0 + 30, confirm_token_hash=hash_secret("confirm-token-2"))
    with pytest.raises(errors.InvalidConfirmToken):
        confirm(
            second, T0 + 31, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=CONFIRM_HASH
        )


@pytest.mark.parametrize(
    ("user_id", "mobile_device_id"),
    [("user-2", "phone-2"), (USER, "phone-2"), ("user-2", PHONE)],
)
def test_another_phone_or_user_cannot_scan_a_scanned_flow(
    user_id: str, mobile_device_id: str
) -> None:
    with pytest.raises(errors.FlowAlreadyScanned):
        do_scan(scanned(), T0 + 5, user_id=user_id, mobile_device_id=mobile_device_id)


@pytest.mark.parametrize("state", [FlowState.PENDING, FlowState.SCANNED])
def test_scan_after_expiry_raises_flow_expired(state: FlowState) -> None:
    flow = make_flow() if state is FlowState.PENDING else scanned()
    with pytest.raises(errors.FlowExpired):
        do_scan(flow, T0 + LIFETIME)


@pytest.mark.parametrize("state", [FlowState.APPROVED, FlowState.DENIED, FlowState.REDEEMED])
def test_scan_in_a_final_state_is_not_actionable(state: FlowState) -> None:
    flow = make_flow(state=state, user_id=USER, mobile_device_id=PHONE)
    with pytest.raises(errors.FlowNotActionable):
        do_scan(flow, T0 + 5)


def test_same_phone_cannot_rescan_after_approval() -> None:
    with pytest.raises(errors.FlowNotActionable):
        do_scan(approved(), T0 + 5)


def test_redeemed_flow_cannot_be_scanned_even_after_expires_at() -> None:
    flow = make_flow(state=FlowState.REDEEMED, issued=True)
    with pytest.raises(errors.FlowNotActionable):
        do_scan(flow, T0 + LIFETIME + 1)


# --- confirm and deny -----------------------------------------------------------------------
TRANSITIONS = [(confirm, FlowState.APPROVED), (deny, FlowState.DENIED)]


@pytest.mark.parametrize(("transition", "target"), TRANSITIONS)
def test_confirm_or_deny_consumes_the_confirm_token(transition: Any, target: FlowState) -> None:
    flow = scanned()
    out = transition(
        flow, T0 + 2, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=CONFIRM_HASH
    )
    assert out.state is target
    assert out.version == flow.version + 1
    assert out.confirm_token_hash is None
    assert out.confirm_expires_at is None
    assert out.user_id == USER  # who approved stays on record
    assert out.mobile_device_id == PHONE
    assert out.status(T0 + 2) is FlowStatus(target.value)


@pytest.mark.parametrize(("transition", "target"), TRANSITIONS)
@pytest.mark.parametrize("second", [confirm, deny])
def test_confirm_token_is_single_use(transition: Any, target: FlowState, second: Any) -> None:
    out = transition(
        scanned(), T0 + 2, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=CONFIRM_HASH
    )
    assert out.state is target
    with pytest.raises(errors.InvalidConfirmToken):
        second(out, T0 + 3, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=CONFIRM_HASH)


@pytest.mark.parametrize(("transition", "target"), TRANSITIONS)
@pytest.mark.parametrize(
    ("user_id", "mobile_device_id", "token_hash"),
    [
        (USER, PHONE, hash_secret("wrong-token")),
        (USER, PHONE, ""),
        ("user-2", PHONE, CONFIRM_HASH),
        (USER, "phone-2", CONFIRM_HASH),
    ],
)
def test_confirm_or_deny_rejects_wrong_token_user_or_device(
    transition: Any, target: FlowState, user_id: str, mobile_device_id: str, token_hash: str
) -> None:
    flow = scanned()
    with pytest.raises(errors.InvalidConfirmToken):
        transition(
            flow,
            T0 + 2,
            user_id=user_id,
            mobile_device_id=mobile_device_id,
            confirm_token_hash=token_hash,
        )
    assert flow.state is FlowState.SCANNED


@pytest.mark.parametrize(("transition", "target"), TRANSITIONS)
def test_confirm_token_expires(transition: Any, target: FlowState) -> None:
    flow = scanned(T0 + 1)
    deadline = T0 + 1 + CONFIRM_TTL
    ok = transition(
        flow,
        deadline - 0.001,
        user_id=USER,
        mobile_device_id=PHONE,
        confirm_token_hash=CONFIRM_HASH,
    )
    assert ok.state is target
    with pytest.raises(errors.InvalidConfirmToken):
        transition(
            flow, deadline, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=CONFIRM_HASH
        )


@pytest.mark.parametrize(("transition", "target"), TRANSITIONS)
def test_confirm_or_deny_after_flow_expiry_raises_flow_expired(
    transition: Any, target: FlowState
) -> None:
    flow = scanned(T0 + LIFETIME - 5)  # confirm window capped at expires_at
    with pytest.raises(errors.FlowExpired):
        transition(
            flow,
            T0 + LIFETIME,
            user_id=USER,
            mobile_device_id=PHONE,
            confirm_token_hash=CONFIRM_HASH,
        )


@pytest.mark.parametrize(("transition", "target"), TRANSITIONS)
def test_confirm_or_deny_a_pending_flow_is_refused(transition: Any, target: FlowState) -> None:
    # Even a hash that matches by accident: nothing was scanned, so nothing can be confirmed.
    flow = make_flow(confirm_token_hash=CONFIRM_HASH, user_id=USER, mobile_device_id=PHONE)
    with pytest.raises(errors.InvalidConfirmToken):
        transition(
            flow, T0 + 2, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=CONFIRM_HASH
        )


@pytest.mark.parametrize(("transition", "target"), TRANSITIONS)
def test_rescan_gives_a_fresh_confirm_window(transition: Any, target: FlowState) -> None:
    first = scanned(T0 + 1)
    token2 = hash_secret("confirm-token-2")
    second = do_scan(first, T0 + 1 + CONFIRM_TTL + 10, confirm_token_hash=token2)
    out = transition(
        second,
        T0 + 1 + CONFIRM_TTL + 20,
        user_id=USER,
        mobile_device_id=PHONE,
        confirm_token_hash=token2,
    )
    assert out.state is target


# --- cancel ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make", [make_flow, scanned, lambda: make_flow(state=FlowState.APPROVED, version=3)]
)
def test_cancel_pending_scanned_or_approved_denies(make: Any) -> None:
    flow = make()
    out = cancel(flow, T0 + 3)
    assert out.state is FlowState.DENIED
    assert out.version == flow.version + 1
    assert out.confirm_token_hash is None
    assert out.confirm_expires_at is None


def test_cancel_kills_the_confirm_token() -> None:
    out = cancel(scanned(), T0 + 3)
    with pytest.raises(errors.InvalidConfirmToken):
        confirm(out, T0 + 4, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=CONFIRM_HASH)


@pytest.mark.parametrize("state", [FlowState.DENIED, FlowState.REDEEMED])
def test_cancel_in_a_final_state_is_not_actionable(state: FlowState) -> None:
    with pytest.raises(errors.FlowNotActionable):
        cancel(make_flow(state=state), T0 + 3)


def test_cancel_after_expiry_raises_flow_expired() -> None:
    with pytest.raises(errors.FlowExpired):
        cancel(make_flow(), T0 + LIFETIME)


# --- poll: who is asking ---------------------------------------------------------------------
def test_poll_unknown_device_code() -> None:
    result = do_poll(None, T0 + 5)
    assert result.outcome is PollOutcome.UNKNOWN
    assert result.flow is None


@pytest.mark.parametrize(
    "state", [FlowState.PENDING, FlowState.APPROVED, FlowState.DENIED, FlowState.REDEEMED]
)
def test_poll_from_another_client_changes_nothing(state: FlowState) -> None:
    flow = make_flow(state=state, last_poll_at=T0 + 1)
    result = do_poll(flow, T0 + 1.5, client_id="other-client")
    assert result.outcome is PollOutcome.WRONG_CLIENT
    assert result.flow is None  # nothing to store


def test_wrong_client_wins_over_expiry() -> None:
    flow = make_flow()
    result = do_poll(flow, T0 + LIFETIME + 1, client_id="other-client")
    assert result.outcome is PollOutcome.WRONG_CLIENT


@pytest.mark.parametrize("given", ["", hash_secret("wrong-secret"), SECRET_HASH.upper()])
@pytest.mark.parametrize("state", [FlowState.PENDING, FlowState.APPROVED, FlowState.REDEEMED])
def test_confidential_flow_rejects_a_bad_secret_and_changes_nothing(
    given: str, state: FlowState
) -> None:
    flow = make_flow(client_secret_hash=SECRET_HASH, state=state, last_poll_at=T0 + 1)
    result = do_poll(flow, T0 + 1.5, client_secret_hash=given)
    assert result.outcome is PollOutcome.BAD_SECRET
    assert result.flow is None


def test_confidential_flow_accepts_the_right_secret() -> None:
    flow = make_flow(client_secret_hash=SECRET_HASH)
    result = do_poll(flow, T0 + 5, client_secret_hash=SECRET_HASH)
    assert result.outcome is PollOutcome.PENDING


def test_public_flow_rejects_any_secret() -> None:
    # A public flow stores "" and so only matches a caller who presented no secret.
    flow = make_flow()
    assert do_poll(flow, T0 + 5).outcome is PollOutcome.PENDING
    result = do_poll(flow, T0 + 5, client_secret_hash=SECRET_HASH)
    assert result.outcome is PollOutcome.BAD_SECRET


# --- poll: pending and slow_down ------------------------------------------------------------
@pytest.mark.parametrize("make", [make_flow, scanned])
def test_first_poll_is_pending_and_never_slow_down(make: Any) -> None:
    flow = make()
    # Right after creation (or a scan) the first poll is never throttled.
    result = do_poll(flow, T0 + 2)
    assert result.outcome is PollOutcome.PENDING
    assert result.flow.last_poll_at == T0 + 2
    assert result.flow.interval == INTERVAL
    assert result.flow.state is flow.state


def test_pending_poll_does_not_bump_the_version() -> None:
    # Version tracks state transitions the status channel waits on, not poll bookkeeping.
    flow = make_flow()
    result = do_poll(flow, T0 + 1)
    assert result.flow.version == flow.version


def test_poll_at_exactly_the_interval_is_accepted() -> None:
    flow = do_poll(make_flow(), T0 + 1).flow
    result = do_poll(flow, T0 + 1 + INTERVAL)
    assert result.outcome is PollOutcome.PENDING
    assert result.flow.last_poll_at == T0 + 1 + INTERVAL
    assert result.flow.interval == INTERVAL


def test_poll_faster_than_the_interval_slows_down() -> None:
    flow = do_poll(make_flow(), T0 + 1).flow
    result = do_poll(flow, T0 + 1 + INTERVAL - 0.5)
    assert result.outcome is PollOutcome.SLOW_DOWN
    assert result.flow.interval == INTERVAL + SLOW_DOWN_STEP == INTERVAL + 5
    # The rejected poll does not count: measured from the last accepted poll.
    assert result.flow.last_poll_at == T0 + 1
    assert result.flow.state is FlowState.PENDING


def test_slow_down_in_scanned_state() -> None:
    flow = do_poll(scanned(), T0 + 2).flow
    result = do_poll(flow, T0 + 3)
    assert result.outcome is PollOutcome.SLOW_DOWN
    assert result.flow.state is FlowState.SCANNED


def test_after_slow_down_the_next_poll_waits_the_new_interval() -> None:
    accepted_at = T0 + 1
    flow = do_poll(make_flow(), accepted_at).flow
    flow = do_poll(flow, accepted_at + 1).flow  # slow_down: interval 5 -> 10
    assert flow.interval == INTERVAL + 5

    # The old interval has passed since the last accepted poll, the new one has not.
    result = do_poll(flow, accepted_at + INTERVAL + 1)
    assert result.outcome is PollOutcome.SLOW_DOWN
    assert result.flow.interval == INTERVAL + 10
    assert result.flow.last_poll_at == accepted_at

    result = do_poll(result.flow, accepted_at + INTERVAL + 10)
    assert result.outcome is PollOutcome.PENDING
    assert result.flow.interval == INTERVAL + 10  # the interval never shrinks back
    assert result.flow.last_poll_at == accepted_at + INTERVAL + 10


def test_a_client_that_respects_the_interval_is_never_slowed_down() -> None:
    flow = make_flow()
    now = T0
    for _ in range(20):
        result = do_poll(flow, now)
        assert result.outcome is PollOutcome.PENDING
        flow = result.flow
        now += INTERVAL
    assert flow.interval == INTERVAL


# --- poll: final answers --------------------------------------------------------------------
def test_poll_denied() -> None:
    flow = cancel(make_flow(), T0 + 1)
    result = do_poll(flow, T0 + 2)
    assert result.outcome is PollOutcome.DENIED
    assert result.flow is None


def test_denied_is_not_slowed_down() -> None:
    flow = cancel(make_flow(last_poll_at=T0 + 1), T0 + 1)
    assert do_poll(flow, T0 + 1.1).outcome is PollOutcome.DENIED


@pytest.mark.parametrize(
    "state", [FlowState.PENDING, FlowState.SCANNED, FlowState.APPROVED, FlowState.DENIED]
)
def test_poll_expired(state: FlowState) -> None:
    flow = make_flow(state=state)
    result = do_poll(flow, T0 + LIFETIME)
    assert result.outcome is PollOutcome.EXPIRED
    assert result.flow is None
    # What a store answers its caller: the flow, for the expiry's audit event.
    assert result.result(flow).flow == flow


def test_expiry_wins_over_slow_down() -> None:
    flow = make_flow(last_poll_at=T0 + LIFETIME - 1)
    result = do_poll(flow, T0 + LIFETIME)
    assert result.outcome is PollOutcome.EXPIRED
    assert result.flow is None  # the interval was not raised


def test_approved_poll_claims_with_a_lease() -> None:
    flow = approved()
    result = do_poll(flow, T0 + 3)
    assert result.outcome is PollOutcome.REDEEM
    assert result.flow.state is FlowState.REDEEMED
    assert result.flow.lease_until == T0 + 3 + LEASE
    assert result.flow.version == flow.version + 1  # the claim: only its holder may settle it
    assert result.flow.issued is False
    assert result.flow.family_id is None  # drawn by the redeemer, not per poll
    assert result.flow.last_poll_at == T0 + 3


def test_approved_poll_redeems_even_when_polled_fast() -> None:
    # Approval is never held back by slow_down: the user is waiting.
    flow = dataclasses.replace(approved(), last_poll_at=T0 + 2.9)
    assert do_poll(flow, T0 + 3).outcome is PollOutcome.REDEEM


def redeemed() -> Flow:
    result = do_poll(approved(), T0 + 3)
    assert result.outcome is PollOutcome.REDEEM
    flow: Flow = result.flow
    return flow


def issued(family_id: str = "fam-42") -> Flow:
    flow = redeemed()
    done = settle_claim(flow, flow.version, ClaimSettlement.ISSUED, family_id)
    assert done is not None
    return done


def test_a_poll_during_a_live_claim_waits_and_changes_nothing() -> None:
    flow = redeemed()
    result = do_poll(flow, T0 + 3 + LEASE - 0.001)
    assert result.outcome is PollOutcome.CLAIMED  # authorization_pending on the wire
    assert result.flow is None


def test_a_lapsed_claim_is_claimed_again_by_the_next_poll() -> None:
    """The redeemer died (or its store write ran after it gave up): its lease lapses."""
    flow = redeemed()
    result = do_poll(flow, T0 + 3 + LEASE)
    assert result.outcome is PollOutcome.REDEEM
    assert result.flow.version == flow.version + 1  # a new claim; the old one can settle nothing
    assert result.flow.lease_until == T0 + 3 + 2 * LEASE
    assert settle_claim(result.flow, flow.version, ClaimSettlement.ISSUED, "fam-old") is None


def test_a_lapsed_claim_past_the_codes_lifetime_is_expired() -> None:
    flow = dataclasses.replace(redeemed(), lease_until=T0 + LIFETIME - 1)
    assert do_poll(flow, T0 + LIFETIME).outcome is PollOutcome.EXPIRED


def test_poll_after_the_tokens_are_issued_is_a_replay_and_changes_nothing() -> None:
    flow = issued()
    result = do_poll(flow, T0 + 20)
    assert result.outcome is PollOutcome.REPLAY
    assert result.flow is None
    assert result.result(flow).flow.family_id == "fam-42"  # the family to revoke


def test_an_issued_flow_never_reads_expired() -> None:
    assert do_poll(issued(), T0 + LIFETIME + 100).outcome is PollOutcome.REPLAY


def test_a_voided_flow_reads_expired() -> None:
    flow = redeemed()
    voided = settle_claim(flow, flow.version, ClaimSettlement.VOIDED)
    assert voided is not None
    assert voided.state is FlowState.VOIDED
    assert do_poll(voided, T0 + 5).outcome is PollOutcome.EXPIRED


@pytest.mark.parametrize("make", [redeemed, issued])
def test_a_redeemed_flow_polled_by_another_client_is_wrong_client(make: Any) -> None:
    result = do_poll(make(), T0 + 20, client_id="other-client")
    assert result.outcome is PollOutcome.WRONG_CLIENT


# --- settle_claim ---------------------------------------------------------------------------
def test_issued_marks_the_tokens_committed_without_a_version_bump() -> None:
    flow = redeemed()
    done = settle_claim(flow, flow.version, ClaimSettlement.ISSUED, "fam-42")
    assert done is not None
    assert done.issued is True and done.state is FlowState.REDEEMED
    assert done.family_id == "fam-42" and done.lease_until is None
    assert done.version == flow.version  # status waiters already saw "approved"
    assert done.status(T0 + 4) is FlowStatus.APPROVED


@pytest.mark.parametrize(
    ("settlement", "state"),
    [
        (ClaimSettlement.GIVEN_BACK, FlowState.APPROVED),
        (ClaimSettlement.WITHDRAWN, FlowState.DENIED),
        (ClaimSettlement.VOIDED, FlowState.VOIDED),
    ],
)
def test_other_settlements_move_the_flow_on(settlement: ClaimSettlement, state: FlowState) -> None:
    flow = redeemed()
    settled = settle_claim(flow, flow.version, settlement)
    assert settled is not None
    assert settled.state is state and settled.lease_until is None and not settled.issued
    assert settled.version == flow.version + 1


def test_a_given_back_flow_is_claimed_again() -> None:
    flow = redeemed()
    back = settle_claim(flow, flow.version, ClaimSettlement.GIVEN_BACK)
    assert back is not None
    assert do_poll(back, T0 + 4).outcome is PollOutcome.REDEEM


@pytest.mark.parametrize("settlement", list(ClaimSettlement))
def test_only_the_claim_that_holds_the_flow_settles_it(settlement: ClaimSettlement) -> None:
    flow = redeemed()
    assert settle_claim(flow, flow.version - 1, settlement) is None  # an older claim
    assert settle_claim(flow, flow.version + 1, settlement) is None
    assert settle_claim(issued(), flow.version, settlement) is None  # settled already


@pytest.mark.parametrize(
    "state", [FlowState.PENDING, FlowState.SCANNED, FlowState.APPROVED, FlowState.DENIED]
)
@pytest.mark.parametrize("settlement", list(ClaimSettlement))
def test_an_unclaimed_flow_cannot_be_settled(state: FlowState, settlement: ClaimSettlement) -> None:
    flow = make_flow(state=state)
    assert settle_claim(flow, flow.version, settlement) is None


# --- a whole flow ---------------------------------------------------------------------------
def test_happy_path_end_to_end() -> None:
    flow = make_flow()
    r = do_poll(flow, T0 + 0)
    assert r.outcome is PollOutcome.PENDING
    flow = do_scan(r.flow, T0 + 3)
    assert flow.status(T0 + 3) is FlowStatus.SCANNED
    r = do_poll(flow, T0 + 5)
    assert r.outcome is PollOutcome.PENDING
    flow = confirm(
        r.flow, T0 + 7, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=CONFIRM_HASH
    )
    assert flow.status(T0 + 7) is FlowStatus.APPROVED
    r = do_poll(flow, T0 + 10)
    assert r.outcome is PollOutcome.REDEEM
    assert r.flow.status(T0 + 10) is FlowStatus.APPROVED
    assert r.flow.version == 4  # create, scan, confirm, claim
    assert do_poll(r.flow, T0 + 11).outcome is PollOutcome.CLAIMED
    done = settle_claim(r.flow, r.flow.version, ClaimSettlement.ISSUED, "fam-9")
    assert done is not None
    assert do_poll(done, T0 + 15).outcome is PollOutcome.REPLAY
