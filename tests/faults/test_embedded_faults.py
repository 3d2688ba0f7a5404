"""Issue 8 on the embedded default (`authserver demo`: SQLite file, in-process flow store).

There is no Redis or PostgreSQL to hang, but the database can be held by another writer
(another process's transaction on the SQLite file), and the one worker can die:
- while a writer holds the database, the pending poll and the status channel answer fast
  (no SQL), a device authorization answers 503 within about one lock timeout, and the login
  goes on once the writer lets go;
- a worker killed mid-redemption takes its in-memory flows with it: the PC's next polls end
  in a clear terminal error (never tokens twice, never a hang), and a new login works.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from tests.faults.actors import (
    FAST_BOUND,
    PC,
    TERMINAL_ERRORS,
    Phone,
    Stage,
    concurrently,
    poll_in_flight,
    sign_in_and_login,
    slower_than,
    status_agrees,
    unavailable_in_time,
)
from tests.faults.conftest import Embedded

pytestmark = pytest.mark.faults

SETTLE = 8.0


@contextmanager
def database_held(path: Path) -> Iterator[None]:
    """Another process's write transaction on the SQLite file (WAL: readers go on, writers
    wait for the lock)."""
    conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_embedded_database_held_by_a_writer_sql_free_paths_fast_writes_503(
    embedded: Embedded,
) -> None:
    server = embedded.server
    pc = PC(server)
    login = pc.start()
    with database_held(embedded.database):
        fast = concurrently(partial(pc.poll, login), partial(pc.status, login))
        refused = concurrently(pc.authorize)
    assert not slower_than(fast, FAST_BOUND), slower_than(fast, FAST_BOUND)
    assert fast[0].error == "authorization_pending", fast[0]
    assert fast[1].json().get("status") == "pending", fast[1]
    assert not unavailable_in_time(refused), unavailable_in_time(refused)

    Phone.sign_in(server).bring_to(login, Stage.APPROVED)
    assert pc.poll_until_settled(login, within=SETTLE) == "tokens", login.history()


def test_embedded_worker_killed_mid_redemption_ends_the_login_cleanly(
    embedded: Embedded,
) -> None:
    server = embedded.server
    server.space_kills()
    pc, login = sign_in_and_login(server)
    with database_held(embedded.database):
        poll = poll_in_flight(pc, login)
        time.sleep(0.3)  # the redemption now waits for the database
        worker = server.worker_serving(poll.local_port)
        assert worker is not None, "no process holds the poll's connection"
        server.kill(worker)
    login.polls.append(poll.answer())
    server.wait_answering()

    outcome = pc.poll_until_settled(login, within=SETTLE)
    assert outcome in TERMINAL_ERRORS, login.history()  # its flow died with the worker
    assert not login.token_responses
    assert all(revoked_at for _, revoked_at in embedded.families(login.device_code))
    assert (disagreement := status_agrees(pc, login)) is None, disagreement
    fresh_pc, fresh = sign_in_and_login(server)
    assert fresh_pc.poll_until_settled(fresh, within=SETTLE) == "tokens", fresh.history()
