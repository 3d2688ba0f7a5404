"""Issue 8, issued tokens under faults: revocations that hold, refreshes that survive.

- A token revoked while Redis hangs or is down, or when Redis hangs between the revocation's
  commit and its deny-list write: the revoke call answers 200 (SQL is the record), the token
  is never accepted again, before or after Redis returns, on either worker; introspection
  answers from SQL meanwhile.
- A refresh during a PostgreSQL hang is a 503 and the token still works after; a refresh whose
  answer is lost on the network can be retried once with the same token (the grace period).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Literal

import pytest

from tests.faults.actors import (
    FAULT_ANSWER_BOUND,
    call,
    concurrently,
    introspect,
    me,
    signed_in_session,
    unavailable_in_time,
)
from tests.faults.conftest import Stack
from tests.faults.proxy import DOWN, UP, FaultProxy

pytestmark = pytest.mark.faults

# Resource checks per sample: fresh connections, so both workers answer some.
CHECKS = 8


def resource_statuses(stack: Stack, access_token: str, samples: int = 3) -> list[int | None]:
    """Statuses of /api/v1/me over ~1 s after a fault, on fresh connections."""
    seen: list[int | None] = []
    for sample in range(samples):
        if sample:
            time.sleep(0.5)
        seen += [
            a.status for a in concurrently(*[partial(me, stack.server, access_token)] * CHECKS)
        ]
    return seen


def test_a_token_revoked_while_redis_hangs_stays_revoked(healthy_stack: Stack) -> None:
    server = healthy_stack.server
    pc, revoked = signed_in_session(server)
    _, kept = signed_in_session(server)
    assert me(server, revoked["access_token"]).status == 200

    healthy_stack.redis.pause()
    try:
        answer = pc.revoke(revoked["refresh_token"])
        during = concurrently(
            *[partial(me, server, revoked["access_token"])] * 4,
            partial(introspect, server, revoked["access_token"]),
            partial(introspect, server, kept["access_token"]),
        )
        assert healthy_stack.redis.paused
    finally:
        healthy_stack.redis.resume()

    assert answer.status == 200 and answer.seconds < FAULT_ANSWER_BOUND, answer
    checks, introspected = during[:4], during[4:]
    assert all(a.status != 200 for a in checks), [str(a) for a in checks]  # fail closed
    assert not unavailable_in_time(checks), unavailable_in_time(checks)
    # RFC 7662 from SQL: the revoked token is inactive, the other one active.
    assert [a.status for a in introspected] == [200, 200], [str(a) for a in introspected]
    assert [a.json().get("active") for a in introspected] == [False, True]
    assert max(a.seconds for a in introspected) < FAULT_ANSWER_BOUND

    after = resource_statuses(healthy_stack, revoked["access_token"])
    assert 200 not in after, f"a revoked token was accepted after Redis returned: {after}"
    healthy_stack.wait_serving()
    assert me(server, kept["access_token"]).status == 200


def test_a_token_revoked_while_redis_is_down_stays_revoked_after_its_restart(
    healthy_stack: Stack,
) -> None:
    server = healthy_stack.server
    pc, revoked = signed_in_session(server)
    _, kept = signed_in_session(server)
    with healthy_stack.outage("redis", "kill"):
        answer = pc.revoke(revoked["refresh_token"])
        check = me(server, revoked["access_token"])

    assert answer.status == 200 and answer.seconds < FAULT_ANSWER_BOUND, answer
    assert check.status != 200 and check.unavailable, check
    after = resource_statuses(healthy_stack, revoked["access_token"])
    assert 200 not in after, f"a revoked token was accepted after Redis restarted: {after}"
    healthy_stack.wait_serving()
    assert me(server, kept["access_token"]).status == 200


def test_redis_hanging_between_the_revocations_commit_and_its_deny_list_write(
    healthy_stack: Stack,
) -> None:
    """The revocation committed in SQL, then Redis hangs before the jti reaches the deny-list:
    the call still answers 200, and the token is refused during the hang and after it."""
    server = healthy_stack.server
    pc, revoked = signed_in_session(server)
    proxy = healthy_stack.postgres_proxy
    proxy.hold_after(b"UPDATE token_families", b"COMMIT")
    with ThreadPoolExecutor(1) as pool:
        revoking = pool.submit(pc.revoke, revoked["refresh_token"])
        try:
            # The COMMIT reached PostgreSQL and its answer is held: hang Redis, then let the
            # answer through. The next thing the server does is the deny-list write.
            committed = proxy.wait_held(timeout=3, direction=DOWN)
            healthy_stack.redis.pause()
            proxy.restore()
            answer = revoking.result()
            during = me(server, revoked["access_token"])
            assert healthy_stack.redis.paused
        finally:
            proxy.restore()
            healthy_stack.redis.resume()
    assert committed, "the revocation never committed"
    assert answer.status == 200 and answer.seconds < FAULT_ANSWER_BOUND + 0.5, answer
    assert during.status != 200, f"a revoked token was accepted while Redis hung: {during}"
    after = resource_statuses(healthy_stack, revoked["access_token"])
    assert 200 not in after, f"a revoked token was accepted after Redis returned: {after}"


@pytest.mark.parametrize("fault", ["pause", "kill"])
def test_refresh_and_revocation_during_a_postgres_outage_are_503_and_work_after(
    healthy_stack: Stack, fault: Literal["pause", "kill"]
) -> None:
    """SQL is the record: without it nothing rotates and nothing is revoked, and the caller
    is told to retry (never a 200 for a revocation that did not happen). Afterwards the same
    refresh token still works, and the retried revocation holds."""
    server = healthy_stack.server
    pc, refreshing = signed_in_session(server)
    _, revoking = signed_in_session(server)
    with healthy_stack.outage("postgres", fault):
        during = concurrently(
            partial(pc.refresh, refreshing["refresh_token"]),
            partial(pc.revoke, revoking["refresh_token"]),
        )
    assert not unavailable_in_time(during), unavailable_in_time(during)
    healthy_stack.wait_serving()

    again = pc.refresh(refreshing["refresh_token"])  # nothing rotated: the token still stands
    assert again.status == 200, again
    assert me(server, again.json()["access_token"]).status == 200
    assert pc.revoke(revoking["refresh_token"]).status == 200
    after = resource_statuses(healthy_stack, revoking["access_token"], samples=1)
    assert 200 not in after, after


def test_a_refresh_whose_answer_was_lost_can_be_retried_with_the_same_token(
    healthy_stack: Stack,
) -> None:
    """The rotation committed, the answer never reached the PC: within
    AUTHSERVER_REFRESH_GRACE the previous refresh token works once more (core-design.md),
    instead of counting as a replay that revokes the session."""
    server = healthy_stack.server
    pc, session = signed_in_session(server)
    with FaultProxy(server.port) as network, ThreadPoolExecutor(1) as pool:
        # The network between the PC and the server lets the request through and loses
        # whatever comes back.
        network.hold_after(b"grant_type=refresh_token", direction=UP)
        lost = pool.submit(
            call,
            "POST",
            f"http://127.0.0.1:{network.port}/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": session["refresh_token"],
                "client_id": server.client_id,
            },
            headers={"Host": f"127.0.0.1:{server.port}"},
            what="refresh, answer lost",
        )
        answered = network.wait_held(timeout=FAULT_ANSWER_BOUND, direction=DOWN)
        network.drop()
        assert lost.result().status is None, lost.result()
    assert answered, "the server never answered the first refresh"

    retried = pc.refresh(session["refresh_token"])
    assert retried.status == 200, retried
    assert me(server, retried.json()["access_token"]).status == 200
    assert pc.refresh(retried.json()["refresh_token"]).status == 200  # the session lives on
