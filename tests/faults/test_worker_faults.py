"""Issue 8: a server worker killed (SIGKILL) in the middle of a redemption.

The proxies stop the redemption at a chosen step, the worker serving it is found through
/proc (it owns the test's HTTP connection) and killed there:
- before its SQL transaction committed: the claim lapses, the next poll gets the tokens;
- after the commit, before the flow was marked issued: the login is voided (expired_token),
  the family nobody received is revoked, and the status channel says expired.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.actors import (
    me,
    poll_in_flight,
    replay_is_refused,
    sign_in_and_login,
    status_agrees,
)
from tests.faults.conftest import Stack
from tests.faults.proxy import UP
from tests.faults.servers import REDEMPTION_LEASE

pytestmark = pytest.mark.faults

SETTLE = REDEMPTION_LEASE + 8  # the lease, a worker respawning, and RFC 8628 polls


def test_worker_killed_before_the_redemption_committed_tokens_arrive_once_after_the_lease(
    healthy_stack: Stack,
) -> None:
    server = healthy_stack.server
    server.space_kills()
    pc, login = sign_in_and_login(server)
    healthy_stack.postgres_proxy.pause()
    poll = poll_in_flight(pc, login)
    try:
        held = healthy_stack.postgres_proxy.wait_held(timeout=3, direction=UP)
        assert held, "the redemption never reached SQL"
        worker = server.worker_serving(poll.local_port)
        assert worker is not None, "no process holds the poll's connection"
        server.kill(worker)
        killed_at = time.monotonic()
        # What the proxy holds was still on the dead worker's side of the wire: gone with it.
        healthy_stack.postgres_proxy.drop()
    finally:
        healthy_stack.postgres_proxy.restore()
    lost = poll.answer()
    login.polls.append(lost)
    assert lost.status is None, f"the killed worker answered: {lost}"
    server.wait_answering()

    # The PC polls on (RFC 8628 §3.5): pending while the dead worker's claim lasts, then the
    # next claim issues. (Polls racing each other would be a replay, revoking what was issued.)
    assert pc.poll_until_settled(login, within=SETTLE) == "tokens", login.history()
    assert time.monotonic() - killed_at >= REDEMPTION_LEASE - 0.5, "issued inside the lease"
    assert me(server, login.tokens["access_token"]).status == 200
    active = [f for f, revoked_at in healthy_stack.families(login.device_code) if not revoked_at]
    assert len(active) == 1
    assert (disagreement := status_agrees(pc, login)) is None, disagreement
    assert (replayed := replay_is_refused(pc, login)) is None, replayed


def test_worker_killed_after_the_redemption_committed_voids_the_login_and_its_tokens(
    healthy_stack: Stack,
) -> None:
    server, redis_proxy = healthy_stack.server, healthy_stack.redis_proxy
    server.space_kills()
    pc, login = sign_in_and_login(server)
    healthy_stack.postgres_proxy.pause()
    poll = poll_in_flight(pc, login)
    try:
        assert healthy_stack.postgres_proxy.wait_held(timeout=3, direction=UP), "no SQL used"
        worker = server.worker_serving(poll.local_port)
        assert worker is not None, "no process holds the poll's connection"
        redis_proxy.pause()  # the redemption's next Redis call (mark issued) will be held
        healthy_stack.postgres_proxy.restore()  # let the SQL transaction commit
        held = redis_proxy.wait_held(timeout=3, direction=UP)
        holders = {server.worker_behind(redis_proxy.port, link.peer[1]) for link in held}
        assert worker in holders, f"the redemption did not reach Redis again: {holders}"
        committed = healthy_stack.families(login.device_code)
        assert len(committed) == 1, committed  # issued in SQL, the PC has nothing yet
        server.kill(worker)
        redis_proxy.drop()  # its "mark issued" never left the dead worker
    finally:
        healthy_stack.postgres_proxy.restore()
        redis_proxy.restore()
    lost = poll.answer()
    login.polls.append(lost)
    assert lost.status is None, f"the killed worker answered: {lost}"
    server.wait_answering()

    assert pc.poll_until_settled(login, within=SETTLE) == "expired_token", login.history()
    assert not login.token_responses
    assert all(revoked_at for _, revoked_at in healthy_stack.families(login.device_code))
    assert (disagreement := status_agrees(pc, login)) is None, disagreement
