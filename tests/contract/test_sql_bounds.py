"""Every wait on the database is bounded; a hung database holds few threads, briefly.

PostgreSQL is reached through a PausableProxy in front of the shared server: pausing the proxy
makes the database hang as a SIGSTOPped one does (connections open, nothing answers), without
touching the shared server. The limits are short (0.5 s statements) so each hang costs well
under a second; the connect hang costs libpq's minimum connect timeout, 2 s.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
import pytest
import sqlalchemy as sa

from authserver.domain.errors import TemporarilyUnavailable
from authserver.storage.isolation import BreakerState
from authserver.storage.sql.database import Database
from authserver.storage.sql.guard import GuardedQueuePool, SqlGuard, SqlLimits, guard_of
from tests.contract.pausable_proxy import PausableProxy

LIMITS = SqlLimits(
    connect_timeout=1.0,  # libpq makes it 2
    statement_timeout=0.5,
    lock_timeout=0.2,
    pool_timeout=0.3,
    pool_size=2,
    pool_overflow=0,
    max_threads=3,
)
BOUND = LIMITS.round_trip_timeout  # 0.75 s
AT_ONCE = 0.2  # "answered without waiting for the database": far below any bound above
SLACK = 1.0  # a noisy 2-core machine may answer this much later than a bound


def timed(action: Callable[[], object]) -> tuple[float, BaseException | None]:
    """(seconds `action` took, the exception it raised or None)."""
    start = time.monotonic()
    try:
        action()
    except BaseException as exc:
        return time.monotonic() - start, exc
    return time.monotonic() - start, None


def select_one(database: Database) -> None:
    with database.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def guard(database: Database) -> SqlGuard:
    found = guard_of(database.engine)
    assert found is not None
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[PausableProxy]:
    with PausableProxy.in_front_of(postgres_url) as proxy:
        yield proxy


@pytest.fixture
def database(postgres_url: str, proxy: PausableProxy) -> Iterator[Database]:
    """The test schema through the proxy, with the short LIMITS; one connection made."""
    database = Database(proxy.url(postgres_url), LIMITS)
    select_one(database)
    yield database
    proxy.restore()
    database.dispose()


# --- A live server: its own timeouts fire first ---------------------------------------------
def test_connections_carry_the_timeouts_and_keep_the_urls_options(database: Database) -> None:
    with database.engine.connect() as conn:
        shown = {
            name: conn.execute(sa.text(f"SHOW {name}")).scalar_one()
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
        }
        search_path = conn.execute(sa.text("SHOW search_path")).scalar_one()
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, psycopg.Connection)
        params = raw.info.get_parameters()
    assert shown == {
        "statement_timeout": "500ms",
        "lock_timeout": "200ms",
        "idle_in_transaction_session_timeout": "10s",
    }
    assert search_path.startswith("t_")  # the URL's own -csearch_path still applies
    assert params["connect_timeout"] == "2"
    assert params["keepalives"] == "1"
    assert params["tcp_user_timeout"] == "750"


def test_a_slow_statement_is_cancelled_by_the_server_and_the_connection_kept(
    database: Database,
) -> None:
    with database.engine.connect() as conn:
        elapsed, error = timed(lambda: conn.execute(sa.text("SELECT pg_sleep(3)")))
        assert isinstance(error, sa.exc.OperationalError)
        assert isinstance(error.orig, psycopg.errors.QueryCanceled)
        assert not error.connection_invalidated
        assert LIMITS.statement_timeout <= elapsed < BOUND  # the server's timeout, not ours
        conn.rollback()
        assert conn.execute(sa.text("SELECT 2")).scalar_one() == 2
    assert guard(database).breaker.state is BreakerState.CLOSED


def test_a_lock_wait_ends_at_the_lock_timeout(database: Database) -> None:
    with database.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE locked (id int PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO locked VALUES (1)"))
    with database.engine.connect() as holder, database.engine.connect() as waiter:
        holder.execute(sa.text("UPDATE locked SET id = 1"))
        elapsed, error = timed(lambda: waiter.execute(sa.text("UPDATE locked SET id = 1")))
        holder.rollback()
    assert isinstance(error, sa.exc.OperationalError)
    assert isinstance(error.orig, psycopg.errors.LockNotAvailable)
    assert LIMITS.lock_timeout <= elapsed < LIMITS.statement_timeout


# --- A hung server: cut off client-side ------------------------------------------------------
def test_a_statement_to_a_hung_server_fails_within_the_bound(
    database: Database, proxy: PausableProxy
) -> None:
    with database.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        proxy.pause()
        elapsed, error = timed(lambda: conn.execute(sa.text("SELECT 2")))
    assert isinstance(error, sa.exc.OperationalError)
    assert error.connection_invalidated  # closed, never handed out again
    assert "no answer from the database server within 0.75 s" in str(error)
    assert BOUND <= elapsed < BOUND + SLACK
    assert guard(database).breaker.state is BreakerState.OPEN


def test_a_commit_to_a_hung_server_fails_within_the_bound(
    database: Database, proxy: PausableProxy
) -> None:
    def commit_while_hung() -> None:
        with database.session() as session:
            session.execute(sa.text("SELECT 1"))
            proxy.pause()  # the COMMIT that ends the block gets no answer

    elapsed, error = timed(commit_while_hung)
    assert isinstance(error, sa.exc.OperationalError)
    assert BOUND <= elapsed < BOUND + SLACK


def test_a_checkout_from_a_hung_server_fails_within_the_bound(
    database: Database, proxy: PausableProxy
) -> None:
    # The pooled connection is pinged before use: the ping times out, the reconnect that
    # would follow meets the breaker the timeout opened.
    proxy.pause()
    elapsed, error = timed(lambda: select_one(database))
    assert isinstance(error, TemporarilyUnavailable), error
    assert BOUND <= elapsed < BOUND + SLACK


def test_connecting_to_a_hung_server_fails_within_the_connect_timeout(
    postgres_url: str, proxy: PausableProxy
) -> None:
    database = Database(proxy.url(postgres_url), LIMITS)
    proxy.pause()
    try:
        elapsed, error = timed(lambda: select_one(database))
        assert isinstance(error, sa.exc.OperationalError)
        assert isinstance(error.orig, psycopg.errors.ConnectionTimeout)
        assert LIMITS.libpq_connect_timeout <= elapsed < LIMITS.libpq_connect_timeout + SLACK
        assert guard(database).breaker.state is BreakerState.OPEN
    finally:
        proxy.restore()
        database.dispose()


def test_a_refused_connection_fails_at_once_and_leaves_the_breaker_closed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    database = Database(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/test", LIMITS)
    try:
        for _ in range(2):  # nobody waited, so nothing is held against the next caller
            elapsed, error = timed(lambda: select_one(database))
            assert isinstance(error, sa.exc.OperationalError)
            assert elapsed < AT_ONCE
        assert guard(database).breaker.state is BreakerState.CLOSED
    finally:
        database.dispose()


# --- The breaker: at once while open, one probe, recovery without a restart ------------------
def test_the_breaker_answers_at_once_then_recovers_when_the_server_does(
    database: Database, proxy: PausableProxy
) -> None:
    with database.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        proxy.pause()
        _, error = timed(lambda: conn.execute(sa.text("SELECT 2")))
    assert isinstance(error, sa.exc.OperationalError)

    # Open: no thread waits for the database, whatever it does meanwhile.
    for _ in range(3):
        elapsed, error = timed(lambda: select_one(database))
        assert isinstance(error, TemporarilyUnavailable)
        assert error.retry_after == 1  # the rest of the 0.5 s cool-off, rounded up
        assert elapsed < AT_ONCE

    proxy.restore()
    time.sleep(LIMITS.cooloff)
    select_one(database)  # the probe: it reconnects (the timed-out connection was closed)
    assert guard(database).breaker.state is BreakerState.CLOSED

    # No dead connection was left in the pool: both connections work at once.
    with database.engine.connect() as a, database.engine.connect() as b:
        assert a.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert b.execute(sa.text("SELECT 1")).scalar_one() == 1
    assert guard(database).bulkhead.inside == 0


def test_the_breaker_reopens_if_the_probe_fails(database: Database, proxy: PausableProxy) -> None:
    proxy.pause()
    timed(lambda: select_one(database))
    assert guard(database).breaker.state is BreakerState.OPEN
    time.sleep(LIMITS.cooloff)
    assert guard(database).breaker.state is BreakerState.HALF_OPEN

    # The probe: the timed-out connection was closed, so it connects, and that times out.
    elapsed, error = timed(lambda: select_one(database))
    assert isinstance(error, sa.exc.OperationalError)
    assert isinstance(error.orig, psycopg.errors.ConnectionTimeout)
    assert LIMITS.libpq_connect_timeout <= elapsed < LIMITS.libpq_connect_timeout + SLACK
    assert guard(database).breaker.state is BreakerState.OPEN
    _, error = timed(lambda: select_one(database))
    assert isinstance(error, TemporarilyUnavailable)


# --- The bulkhead: a hung server holds at most max_threads threads ----------------------------
def test_threads_beyond_the_bulkhead_are_refused_at_once(
    database: Database, proxy: PausableProxy
) -> None:
    """pool_size 2, max_threads 3: two hang on their connections, one waits for the pool
    (pool timeout), every other thread is refused without waiting."""
    connected = threading.Barrier(3)
    paused = threading.Event()

    def hang_on_a_connection() -> None:
        with database.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            connected.wait()
            paused.wait()
            conn.execute(sa.text("SELECT 2"))

    with ThreadPoolExecutor(3) as pool:
        hung: list[Future[tuple[float, BaseException | None]]] = [
            pool.submit(timed, hang_on_a_connection) for _ in range(2)
        ]
        connected.wait()
        proxy.pause()
        paused.set()
        waiting = pool.submit(timed, lambda: select_one(database))
        wait_until(lambda: guard(database).bulkhead.inside == 3)
        refused = [timed(lambda: select_one(database)) for _ in range(5)]

        for elapsed, error in refused:
            assert isinstance(error, TemporarilyUnavailable)
            assert elapsed < AT_ONCE
        elapsed, error = waiting.result()
        assert isinstance(error, sa.exc.TimeoutError)  # the pool's own bounded wait
        assert LIMITS.pool_timeout <= elapsed < LIMITS.pool_timeout + SLACK
        for future in hung:
            elapsed, error = future.result()
            assert isinstance(error, sa.exc.OperationalError)
            assert elapsed < BOUND + SLACK
    assert guard(database).bulkhead.inside == 0


def test_the_bulkhead_counts_every_checkout_back_in(database: Database) -> None:
    """Successes, SQL errors and invalidated connections all give their place back."""

    def fail_in_sql() -> None:
        with database.engine.connect() as conn:
            conn.execute(sa.text("SELECT no_such_column"))

    def invalidate() -> None:
        with database.engine.connect() as conn:
            conn.invalidate()

    for action in (lambda: select_one(database), fail_in_sql, invalidate) * 3:
        timed(action)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: timed(lambda: select_one(database)), range(12)))
    assert guard(database).bulkhead.inside == 0
    database.engine.dispose()  # a new pool shares the guard
    select_one(database)
    assert guard(database).bulkhead.inside == 0


# --- SQLite, the embedded default ------------------------------------------------------------
def test_sqlite_gets_the_pool_bounds_and_the_bulkhead(sqlite_url: str) -> None:
    database = Database(sqlite_url, LIMITS)
    try:
        assert isinstance(database.engine.pool, GuardedQueuePool)
        with database.engine.connect() as conn:
            # A wait for the write lock is a lock wait (AUTHSERVER_SQL_LOCK_TIMEOUT).
            busy = conn.execute(sa.text("PRAGMA busy_timeout")).scalar_one()
            assert busy == int(LIMITS.lock_timeout * 1000)
            assert guard(database).bulkhead.inside == 1
        assert guard(database).bulkhead.inside == 0
    finally:
        database.dispose()


def test_in_memory_sqlite_keeps_its_single_connection_pool() -> None:
    database = Database("sqlite://", LIMITS)
    try:
        assert guard_of(database.engine) is None
        select_one(database)
    finally:
        database.dispose()
