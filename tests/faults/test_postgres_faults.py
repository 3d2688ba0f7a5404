"""Issue 8, PostgreSQL: paused (hung), killed mid-redemption, and a commit whose answer is lost.

While PostgreSQL hangs, what needs no SQL (the pending poll, the status channel, the resource
check) keeps answering fast even when a flood of SQL requests arrives first; what needs SQL
answers 503 within about one timeout. Afterwards every login completes without a restart.
"""

from __future__ import annotations

import time
from functools import partial

import pytest

from tests.faults.actors import (
    FAST_BOUND,
    FAULT_ANSWER_BOUND,
    PC,
    Answer,
    Flood,
    Login,
    Phone,
    Stage,
    concurrently,
    device_page_sign_in,
    me,
    poll_in_flight,
    replay_is_refused,
    resource_checks_on_every_worker,
    sign_in_and_login,
    signed_in_session,
    slower_than,
    status_agrees,
    unavailable_in_time,
)
from tests.faults.conftest import Stack
from tests.faults.proxy import UP, Fault
from tests.faults.servers import REDEMPTION_LEASE, THREADS

pytestmark = pytest.mark.faults

SETTLE = REDEMPTION_LEASE + 6
# Callers needing SQL, each sending again 0.3 s after its answer: while each answer waits out
# a 1 s timeout they keep more requests open than both workers have threads.
FLOOD = 3 * THREADS


def sql_free_checks(pc: PC, logins: dict[Stage, Login], access_token: str) -> list[Answer]:
    """What needs no SQL: pending polls, the status channel, the resource check."""
    return concurrently(
        partial(pc.poll, logins[Stage.PENDING]),
        partial(pc.poll, logins[Stage.SCANNED]),
        *(partial(pc.status, login) for login in logins.values()),
        partial(me, pc.server, access_token),
    )


def test_postgres_paused_sql_free_paths_stay_fast_the_rest_503_then_every_login_completes(
    healthy_stack: Stack,
) -> None:
    """Under steady SQL traffic (more callers than the workers have threads) the SQL-free
    paths answer within one timeout at the outage's onset and fast once it is known; every
    request that needs SQL gets a 503 within one timeout."""
    server = healthy_stack.server
    pc, phone = PC(server), Phone.sign_in(server)
    logins: dict[Stage, Login] = {stage: phone.bring_to(pc.start(), stage) for stage in Stage}
    _, session = signed_in_session(server)
    # A session in use: its resource checks went through on every worker before the hang.
    resource_checks_on_every_worker(server, session["access_token"])

    healthy_stack.postgres.pause()
    try:
        with Flood(pc.authorize, callers=FLOOD, gap=0.3) as flood:
            time.sleep(0.3)
            onset = sql_free_checks(pc, logins, session["access_token"])
            needs_sql = concurrently(
                partial(phone.scan, logins[Stage.PENDING]),
                partial(phone.confirm, logins[Stage.SCANNED]),
                partial(pc.poll, logins[Stage.APPROVED]),
            )
            page = device_page_sign_in(server, logins[Stage.PENDING], address="10.9.0.1")
            time.sleep(max(0.0, 1.8 - (time.monotonic() - flood.started)))
            steady = sql_free_checks(pc, logins, session["access_token"])
        assert healthy_stack.postgres.paused  # every answer came while PostgreSQL hung
    finally:
        healthy_stack.postgres.resume()

    assert not slower_than(onset, FAULT_ANSWER_BOUND), slower_than(onset, FAULT_ANSWER_BOUND)
    assert not slower_than(steady, FAST_BOUND), slower_than(steady, FAST_BOUND)
    for answers in (onset, steady):
        assert [a.error for a in answers[:2]] == ["authorization_pending"] * 2, answers
        statuses = [a.json().get("status") for a in answers[2:5]]
        assert statuses == ["pending", "scanned", "approved"], [str(a) for a in answers]
        assert answers[5].status == 200, answers[5]  # the resource check reads no SQL
    refused = needs_sql + flood.answers
    assert not unavailable_in_time(refused), unavailable_in_time(refused)[:5]
    # The verification page says "try again in a moment": a 503 page, Retry-After, no internals.
    assert page.status == 503 and page.seconds < FAULT_ANSWER_BOUND, page
    assert page.headers.get("Content-Type", "").startswith("text/html"), page.headers
    assert page.headers.get("Retry-After", "").isdigit(), page.headers
    assert "Traceback" not in str(page.body)

    healthy_stack.wait_serving()
    rescanned = phone.scan(logins[Stage.PENDING])
    assert rescanned.status == 200, rescanned
    for login in (logins[Stage.PENDING], logins[Stage.SCANNED]):
        confirmed = phone.confirm(login)
        assert confirmed.status == 200, confirmed
    outcomes = pc.settle_all(list(logins.values()), within=SETTLE)
    assert outcomes == ["tokens"] * len(logins), outcomes
    for login in logins.values():
        assert len(login.token_responses) == 1
        assert (disagreement := status_agrees(pc, login)) is None, disagreement


def test_postgres_killed_at_every_stage_and_mid_redemption_then_every_login_completes(
    healthy_stack: Stack,
) -> None:
    """One redemption has its SQL in flight when PostgreSQL dies; while it is down the SQL-free
    paths answer fast and every step that needs SQL a quick 503; after the restart every PC
    gets its tokens, once, from the same server processes."""
    server = healthy_stack.server
    pc, phone = PC(server), Phone.sign_in(server)
    logins: dict[Stage, Login] = {stage: phone.bring_to(pc.start(), stage) for stage in Stage}
    in_flight = phone.bring_to(pc.start(), Stage.APPROVED)
    _, session = signed_in_session(server)
    resource_checks_on_every_worker(server, session["access_token"])  # in use before
    healthy_stack.postgres_proxy.pause()
    poll = poll_in_flight(pc, in_flight)
    try:
        assert healthy_stack.postgres_proxy.wait_held(timeout=3, direction=UP), "no SQL used"
        healthy_stack.postgres.kill()  # the held statement now meets a dead server
    finally:
        healthy_stack.postgres_proxy.restore()
    try:
        in_flight.polls.append(poll.answer())
        fast = sql_free_checks(pc, logins, session["access_token"])
        needs_sql = concurrently(
            partial(phone.scan, logins[Stage.PENDING]),
            partial(phone.confirm, logins[Stage.SCANNED]),
            partial(pc.poll, logins[Stage.APPROVED]),
        )
    finally:
        healthy_stack.postgres.restart()

    refused = [in_flight.polls[-1], *needs_sql]
    assert not unavailable_in_time(refused), unavailable_in_time(refused)
    assert not slower_than(fast, FAST_BOUND), slower_than(fast, FAST_BOUND)
    assert [a.error for a in fast[:2]] == ["authorization_pending"] * 2, [str(a) for a in fast]
    assert fast[5].status == 200, fast[5]

    healthy_stack.wait_serving()
    assert phone.scan(logins[Stage.PENDING]).status == 200
    for login in (logins[Stage.PENDING], logins[Stage.SCANNED]):
        confirmed = phone.confirm(login)
        assert confirmed.status == 200, confirmed
    every = [*logins.values(), in_flight]
    outcomes = pc.settle_all(every, within=SETTLE)
    assert outcomes == ["tokens"] * len(every), outcomes
    for login in every:
        assert len(login.token_responses) == 1
        assert me(server, login.tokens["access_token"]).status == 200
        assert (disagreement := status_agrees(pc, login)) is None, disagreement
        assert (replayed := replay_is_refused(pc, login)) is None, replayed


def test_postgres_losing_the_answer_to_the_redemptions_commit_voids_the_login(
    healthy_stack: Stack,
) -> None:
    """The commit reaches PostgreSQL, its answer never comes back: the PC never got the
    tokens, so the next claim finds the family in SQL, revokes it and ends the login with
    expired_token (core-design.md), never "approved" with invalid_grant."""
    server = healthy_stack.server
    pc, login = sign_in_and_login(server)
    proxy = healthy_stack.postgres_proxy
    # Table name from authserver/storage/models.py: the family row is the issue.
    proxy.hold_after(b"INSERT INTO token_families", b"COMMIT")
    try:
        first = pc.poll(login)
        triggered = proxy.fault is Fault.PAUSE  # the COMMIT went through, then all was held
        committed = healthy_stack.families(login.device_code)
    finally:
        proxy.restore()
    assert triggered and len(committed) == 1, f"the redemption did not commit: {first}"
    assert first.unavailable and first.seconds < FAULT_ANSWER_BOUND, first

    assert pc.poll_until_settled(login, within=SETTLE) == "expired_token", login.history()
    assert not login.token_responses
    assert all(revoked_at for _, revoked_at in healthy_stack.families(login.device_code))
    assert (disagreement := status_agrees(pc, login)) is None, disagreement
