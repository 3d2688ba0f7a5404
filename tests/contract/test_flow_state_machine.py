"""The flow stores and the pure domain agree on every random sequence of steps (issue 9).

A Hypothesis state machine keeps a model, a dict of Flow values changed only by the pure
functions of authserver/domain/flow.py, and a real FlowStore (the embedded one, and Redis with
its Lua scripts). Every rule applies one step to both, the way the services do: the phone's
scan / confirm / deny and the operator's cancel go through replace() (compare-and-set, also
from a stale read), the PC's token poll and the settling of its claim are the store's own
atomic calls. After every step the store's answer must equal the model's, and every flow the
store holds (read by device code, by user code and by each confirm token ever issued) must
equal the model's flow field for field.

Time is a float `now` that rules advance, by small steps and straight to the boundaries the
domain compares against (the next poll, a lease's end, a confirm token's end, expiry); nothing
sleeps. The flows are dated at the real clock so the stores' clean-up TTLs never remove a key
mid-run (see test_flow_store.py).

Bounds: per backend, 100 runs (MAX_EXAMPLES) of at most 50 steps (STEPS), with at most 3 flows
still going at once: about 2 s on the embedded store and 4-7 s on a local Redis. To keep Redis
runs short a step checks only the flows it touched, and teardown checks them all. Each run
starts with one pending flow and one approved one, so claims are a step away; counted once, a
run of each backend makes dozens of claims, replays, slow_downs and settlements of every kind,
taken and refused. A failure prints the shortest sequence of steps Hypothesis found (shrinking
a Redis failure takes a minute or two); .hypothesis/ keeps it, so the next run tries it first.

It fails when it should: broken on purpose, it caught poll.lua's slow_down check with <= for <
(3 steps), poll.lua no longer raising the interval, settle.lua and the embedded store settling
a stale claim (a few steps each).
"""

from __future__ import annotations

import dataclasses
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from authserver.domain import codes, errors
from authserver.domain import flow as domain
from authserver.domain.flow import ClaimSettlement, Flow, FlowState, PollResult
from authserver.domain.ports import FlowStore

MAX_EXAMPLES = 100
STEPS = 50
MAX_LIVE_FLOWS = 3  # a new flow may start when fewer are still going (most runs end in a few)
LEASE = 10.0
CONFIRM_TTL = 30
PUBLIC_CLIENT = "pc-app"
CONFIDENTIAL_CLIENT = "pc-confidential"
CLIENT_SECRET_HASH = codes.hash_secret("client-secret")
WRONG_SECRET_HASH = codes.hash_secret("not-the-secret")
# Two signed-in phones of two users: a flow scanned by one is refused to the other.
PHONES = (("user-1", "phone-1"), ("user-2", "phone-2"))

BACKENDS = ["embedded", pytest.param("redis", marks=pytest.mark.redis)]

# Clock steps: whole seconds and fractions, so float arithmetic in Lua and Python is compared.
CLOCK_STEPS = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 4.0, 5.0, 6.0, LEASE, 31.0]), st.floats(0.001, 10.0)
)
# Mostly the right client: a rejected poll changes nothing, so it is the least interesting.
POLLERS = st.sampled_from(["right", "right", "right", "wrong_client", "bad_secret", "unknown_code"])
# When the PC polls: now, or relative to its last poll plus the interval (RFC 8628 §3.5).
POLL_GAPS = st.sampled_from([None, -1.0, 0.0, 0.5])
SETTLEMENTS = st.sampled_from(list(ClaimSettlement))


@pytest.fixture(params=BACKENDS)
def new_store(request: pytest.FixtureRequest) -> Callable[[], FlowStore]:
    """A factory of fresh, empty FlowStores of one kind: one per example of the machine."""
    if request.param == "embedded":
        from authserver.storage.embedded.flows import EmbeddedFlowStore

        return EmbeddedFlowStore
    from authserver.storage.redis_store.flows import RedisFlowStore

    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")  # removes every key under it afterwards
    return lambda: RedisFlowStore(client, prefix=f"{prefix}{uuid.uuid4().hex[:8]}:")


class FlowMachine(RuleBasedStateMachine):
    """Drives a model (domain functions on Flow values) and a real store with the same steps."""

    flows = Bundle("flows")  # device code hashes
    claims = Bundle("claims")  # (device code hash, claim version) from REDEEM polls
    confirm_tokens = Bundle("confirm_tokens")  # (device code hash, confirm token hash)
    snapshots = Bundle("snapshots")  # flows as read earlier: a writer that lost a race

    new_store: Callable[[], FlowStore]

    def __init__(self) -> None:
        super().__init__()
        self.store = self.new_store()
        self.now = time.time()
        self.model: dict[str, Flow] = {}
        self.tokens: dict[str, set[str]] = {}  # every confirm token hash handed out, by flow
        self.touched: set[str] = set()  # flows a step wrote or asked about: checked after it
        self.serial = 0

    # --- helpers ----------------------------------------------------------------------------
    def _fresh(self, what: str) -> str:
        self.serial += 1
        return codes.hash_secret(f"{what}-{self.serial}-{uuid.uuid4().hex}")

    def _write(self, old: Flow, new: Flow) -> None:
        """replace(old, new) on the store and on the model: compare-and-set on the version,
        and the poll-owned fields keep what is stored."""
        current = self.model[old.device_code_hash]
        self.touched.add(old.device_code_hash)
        if new.confirm_token_hash is not None:
            self.tokens[old.device_code_hash].add(new.confirm_token_hash)
        expected = current.version == old.version
        assert self.store.replace(old, new) is expected
        if expected:
            kept = {name: getattr(current, name) for name in domain.POLL_OWNED_FIELDS}
            self.model[old.device_code_hash] = dataclasses.replace(new, **kept)

    def _live_flows(self) -> int:
        """Flows not yet at an end: not expired, denied, voided or issued."""
        ended = (FlowState.DENIED, FlowState.VOIDED)
        return sum(
            1
            for f in self.model.values()
            if not (f.is_expired(self.now) or f.state in ended or f.issued)
        )

    def _scan(self, flow: Flow, phone: int) -> Flow:
        user_id, device_id = PHONES[phone]
        return domain.scan(
            flow,
            self.now,
            user_id=user_id,
            mobile_device_id=device_id,
            scanner_name=f"Name of {user_id}",
            scanner_platform="android",
            confirm_token_hash=self._fresh("confirm"),
            confirm_ttl=CONFIRM_TTL,
        )

    # --- creating flows ---------------------------------------------------------------------
    @initialize(target=flows)
    def first_flow(self) -> str:
        return self._create(confidential=False, lifetime=60, interval=5)

    @initialize(target=flows)
    def approved_flow(self) -> str:
        """A second flow, of a confidential client, starts approved: claims are a step away."""
        key = self._create(confidential=True, lifetime=60, interval=5)
        self.scan_and_confirm(key)
        assert self.model[key].state is FlowState.APPROVED
        return key

    @precondition(lambda self: self._live_flows() < MAX_LIVE_FLOWS)
    @rule(
        target=flows,
        confidential=st.booleans(),
        lifetime=st.sampled_from([20, 60, 600]),
        interval=st.sampled_from([1, 5]),
    )
    def create(self, confidential: bool, lifetime: int, interval: int) -> str:
        return self._create(confidential=confidential, lifetime=lifetime, interval=interval)

    def _create(self, *, confidential: bool, lifetime: int, interval: int) -> str:
        flow = Flow(
            device_code_hash=self._fresh("device"),
            user_code_hash=self._fresh("user-code"),
            client_id=CONFIDENTIAL_CLIENT if confidential else PUBLIC_CLIENT,
            client_secret_hash=CLIENT_SECRET_HASH if confidential else "",
            scope="openid profile",
            requester_ip="192.0.2.10",
            requester_user_agent="Test/1.0",
            created_at=self.now,
            expires_at=self.now + lifetime,
            interval=interval,
        )
        assert self.store.create(flow) is True
        self.model[flow.device_code_hash] = flow
        self.tokens[flow.device_code_hash] = set()
        self.touched.add(flow.device_code_hash)
        return flow.device_code_hash

    # --- phone and operator: domain decides, replace() writes -------------------------------
    @rule(target=confirm_tokens, key=flows, phone=st.integers(0, 1))
    def scan(self, key: str, phone: int) -> Any:
        flow = self.model[key]
        try:
            scanned = self._scan(flow, phone)
        except errors.DomainError:
            return multiple()
        self._write(flow, scanned)
        assert scanned.confirm_token_hash is not None
        return (key, scanned.confirm_token_hash)

    @rule(key=flows)
    def scan_and_confirm(self, key: str) -> None:
        """The usual path in one step, so that random runs reach claims often."""
        token = self.scan(key, 0)
        if isinstance(token, tuple):
            self.decide(token, 0, approve=True)

    @rule(token=confirm_tokens, phone=st.integers(0, 1), approve=st.booleans())
    def decide(self, token: tuple[str, str], phone: int, approve: bool) -> None:
        """The phone confirms or denies with a confirm token (maybe a stale one) it was given."""
        found = self.store.find_by_confirm_token(token[1])
        assert found == self._model_by_confirm(token[1])
        if found is None:
            return
        user_id, device_id = PHONES[phone]
        transition = domain.confirm if approve else domain.deny
        try:
            decided = transition(
                found,
                self.now,
                user_id=user_id,
                mobile_device_id=device_id,
                confirm_token_hash=token[1],
            )
        except errors.DomainError:
            return
        self._write(found, decided)

    @rule(key=flows)
    def cancel(self, key: str) -> None:
        flow = self.model[key]
        try:
            cancelled = domain.cancel(flow, self.now)
        except errors.DomainError:
            return
        self._write(flow, cancelled)

    @rule(target=snapshots, key=flows)
    def read(self, key: str) -> Flow:
        """A writer reads the flow now and writes later, after other steps got in."""
        return self.model[key]

    @rule(
        target=confirm_tokens,
        snapshot=consumes(snapshots),
        action=st.sampled_from(["scan", "cancel"]),
    )
    def stale_write(self, snapshot: Flow, action: str) -> Any:
        try:
            new = self._scan(snapshot, 0) if action == "scan" else domain.cancel(snapshot, self.now)
        except errors.DomainError:
            return multiple()
        self._write(snapshot, new)
        if new.confirm_token_hash is None:
            return multiple()
        return (snapshot.device_code_hash, new.confirm_token_hash)

    # --- PC: the token poll and its claim ---------------------------------------------------
    @rule(target=claims, key=flows, poller=POLLERS, gap=POLL_GAPS)
    def poll(self, key: str, poller: str, gap: float | None = None) -> Any:
        """The PC polls now, or waits until `gap` s after its interval (negative: too early)."""
        flow = self.model[key]
        self.touched.add(key)
        if gap is not None and flow.last_poll_at is not None:
            self.now = max(self.now, flow.last_poll_at + flow.interval + gap)
        client_id = flow.client_id if poller != "wrong_client" else "someone-else"
        secret = flow.client_secret_hash if poller != "bad_secret" else WRONG_SECRET_HASH
        if poller == "unknown_code":
            result = self.store.poll(
                self._fresh("device"),
                self.now,
                client_id=client_id,
                client_secret_hash=secret,
                lease=LEASE,
            )
            assert result == PollResult(domain.PollOutcome.UNKNOWN, None)
            return multiple()
        result = self.store.poll(
            key, self.now, client_id=client_id, client_secret_hash=secret, lease=LEASE
        )
        decision = domain.poll(
            flow, self.now, client_id=client_id, client_secret_hash=secret, lease=LEASE
        )
        assert result == decision.result(flow)
        if decision.flow is not None:
            self.model[key] = decision.flow
        if decision.outcome is domain.PollOutcome.REDEEM:
            assert result.flow is not None
            return (key, result.flow.version)
        return multiple()

    @rule(target=claims, key=flows, settlement=st.none() | SETTLEMENTS)
    def redeem(self, key: str, settlement: ClaimSettlement | None) -> Any:
        """A poll that wins the claim settles it straight away, as the token endpoint does, or
        never (None: its worker died, and the claim stays open until its lease lapses)."""
        claim = self.poll(key, "right")
        if isinstance(claim, tuple) and settlement is not None:
            self._settle(claim[0], claim[1], settlement)
        return claim

    @rule(claim=claims, settlement=SETTLEMENTS)
    def settle(self, claim: tuple[str, int], settlement: ClaimSettlement) -> None:
        """Settle a claim a poll won, maybe long ago: lapsed, taken over or settled already."""
        self._settle(claim[0], claim[1], settlement)

    @rule(key=flows, offset=st.integers(-1, 1), settlement=SETTLEMENTS)
    def settle_any_version(self, key: str, offset: int, settlement: ClaimSettlement) -> None:
        """Settle a claim nobody won: the current version, or its neighbours, in any state."""
        self._settle(key, self.model[key].version + offset, settlement)

    def _settle(self, key: str, claim: int, settlement: ClaimSettlement) -> None:
        family_id = f"fam-{claim}"
        self.touched.add(key)
        settled = domain.settle_claim(self.model[key], claim, settlement, family_id)
        assert self.store.settle_claim(key, claim, settlement, family_id) is (settled is not None)
        if settled is not None:
            self.model[key] = settled

    # --- the clock --------------------------------------------------------------------------
    @rule(seconds=CLOCK_STEPS)
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @rule(
        key=flows,
        which=st.sampled_from(["poll", "lease", "confirm", "expiry"]),
        nudge=st.sampled_from([-0.5, 0.0, 0.5]),
    )
    def jump_to_boundary(self, key: str, which: str, nudge: float) -> None:
        """Move the clock to just before, exactly onto, or just after a boundary of a flow."""
        flow = self.model[key]
        boundary = {
            "poll": None if flow.last_poll_at is None else flow.last_poll_at + flow.interval,
            "lease": flow.lease_until,
            "confirm": flow.confirm_expires_at,
            "expiry": flow.expires_at,
        }[which]
        if boundary is not None:
            self.now = max(self.now, boundary + nudge)

    # --- after every step -------------------------------------------------------------------
    def _model_by_confirm(self, token_hash: str) -> Flow | None:
        found = [f for f in self.model.values() if f.confirm_token_hash == token_hash]
        assert len(found) <= 1
        return found[0] if found else None

    def _check(self, key: str) -> None:
        """The store holds the model's flow, found by device code, user code and confirm token;
        a confirm token the flow no longer holds finds nothing."""
        flow = self.model[key]
        assert self.store.get(key) == flow
        assert self.store.find_by_user_code(flow.user_code_hash) == flow
        for token_hash in self.tokens[key]:
            expected = flow if token_hash == flow.confirm_token_hash else None
            assert self.store.find_by_confirm_token(token_hash) == expected

    @invariant()
    def touched_flows_match_the_model(self) -> None:
        # Only the flows this step touched, to keep Redis runs short; teardown checks them all.
        for key in sorted(self.touched):
            self._check(key)
        self.touched.clear()

    def teardown(self) -> None:
        # Hypothesis calls this from a `finally`: after a failed step, its error is the one to
        # report (and to shrink), not this check's.
        if sys.exc_info()[1] is None:
            for key in sorted(self.model):
                self._check(key)


def test_every_store_agrees_with_the_domain(new_store: Callable[[], FlowStore]) -> None:
    machine = type("Machine", (FlowMachine,), {"new_store": staticmethod(new_store)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
