"""storage/failures.py: which exceptions mean "a dependency is unavailable" (a 503, not a 500).

Real clients raise the exceptions wherever that is cheap: Redis and PostgreSQL on a closed port,
Redis on a port that accepts and never answers, a SQLite file locked by another writer, a pool
with no free connection, PostgreSQL's own statement timeout. Each takes milliseconds.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from redis.backoff import NoBackoff
from redis.retry import Retry

from authserver.storage.failures import describe, is_unavailable


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound and released: connecting is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def no_retry_redis(port: int, **options: float) -> redis.Redis:
    """A client that fails at once (redis-py retries with a growing backoff by default)."""
    return redis.Redis(port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0), **options)


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as exc:
        return exc
    pytest.fail("expected an exception")


# --- Redis ----------------------------------------------------------------------------------
def test_redis_refused_and_timed_out_are_unavailable(closed_port: int, silent_port: int) -> None:
    refused = raised(no_retry_redis(closed_port).ping)
    assert isinstance(refused, redis.ConnectionError) and is_unavailable(refused)

    silent = no_retry_redis(silent_port, socket_timeout=0.05)
    timed_out = raised(silent.ping)
    assert isinstance(timed_out, redis.TimeoutError) and is_unavailable(timed_out)


def test_redis_fail_over_and_loading_answers_are_unavailable() -> None:
    # A server in these states is not cheap to make: these are the exceptions redis-py
    # raises for the answers READONLY, LOADING, MASTERDOWN, TRYAGAIN and OOM.
    for exc in (
        redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica."),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        redis.exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
        redis.exceptions.TryAgainError("TRYAGAIN"),
        redis.exceptions.OutOfMemoryError("OOM command not allowed"),
        redis.exceptions.MaxConnectionsError("Too many connections"),
    ):
        assert is_unavailable(exc), exc


def test_redis_errors_about_the_request_are_not_unavailable(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        wrong = raised(lambda: client.execute_command("NO-SUCH-COMMAND"))
        assert isinstance(wrong, redis.ResponseError) and not is_unavailable(wrong)
        script = raised(lambda: client.evalsha("0" * 40, 0))
        assert isinstance(script, redis.exceptions.NoScriptError) and not is_unavailable(script)
    finally:
        client.close()


# --- PostgreSQL -----------------------------------------------------------------------------
def test_postgresql_refused_is_unavailable_raw_and_through_sqlalchemy(closed_port: int) -> None:
    raw = raised(lambda: psycopg.connect(host="127.0.0.1", port=closed_port, connect_timeout=2))
    assert isinstance(raw, psycopg.OperationalError) and is_unavailable(raw)

    engine = sa.create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/test",
        connect_args={"connect_timeout": 2},
    )
    wrapped = raised(engine.connect)
    engine.dispose()
    assert isinstance(wrapped, sa_exc.OperationalError) and is_unavailable(wrapped)
    assert "psycopg.OperationalError" in describe(wrapped)


def test_postgresql_timeouts_are_unavailable_and_mistakes_are_not(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET statement_timeout = 1"))
            timeout = raised(lambda: conn.execute(sa.text("SELECT pg_sleep(1)")))
        assert isinstance(timeout, sa_exc.OperationalError)
        assert isinstance(timeout.orig, psycopg.errors.QueryCanceled) and is_unavailable(timeout)

        with engine.connect() as conn:
            syntax = raised(lambda: conn.execute(sa.text("SELEC 1")))
        with engine.connect() as conn:
            missing = raised(lambda: conn.execute(sa.text("SELECT * FROM no_such_table")))
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            duplicate = raised(lambda: conn.execute(sa.text("INSERT INTO t VALUES (1)")))
        with engine.connect() as conn:
            nul = raised(lambda: conn.execute(sa.text("SELECT :v"), {"v": "a\x00b"}))
        for exc in (syntax, missing, duplicate, nul):
            assert not is_unavailable(exc), exc
    finally:
        engine.dispose()


# --- SQLAlchemy's pool and SQLite -------------------------------------------------------------
def test_an_exhausted_pool_and_a_locked_sqlite_file_are_unavailable(tmp_path: Path) -> None:
    engine = sa.create_engine(
        f"sqlite:///{tmp_path}/pool.db", pool_size=1, max_overflow=0, pool_timeout=0.05
    )
    with engine.connect():
        exhausted = raised(engine.connect)
    engine.dispose()
    assert isinstance(exhausted, sa_exc.TimeoutError) and is_unavailable(exhausted)

    path = tmp_path / "locked.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock
    other = sqlite3.connect(path, timeout=0)
    locked = raised(lambda: other.execute("INSERT INTO t VALUES (1)"))
    assert isinstance(locked, sqlite3.OperationalError) and is_unavailable(locked)

    # Through SQLAlchemy too, with the busy code kept on the DBAPI error.
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with engine.connect() as conn:
        wrapped = raised(lambda: conn.execute(sa.text("INSERT INTO t VALUES (2)")))
    engine.dispose()
    writer.execute("ROLLBACK")
    assert isinstance(wrapped, sa_exc.OperationalError) and is_unavailable(wrapped)

    unopenable = sa.create_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db")
    cannot_open = raised(unopenable.connect)
    assert isinstance(cannot_open, sa_exc.OperationalError) and is_unavailable(cannot_open)

    # sqlite3 calls a missing table and a syntax error OperationalError too: those are bugs.
    for statement in ("SELECT * FROM no_such_table", "SELEC 1"):
        bug = raised(lambda statement=statement: other.execute(statement))
        assert isinstance(bug, sqlite3.OperationalError) and not is_unavailable(bug)
    other.close()
    writer.close()


def test_a_connection_sqlalchemy_invalidated_is_unavailable() -> None:
    lost = sa_exc.DBAPIError("SELECT 1", None, Exception("lost"), connection_invalidated=True)
    assert is_unavailable(lost)
    assert not is_unavailable(sa_exc.DBAPIError("SELECT 1", None, Exception("other")))


# --- Anything else ----------------------------------------------------------------------------
def test_explicit_causes_are_followed_and_accidental_contexts_are_not(closed_port: int) -> None:
    down = raised(no_retry_redis(closed_port).ping)

    def wrapped() -> None:
        raise RuntimeError("the store failed") from down

    def bug_while_handling() -> None:
        try:
            raise down
        except redis.RedisError:
            raise KeyError("a bug in the except clause") from None

    def bug_in_context() -> None:
        try:
            raise down
        except redis.RedisError:
            {}["missing"]  # a bug while handling: __context__, not __cause__

    assert is_unavailable(raised(wrapped))
    assert not is_unavailable(raised(bug_while_handling))
    assert not is_unavailable(raised(bug_in_context))
    for bug in (RuntimeError("x"), ValueError(), KeyError("k"), OSError("disk")):
        assert not is_unavailable(bug)
