"""One contract suite for every FlowStore (domain/ports.py).

Each test runs against the embedded store and against a real Redis. Time is passed in as
`now`; nothing here sleeps for expiry. The flows are dated at the real clock so that a store
may derive its clean-up TTLs from `expires_at` without the keys vanishing mid-test.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from authserver.domain import codes
from authserver.domain import flow as domain
from authserver.domain.flow import ClaimSettlement, Flow, FlowState, PollOutcome, PollResult

LIFETIME = 600.0
INTERVAL = 5
LEASE = 10.0
CONFIRM_TTL = 60
CLIENT_ID = "pc-app"
CLIENT_SECRET_HASH = codes.hash_secret("client-secret")
USER = "user-1"
PHONE = "phone-1"

BACKENDS = ["embedded", pytest.param("redis", marks=pytest.mark.redis)]


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Any:
    """A fresh, empty FlowStore of each kind."""
    if request.param == "embedded":
        from authserver.storage.embedded.flows import EmbeddedFlowStore

        return EmbeddedFlowStore()
    from authserver.storage.redis_store.flows import RedisFlowStore

    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    return RedisFlowStore(client, prefix=prefix)


@pytest.fixture
def t0() -> float:
    """Creation time of the test's flows: the real clock (see the module docstring)."""
    return time.time()


# --- building flows -------------------------------------------------------------------------
@dataclasses.dataclass
class Secrets:
    """The raw secrets behind one flow; the store must only ever see their hashes."""

    device_code: str = dataclasses.field(default_factory=codes.new_device_code)
    user_code: str = dataclasses.field(default_factory=codes.new_user_code)  # XXXX-XXXX
    confirm_token: str = dataclasses.field(default_factory=codes.new_token)

    @property
    def device_code_hash(self) -> str:
        return codes.hash_secret(self.device_code)

    @property
    def user_code_hash(self) -> str:
        normalized = codes.normalize_user_code(self.user_code)
        assert normalized is not None
        return codes.hash_secret(normalized)

    @property
    def confirm_token_hash(self) -> str:
        return codes.hash_secret(self.confirm_token)


def make_flow(t0: float, secrets: Secrets | None = None, **changes: Any) -> Flow:
    """A new PENDING flow of a public client created at t0; override any field."""
    secrets = secrets or Secrets()
    flow = Flow(
        device_code_hash=secrets.device_code_hash,
        user_code_hash=secrets.user_code_hash,
        client_id=CLIENT_ID,
        client_secret_hash="",
        scope="openid profile",
        requester_ip="192.0.2.10",
        requester_user_agent="Mozilla/5.0 (X11; Linux x86_64) Test/1.0",
        created_at=t0,
        expires_at=t0 + LIFETIME,
        interval=INTERVAL,
    )
    return dataclasses.replace(flow, **changes)


def scanned_from(flow: Flow, now: float, confirm_token_hash: str) -> Flow:
    return domain.scan(
        flow,
        now,
        user_id=USER,
        mobile_device_id=PHONE,
        scanner_name="Alice Liddell",
        scanner_platform="android",
        confirm_token_hash=confirm_token_hash,
        confirm_ttl=CONFIRM_TTL,
    )


def confirmed_from(flow: Flow, now: float, confirm_token_hash: str) -> Flow:
    return domain.confirm(
        flow, now, user_id=USER, mobile_device_id=PHONE, confirm_token_hash=confirm_token_hash
    )


def put(store: Any, flow: Flow) -> Flow:
    assert store.create(flow) is True
    return flow


def advance(store: Any, old: Flow, new: Flow) -> Flow:
    assert store.replace(old, new) is True
    return new


def stored_in(
    store: Any, t0: float, state: FlowState, *, tokens_issued: bool = False, **changes: Any
) -> Flow:
    """Create a flow and drive it through the store into `state`, the way the services do.

    A REDEEMED flow is redeemed by family "fam-first"; with `tokens_issued` its redemption
    is also finished.
    """
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets, **changes))
    if state is FlowState.PENDING:
        return flow
    flow = advance(store, flow, scanned_from(flow, t0 + 1, secrets.confirm_token_hash))
    if state is FlowState.SCANNED:
        return flow
    if state is FlowState.DENIED:
        return advance(store, flow, domain.cancel(flow, t0 + 2))
    flow = advance(store, flow, confirmed_from(flow, t0 + 2, secrets.confirm_token_hash))
    if state is FlowState.APPROVED:
        return flow
    assert state is FlowState.REDEEMED
    result = store.poll(
        flow.device_code_hash,
        t0 + 3,
        client_id=flow.client_id,
        client_secret_hash=flow.client_secret_hash,
        lease=LEASE,
    )
    assert result.outcome is PollOutcome.REDEEM
    if not tokens_issued:
        claimed: Flow = result.flow
        return claimed
    assert store.settle_claim(
        flow.device_code_hash, result.flow.version, ClaimSettlement.ISSUED, "fam-first"
    )
    done = store.get(flow.device_code_hash)
    assert done.issued is True
    return done


def poll_args(flow: Flow, **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "client_id": flow.client_id,
        "client_secret_hash": flow.client_secret_hash,
        "lease": LEASE,
    }
    args.update(changes)
    return args


def poll_like_domain(store: Any, device_code_hash: str, now: float, **args: Any) -> PollResult:
    """Poll the store and check it did exactly what domain.flow.poll decides, and stored it."""
    before = store.get(device_code_hash)
    decision = domain.poll(before, now, **args)
    result = store.poll(device_code_hash, now, **args)
    assert result == decision.result(before)
    # What is stored now is the decision's flow, or the flow unchanged.
    assert store.get(device_code_hash) == (decision.flow or before)
    return result


# --- create, get, find_by_user_code ---------------------------------------------------------
def test_create_then_get_round_trips_every_field(store: Any, t0: float) -> None:
    flow = make_flow(t0 + 0.125, interval=7, client_secret_hash=CLIENT_SECRET_HASH, scope="")
    assert store.create(flow) is True
    got = store.get(flow.device_code_hash)
    assert got == flow
    assert got.state is FlowState.PENDING
    assert isinstance(got.interval, int)
    assert got.last_poll_at is None
    assert got.issued is False


def test_a_flow_with_every_optional_field_round_trips(store: Any, t0: float) -> None:
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets))
    store.poll(flow.device_code_hash, t0 + 1.25, **poll_args(flow))  # sets last_poll_at
    polled = store.get(flow.device_code_hash)
    assert polled.last_poll_at == t0 + 1.25
    full = dataclasses.replace(
        scanned_from(polled, t0 + 1.5, secrets.confirm_token_hash),
        scanner_name="Zoë Ölander-Smith",  # non-ASCII survives
    )
    advance(store, polled, full)
    got = store.get(flow.device_code_hash)
    assert got == full
    assert got.state is FlowState.SCANNED
    assert got.confirm_expires_at == t0 + 1.5 + CONFIRM_TTL


def test_get_unknown_is_none(store: Any) -> None:
    assert store.get(codes.hash_secret("no-such-device-code")) is None


def test_find_by_user_code(store: Any, t0: float) -> None:
    one = put(store, make_flow(t0))
    two = put(store, make_flow(t0))
    assert store.find_by_user_code(one.user_code_hash) == one
    assert store.find_by_user_code(two.user_code_hash) == two
    assert store.find_by_user_code(codes.hash_secret("BCDFGHJK")) is None


def test_find_by_user_code_sees_the_latest_version(store: Any, t0: float) -> None:
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets))
    new = advance(store, flow, scanned_from(flow, t0 + 1, secrets.confirm_token_hash))
    assert store.find_by_user_code(flow.user_code_hash) == new


def test_create_refuses_a_user_code_taken_by_a_live_flow(store: Any, t0: float) -> None:
    secrets = Secrets()
    first = put(store, make_flow(t0, secrets))
    clash = make_flow(
        t0 + 1, Secrets(user_code=secrets.user_code), client_id="another-client", scope="email"
    )
    assert clash.device_code_hash != first.device_code_hash
    assert store.create(clash) is False
    # Nothing of the refused flow was stored and the first one is untouched.
    assert store.get(clash.device_code_hash) is None
    assert store.find_by_user_code(first.user_code_hash) == first
    assert store.get(first.device_code_hash) == first


# --- replace (compare-and-set) --------------------------------------------------------------
def test_replace_writes_when_the_version_matches(store: Any, t0: float) -> None:
    flow = put(store, make_flow(t0))
    new = domain.cancel(flow, t0 + 1)
    assert store.replace(flow, new) is True
    assert store.get(flow.device_code_hash) == new


def test_replace_with_a_stale_old_changes_nothing(store: Any, t0: float) -> None:
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets))
    winner = advance(store, flow, scanned_from(flow, t0 + 1, secrets.confirm_token_hash))
    # A second writer still holding version 1 loses, whatever it tries to write.
    assert store.replace(flow, domain.cancel(flow, t0 + 2)) is False
    assert store.get(flow.device_code_hash) == winner
    assert store.find_by_confirm_token(secrets.confirm_token_hash) == winner


def test_replace_of_an_unknown_flow_is_refused(store: Any, t0: float) -> None:
    flow = make_flow(t0)
    assert store.replace(flow, domain.cancel(flow, t0 + 1)) is False
    assert store.get(flow.device_code_hash) is None


def test_replace_keeps_what_a_poll_stored_meanwhile(store: Any, t0: float) -> None:
    # A phone-side transition never changes the poll bookkeeping, so a poll that got in
    # between the service's read and its replace must not be undone (RFC 8628 §3.5).
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets))
    h = flow.device_code_hash
    store.poll(h, t0 + 1, **poll_args(flow))
    seen = store.get(h)  # the scan service reads the flow...
    store.poll(h, t0 + 2, **poll_args(flow))  # ...the PC polls too fast: slow_down...
    assert store.get(h).interval == INTERVAL + domain.SLOW_DOWN_STEP
    # ...and the scan, decided on the older read, still wins the compare-and-set.
    assert store.replace(seen, scanned_from(seen, t0 + 3, secrets.confirm_token_hash))
    stored = store.get(h)
    assert stored.state is FlowState.SCANNED
    assert stored.interval == INTERVAL + domain.SLOW_DOWN_STEP
    assert stored.last_poll_at == t0 + 1


def test_concurrent_replace_has_exactly_one_winner(store: Any, t0: float) -> None:
    flow = put(store, make_flow(t0))
    n = 16
    barrier = threading.Barrier(n)
    results: list[bool] = [False] * n
    candidates = [scanned_from(flow, t0 + 1, codes.hash_secret(f"confirm-{i}")) for i in range(n)]

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = store.replace(flow, candidates[i])

    run_threads(n, worker)
    assert results.count(True) == 1
    winner = candidates[results.index(True)]
    assert store.get(flow.device_code_hash) == winner


# --- find_by_confirm_token ------------------------------------------------------------------
def test_confirm_token_index_follows_replace(store: Any, t0: float) -> None:
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets))
    assert store.find_by_confirm_token(secrets.confirm_token_hash) is None

    first = advance(store, flow, scanned_from(flow, t0 + 1, secrets.confirm_token_hash))
    assert store.find_by_confirm_token(secrets.confirm_token_hash) == first

    # The same phone scans again: only the new token finds the flow.
    token2 = codes.hash_secret(codes.new_token())
    second = advance(store, first, scanned_from(first, t0 + 5, token2))
    assert store.find_by_confirm_token(token2) == second
    assert store.find_by_confirm_token(secrets.confirm_token_hash) is None

    # Confirming consumes the token: it finds nothing any more.
    approved = advance(store, second, confirmed_from(second, t0 + 6, token2))
    assert approved.confirm_token_hash is None
    assert store.find_by_confirm_token(token2) is None
    assert store.find_by_confirm_token(secrets.confirm_token_hash) is None
    assert store.get(flow.device_code_hash) == approved


def test_confirm_token_index_is_cleared_by_cancel(store: Any, t0: float) -> None:
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets))
    flow = advance(store, flow, scanned_from(flow, t0 + 1, secrets.confirm_token_hash))
    advance(store, flow, domain.cancel(flow, t0 + 2))
    assert store.find_by_confirm_token(secrets.confirm_token_hash) is None


def test_confirm_token_index_not_moved_by_a_stale_replace(store: Any, t0: float) -> None:
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets))
    winner = advance(store, flow, scanned_from(flow, t0 + 1, secrets.confirm_token_hash))
    loser_token = codes.hash_secret(codes.new_token())
    assert store.replace(flow, scanned_from(flow, t0 + 1, loser_token)) is False
    assert store.find_by_confirm_token(loser_token) is None
    assert store.find_by_confirm_token(secrets.confirm_token_hash) == winner


def test_confirm_tokens_of_two_flows_do_not_mix(store: Any, t0: float) -> None:
    a, b = Secrets(), Secrets()
    fa = put(store, make_flow(t0, a))
    fb = put(store, make_flow(t0, b))
    fa = advance(store, fa, scanned_from(fa, t0 + 1, a.confirm_token_hash))
    fb = advance(store, fb, scanned_from(fb, t0 + 1, b.confirm_token_hash))
    assert store.find_by_confirm_token(a.confirm_token_hash) == fa
    assert store.find_by_confirm_token(b.confirm_token_hash) == fb


# --- poll: one outcome at a time, always equal to domain.flow.poll ---------------------------
def test_poll_unknown(store: Any, t0: float) -> None:
    result = store.poll(
        codes.hash_secret("no-such-code"),
        t0,
        client_id=CLIENT_ID,
        client_secret_hash="",
        lease=LEASE,
    )
    assert result == PollResult(PollOutcome.UNKNOWN, None)


# Every stage a refused caller may meet: (state, tokens_issued).
STAGES = [
    pytest.param(FlowState.PENDING, False, id="pending"),
    pytest.param(FlowState.APPROVED, False, id="approved"),
    pytest.param(FlowState.DENIED, False, id="denied"),
    pytest.param(FlowState.REDEEMED, False, id="redeemed"),
    pytest.param(FlowState.REDEEMED, True, id="issued"),
]


@pytest.mark.parametrize(("state", "tokens_issued"), STAGES)
def test_poll_from_another_client_changes_nothing(
    store: Any, t0: float, state: FlowState, tokens_issued: bool
) -> None:
    flow = stored_in(store, t0, state, tokens_issued=tokens_issued)
    result = poll_like_domain(
        store, flow.device_code_hash, t0 + 4, **poll_args(flow, client_id="other")
    )
    assert result.outcome is PollOutcome.WRONG_CLIENT
    assert store.get(flow.device_code_hash) == flow


@pytest.mark.parametrize("given", ["", codes.hash_secret("wrong-secret")])
@pytest.mark.parametrize(("state", "tokens_issued"), STAGES)
def test_poll_with_a_bad_secret_changes_nothing(
    store: Any, t0: float, state: FlowState, tokens_issued: bool, given: str
) -> None:
    flow = stored_in(
        store, t0, state, tokens_issued=tokens_issued, client_secret_hash=CLIENT_SECRET_HASH
    )
    args = poll_args(flow, client_secret_hash=given)
    result = poll_like_domain(store, flow.device_code_hash, t0 + 4, **args)
    assert result.outcome is PollOutcome.BAD_SECRET
    assert store.get(flow.device_code_hash) == flow


def test_public_flow_refuses_a_presented_secret(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.PENDING)
    assert flow.client_secret_hash == ""
    args = poll_args(flow, client_secret_hash=CLIENT_SECRET_HASH)
    result = poll_like_domain(store, flow.device_code_hash, t0 + 4, **args)
    assert result.outcome is PollOutcome.BAD_SECRET


@pytest.mark.parametrize("secret_hash", ["", CLIENT_SECRET_HASH])
@pytest.mark.parametrize("state", [FlowState.PENDING, FlowState.SCANNED])
def test_first_poll_is_pending_and_stores_last_poll_at(
    store: Any, t0: float, state: FlowState, secret_hash: str
) -> None:
    flow = stored_in(store, t0, state, client_secret_hash=secret_hash)
    result = poll_like_domain(store, flow.device_code_hash, t0 + 1.5, **poll_args(flow))
    assert result.outcome is PollOutcome.PENDING
    stored = store.get(flow.device_code_hash)
    assert stored.last_poll_at == t0 + 1.5
    assert stored.interval == INTERVAL
    assert stored.state is state


def test_poll_faster_than_the_interval_slows_down_and_persists_it(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.PENDING)
    h, args = flow.device_code_hash, poll_args(flow)
    assert poll_like_domain(store, h, t0 + 10, **args).outcome is PollOutcome.PENDING

    result = poll_like_domain(store, h, t0 + 10 + INTERVAL - 1, **args)
    assert result.outcome is PollOutcome.SLOW_DOWN
    stored = store.get(h)
    assert stored.interval == INTERVAL + domain.SLOW_DOWN_STEP
    assert stored.last_poll_at == t0 + 10  # from the last accepted poll, not the rejected one


def test_after_slow_down_the_next_poll_waits_the_new_interval(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.SCANNED)
    h, args = flow.device_code_hash, poll_args(flow)
    accepted = t0 + 10
    assert poll_like_domain(store, h, accepted, **args).outcome is PollOutcome.PENDING
    assert poll_like_domain(store, h, accepted + 1, **args).outcome is PollOutcome.SLOW_DOWN

    # The old interval (5 s) has passed since the last accepted poll; the new one (10 s) not.
    result = poll_like_domain(store, h, accepted + INTERVAL + 1, **args)
    assert result.outcome is PollOutcome.SLOW_DOWN
    assert store.get(h).interval == INTERVAL + 2 * domain.SLOW_DOWN_STEP

    later = accepted + INTERVAL + 2 * domain.SLOW_DOWN_STEP
    assert poll_like_domain(store, h, later, **args).outcome is PollOutcome.PENDING
    stored = store.get(h)
    assert stored.last_poll_at == later
    assert stored.interval == INTERVAL + 2 * domain.SLOW_DOWN_STEP


def test_poll_denied(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.DENIED)
    result = poll_like_domain(store, flow.device_code_hash, t0 + 4, **poll_args(flow))
    assert result.outcome is PollOutcome.DENIED


@pytest.mark.parametrize(
    "state", [FlowState.PENDING, FlowState.SCANNED, FlowState.APPROVED, FlowState.DENIED]
)
def test_poll_expired(store: Any, t0: float, state: FlowState) -> None:
    flow = stored_in(store, t0, state)
    result = poll_like_domain(store, flow.device_code_hash, t0 + LIFETIME, **poll_args(flow))
    assert result.outcome is PollOutcome.EXPIRED
    assert store.get(flow.device_code_hash) == flow


def test_expiry_wins_over_slow_down(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.PENDING)
    h, args = flow.device_code_hash, poll_args(flow)
    poll_like_domain(store, h, t0 + LIFETIME - 1, **args)
    result = poll_like_domain(store, h, t0 + LIFETIME, **args)
    assert result.outcome is PollOutcome.EXPIRED
    assert store.get(h).interval == INTERVAL


def test_approved_poll_claims_with_a_lease_and_persists_it(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.APPROVED)
    result = poll_like_domain(store, flow.device_code_hash, t0 + 4, **poll_args(flow))
    assert result.outcome is PollOutcome.REDEEM
    stored = store.get(flow.device_code_hash)
    assert stored == result.flow  # the caller gets the claimed flow: its version is the claim
    assert stored.state is FlowState.REDEEMED
    assert stored.lease_until == t0 + 4 + LEASE
    assert stored.version == flow.version + 1
    assert stored.issued is False and stored.family_id is None


def test_poll_while_a_claim_is_live_changes_nothing(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.REDEEMED)
    assert flow.lease_until is not None
    result = poll_like_domain(
        store, flow.device_code_hash, flow.lease_until - 0.01, **poll_args(flow)
    )
    assert result == PollResult(PollOutcome.CLAIMED, None)
    assert store.get(flow.device_code_hash) == flow


def test_a_lapsed_claim_is_claimed_again(store: Any, t0: float) -> None:
    """A store write the caller gave up on, or a redeemer that died: its lease lapses."""
    flow = stored_in(store, t0, FlowState.REDEEMED)
    assert flow.lease_until is not None
    h = flow.device_code_hash
    again = poll_like_domain(store, h, flow.lease_until, **poll_args(flow))
    assert again.outcome is PollOutcome.REDEEM
    assert again.flow.version == flow.version + 1
    # The first claim can settle nothing any more; the second one can.
    assert not settle_like_domain(store, h, flow.version, ClaimSettlement.ISSUED, "fam-a")
    assert settle_like_domain(store, h, again.flow.version, ClaimSettlement.ISSUED, "fam-b")
    assert store.get(h).family_id == "fam-b"


def test_poll_after_the_tokens_are_issued_is_a_replay(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.REDEEMED, tokens_issued=True)
    h = flow.device_code_hash
    result = poll_like_domain(store, h, t0 + 9, **poll_args(flow))
    assert result.outcome is PollOutcome.REPLAY
    assert result.flow == flow
    assert result.flow.family_id == "fam-first"  # the family to revoke is the redeemer's
    assert store.get(h) == flow
    # Replays keep being reported, even long after the flow's expiry.
    later = poll_like_domain(store, h, t0 + LIFETIME + 60, **poll_args(flow))
    assert later.outcome is PollOutcome.REPLAY


def test_a_pending_poll_returns_no_flow(store: Any, t0: float) -> None:
    """The hot path answers one word: the store sends back nothing it does not need."""
    flow = stored_in(store, t0, FlowState.PENDING)
    assert store.poll(flow.device_code_hash, t0 + 1, **poll_args(flow)) == PollResult(
        PollOutcome.PENDING, None
    )
    assert store.poll(flow.device_code_hash, t0 + 1.5, **poll_args(flow)) == PollResult(
        PollOutcome.SLOW_DOWN, None
    )


def test_a_poll_sequence_matches_the_domain_step_by_step(store: Any, t0: float) -> None:
    """Drive polls and transitions through the store and a pure reference side by side."""
    secrets = Secrets()
    ref = put(store, make_flow(t0, secrets, client_secret_hash=CLIENT_SECRET_HASH))
    h = ref.device_code_hash
    good = poll_args(ref)
    steps: list[tuple[float, dict[str, Any]]] = [
        (t0 + 0.5, good),  # first poll: pending
        (t0 + 1.0, good),  # slow_down 5 -> 10
        (t0 + 1.0, poll_args(ref, client_id="evil")),  # wrong client: nothing changes
        (t0 + 1.2, poll_args(ref, client_secret_hash="")),  # bad secret: nothing changes
        (t0 + 9.0, good),  # slow_down 10 -> 15
        (t0 + 15.5, good),  # accepted
        (t0 + 31.0, good),  # scanned in between: pending
        (t0 + 32.0, good),  # slow_down 15 -> 20
        (t0 + 60.0, good),  # approved in between: claimed with a lease
        (t0 + 60.1, good),  # the claim is live: wait
        (t0 + 60.0 + LEASE, good),  # it lapsed: claimed again
        (t0 + 71.0, good),  # issued in between: replay
    ]
    seen: list[PollOutcome] = []
    for i, (now, args) in enumerate(steps):
        if i == 6:  # the phone scans
            ref = advance(store, ref, scanned_from(ref, now - 1, secrets.confirm_token_hash))
        if i == 8:  # and confirms
            ref = advance(store, ref, confirmed_from(ref, now - 1, secrets.confirm_token_hash))
        if i == 11:  # the second claim's tokens are committed
            assert store.settle_claim(h, ref.version, ClaimSettlement.ISSUED, "fam-win")
            finished = domain.settle_claim(ref, ref.version, ClaimSettlement.ISSUED, "fam-win")
            assert finished is not None
            ref = finished
            assert store.get(h) == ref
        decision = domain.poll(ref, now, **args)
        result = store.poll(h, now, **args)
        assert result == decision.result(ref), f"step {i}"
        ref = decision.flow or ref
        assert store.get(h) == ref, f"step {i}"
        seen.append(result.outcome)
    # The script really did exercise every outcome a known flow can give before expiry.
    assert set(seen) >= {
        PollOutcome.PENDING,
        PollOutcome.SLOW_DOWN,
        PollOutcome.WRONG_CLIENT,
        PollOutcome.BAD_SECRET,
        PollOutcome.REDEEM,
        PollOutcome.CLAIMED,
        PollOutcome.REPLAY,
    }


# --- settle_claim ---------------------------------------------------------------------------
def settle_like_domain(
    store: Any, device_code_hash: str, claim: int, settlement: ClaimSettlement, family_id: str = ""
) -> bool:
    """settle_claim on the store; what is stored after must be what the domain decides."""
    before = store.get(device_code_hash)
    expected = before and domain.settle_claim(before, claim, settlement, family_id)
    settled = store.settle_claim(device_code_hash, claim, settlement, family_id)
    assert settled is (expected is not None and expected is not False)
    assert store.get(device_code_hash) == (expected or before)
    return bool(settled)


def test_issued_marks_the_tokens_committed(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.REDEEMED)
    h = flow.device_code_hash
    assert settle_like_domain(store, h, flow.version, ClaimSettlement.ISSUED, "fam-first")
    done = store.get(h)
    assert done.issued is True and done.state is FlowState.REDEEMED
    assert done.family_id == "fam-first" and done.lease_until is None


@pytest.mark.parametrize(
    ("settlement", "state"),
    [
        (ClaimSettlement.GIVEN_BACK, FlowState.APPROVED),
        (ClaimSettlement.WITHDRAWN, FlowState.DENIED),
        (ClaimSettlement.VOIDED, FlowState.VOIDED),
    ],
)
def test_a_claim_settles_into_its_state(
    store: Any, t0: float, settlement: ClaimSettlement, state: FlowState
) -> None:
    flow = stored_in(store, t0, FlowState.REDEEMED)
    h = flow.device_code_hash
    assert settle_like_domain(store, h, flow.version, settlement)
    stored = store.get(h)
    assert stored.state is state and stored.version == flow.version + 1
    assert stored.lease_until is None


def test_a_given_back_claim_is_claimed_again_by_the_next_poll(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.REDEEMED)
    h = flow.device_code_hash
    assert settle_like_domain(store, h, flow.version, ClaimSettlement.GIVEN_BACK)
    again = poll_like_domain(store, h, t0 + 10, **poll_args(flow))
    assert again.outcome is PollOutcome.REDEEM


@pytest.mark.parametrize("settlement", list(ClaimSettlement))
def test_only_the_holding_claim_settles_and_only_once(
    store: Any, t0: float, settlement: ClaimSettlement
) -> None:
    flow = stored_in(store, t0, FlowState.REDEEMED)
    h = flow.device_code_hash
    assert not settle_like_domain(store, h, flow.version - 1, settlement, "fam-x")
    assert not settle_like_domain(store, h, flow.version + 1, settlement, "fam-x")
    assert settle_like_domain(store, h, flow.version, ClaimSettlement.ISSUED, "fam-first")
    assert not settle_like_domain(store, h, flow.version, settlement, "fam-x")


@pytest.mark.parametrize("state", [FlowState.PENDING, FlowState.APPROVED, FlowState.DENIED])
@pytest.mark.parametrize("settlement", list(ClaimSettlement))
def test_an_unclaimed_flow_cannot_be_settled(
    store: Any, t0: float, state: FlowState, settlement: ClaimSettlement
) -> None:
    flow = stored_in(store, t0, state)
    assert not settle_like_domain(store, flow.device_code_hash, flow.version, settlement)


def test_settling_an_unknown_flow_is_harmless(store: Any) -> None:
    unknown = codes.hash_secret("no-such-code")
    for settlement in ClaimSettlement:
        assert store.settle_claim(unknown, 2, settlement) is False
    assert store.get(unknown) is None


# --- wait_for_change ------------------------------------------------------------------------
def later_in_thread(delay: float, action: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_for_change_wakes_when_another_thread_replaces(store: Any, t0: float) -> None:
    secrets = Secrets()
    flow = put(store, make_flow(t0, secrets))
    new = scanned_from(flow, t0 + 1, secrets.confirm_token_hash)
    writer = later_in_thread(0.1, lambda: store.replace(flow, new))

    started = time.monotonic()
    got = store.wait_for_change(flow.device_code_hash, flow.version, 5.0)
    elapsed = time.monotonic() - started
    writer.join(5)

    assert got == new
    assert elapsed < 2.5, f"took {elapsed:.2f}s to notice a change"


def test_wait_for_change_returns_at_once_if_already_changed(store: Any, t0: float) -> None:
    flow = put(store, make_flow(t0))
    new = advance(store, flow, domain.cancel(flow, t0 + 1))
    started = time.monotonic()
    got = store.wait_for_change(flow.device_code_hash, flow.version, 5.0)
    assert time.monotonic() - started < 1.0
    assert got == new


def test_wait_for_change_times_out_with_the_current_flow(store: Any, t0: float) -> None:
    flow = put(store, make_flow(t0))
    started = time.monotonic()
    got = store.wait_for_change(flow.device_code_hash, flow.version, 0.3)
    elapsed = time.monotonic() - started
    assert got == flow
    assert 0.25 <= elapsed < 2.0, f"returned after {elapsed:.2f}s for a 0.3s timeout"


def test_wait_for_change_is_not_woken_by_a_pending_poll(store: Any, t0: float) -> None:
    # A poll does not change the version, so the status channel keeps waiting.
    flow = put(store, make_flow(t0))
    poller = later_in_thread(
        0.1, lambda: store.poll(flow.device_code_hash, t0 + 1, **poll_args(flow))
    )
    started = time.monotonic()
    got = store.wait_for_change(flow.device_code_hash, flow.version, 0.6)
    elapsed = time.monotonic() - started
    poller.join(5)
    assert got is not None
    assert got.version == flow.version
    assert elapsed >= 0.5, f"woke after {elapsed:.2f}s though the version did not change"


def test_wait_for_change_of_an_unknown_flow(store: Any) -> None:
    started = time.monotonic()
    got = store.wait_for_change(codes.hash_secret("no-such-code"), 1, 0.2)
    assert got is None
    assert time.monotonic() - started < 2.0


# --- concurrency ----------------------------------------------------------------------------
def run_threads(n: int, worker: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            worker(i)
        except BaseException as exc:  # surfaced below; a thread would swallow it
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_concurrent_polls_of_an_approved_flow_redeem_exactly_once(store: Any, t0: float) -> None:
    flow = stored_in(store, t0, FlowState.APPROVED)
    n = 16
    barrier = threading.Barrier(n)
    results: list[PollResult | None] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = store.poll(flow.device_code_hash, t0 + 4, **poll_args(flow))

    run_threads(n, worker)
    outcomes = [r.outcome for r in results if r is not None]
    assert len(outcomes) == n
    # One winner; the rest met its live claim and only wait (no tokens, nothing revoked).
    assert outcomes.count(PollOutcome.REDEEM) == 1
    assert outcomes.count(PollOutcome.CLAIMED) == n - 1
    won = next(r for r in results if r is not None and r.outcome is PollOutcome.REDEEM)
    stored = store.get(flow.device_code_hash)
    assert stored == won.flow and stored.state is FlowState.REDEEMED and not stored.issued
    # Only the winner's claim settles it; any other claim number changes nothing.
    for claim in range(stored.version + 2):
        if claim != stored.version:
            assert store.settle_claim(flow.device_code_hash, claim, ClaimSettlement.VOIDED) is False
    assert store.get(flow.device_code_hash) == stored


def test_concurrent_pending_polls_are_serialised(store: Any, t0: float) -> None:
    # All at the same instant: exactly one is the accepted first poll, the rest slow down.
    flow = stored_in(store, t0, FlowState.PENDING)
    n = 12
    barrier = threading.Barrier(n)
    outcomes: list[PollOutcome | None] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        outcomes[i] = store.poll(flow.device_code_hash, t0 + 4, **poll_args(flow)).outcome

    run_threads(n, worker)
    assert outcomes.count(PollOutcome.PENDING) == 1
    assert outcomes.count(PollOutcome.SLOW_DOWN) == n - 1
    stored = store.get(flow.device_code_hash)
    assert stored.interval == INTERVAL + (n - 1) * domain.SLOW_DOWN_STEP
    assert stored.last_poll_at == t0 + 4


# --- Redis only: what is at rest ------------------------------------------------------------
def redis_dump(client: Any, prefix: str) -> dict[bytes, list[bytes]]:
    """Every key under the prefix with everything stored in it, as bytes."""
    dump: dict[bytes, list[bytes]] = {}
    for key in client.scan_iter(match=prefix + "*"):
        kind = client.type(key).decode()
        values: list[bytes]
        if kind == "string":
            values = [client.get(key)]
        elif kind == "hash":
            values = [part for item in client.hgetall(key).items() for part in item]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "list":
            values = list(client.lrange(key, 0, -1))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [
                part for _, fields in client.xrange(key) for item in fields.items() for part in item
            ]
        else:
            pytest.fail(f"unexpected Redis type {kind} at {key!r}")
        dump[key] = [v for v in values if v is not None]
    return dump


@pytest.fixture
def redis_store(redis_client: Any, redis_prefix: str) -> Any:
    from authserver.storage.redis_store.flows import RedisFlowStore

    return RedisFlowStore(redis_client, prefix=redis_prefix)


def drive_a_whole_flow(store: Any, t0: float, secrets: Secrets) -> None:
    """Create, poll, scan, rescan, confirm, redeem, issue and replay one flow."""
    flow = put(store, make_flow(t0, secrets, client_secret_hash=CLIENT_SECRET_HASH))
    h = flow.device_code_hash
    store.poll(h, t0 + 1, **poll_args(flow))
    flow = store.get(h)
    flow = advance(store, flow, scanned_from(flow, t0 + 2, codes.hash_secret("first-confirm")))
    flow = advance(store, flow, scanned_from(flow, t0 + 3, secrets.confirm_token_hash))
    flow = advance(store, flow, confirmed_from(flow, t0 + 4, secrets.confirm_token_hash))
    claimed = store.poll(h, t0 + 5, **poll_args(flow))
    assert claimed.outcome is PollOutcome.REDEEM
    assert store.poll(h, t0 + 6, **poll_args(flow)).outcome is PollOutcome.CLAIMED
    assert store.settle_claim(h, claimed.flow.version, ClaimSettlement.ISSUED, "fam-1")
    assert store.poll(h, t0 + 7, **poll_args(flow)).outcome is PollOutcome.REPLAY


@pytest.mark.redis
def test_redis_stores_no_raw_secret(
    redis_store: Any, redis_client: Any, redis_prefix: str, t0: float
) -> None:
    secrets = Secrets()
    flow = put(redis_store, make_flow(t0, secrets))
    flow = advance(redis_store, flow, scanned_from(flow, t0 + 1, secrets.confirm_token_hash))
    normalized = codes.normalize_user_code(secrets.user_code)
    assert normalized is not None
    raw = [secrets.device_code, secrets.user_code, normalized, secrets.confirm_token]

    dump = redis_dump(redis_client, redis_prefix)
    assert dump, "the store wrote nothing under its prefix"
    everything = b"\n".join([*dump, *(v for values in dump.values() for v in values)])
    for secret in raw:
        assert secret.encode() not in everything, f"raw secret {secret!r} found in Redis"
    # What it does keep is the hash (sanity check that the dump saw the flow at all).
    assert secrets.device_code_hash.encode() in everything


@pytest.mark.redis
def test_redis_keys_all_have_a_ttl_through_a_whole_flow(
    redis_store: Any, redis_client: Any, redis_prefix: str, t0: float
) -> None:
    drive_a_whole_flow(redis_store, t0, Secrets())
    flow = stored_in(redis_store, t0, FlowState.REDEEMED)
    redis_store.settle_claim(flow.device_code_hash, flow.version, ClaimSettlement.GIVEN_BACK)
    assert redis_store.get(flow.device_code_hash).state is FlowState.APPROVED
    voided = stored_in(redis_store, t0, FlowState.REDEEMED)
    redis_store.settle_claim(voided.device_code_hash, voided.version, ClaimSettlement.VOIDED)
    assert redis_store.get(voided.device_code_hash).state is FlowState.VOIDED

    keys = list(redis_client.scan_iter(match=redis_prefix + "*"))
    assert keys
    for key in keys:
        ttl = redis_client.ttl(key)
        assert ttl > 0, f"{key!r} has no TTL ({ttl})"


@pytest.mark.redis
def test_redis_ttl_does_not_cut_a_live_flow_short(
    redis_store: Any, redis_client: Any, redis_prefix: str, t0: float
) -> None:
    # The TTL only cleans up: the domain decides expiry, so the key outlives expires_at.
    secrets = Secrets()
    flow = put(redis_store, make_flow(t0, secrets))
    flow = advance(redis_store, flow, scanned_from(flow, t0 + 1, secrets.confirm_token_hash))
    redis_store.poll(flow.device_code_hash, t0 + 2, **poll_args(flow))
    for key in redis_client.scan_iter(match=redis_prefix + "*"):
        ttl = redis_client.ttl(key)
        assert ttl >= LIFETIME - 30, f"{key!r} expires in {ttl}s, before the flow does"
