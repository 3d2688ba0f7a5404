"""The fault tools themselves: each fault does what its name says, and undoing it heals.

If one of these fails, the scenario tests' verdicts mean nothing, so they come first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.faults.actors import poll_in_flight, sign_in_and_login
from tests.faults.conftest import Stack, private_redis
from tests.faults.dependencies import PrivatePostgres, PrivateRedis
from tests.faults.proxy import DOWN, UP, FaultProxy

pytestmark = pytest.mark.faults


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result or the exception raised)."""
    started = time.monotonic()
    try:
        result = action()
    except Exception as exc:
        result = exc
    return time.monotonic() - started, result


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = private_redis(tmp_path)
    yield server
    server.stop()


def redis_client(port: int, timeout: float = 1.0) -> redis.Redis:
    """A client that gives up after one `timeout` (redis-py >= 6 retries 3 times by default)."""
    return redis.Redis(
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def test_a_paused_redis_times_a_client_out_and_a_resumed_one_answers(
    own_redis: PrivateRedis,
) -> None:
    client = redis_client(own_redis.port)
    client.set("k", "v")
    own_redis.pause()
    assert own_redis.paused
    seconds, result = timed(client.ping)
    assert isinstance(result, redis.TimeoutError), result
    assert 0.9 <= seconds < 2.0, seconds  # the client's 1 s timeout, not the pause
    own_redis.resume()
    assert client.ping() is True
    assert client.get("k") == b"v"  # paused, not restarted: the data is still there


def test_a_killed_redis_refuses_and_a_restarted_one_answers_empty_on_the_same_port(
    own_redis: PrivateRedis,
) -> None:
    client = redis_client(own_redis.port)
    client.set("k", "v")
    port = own_redis.port
    own_redis.kill()
    seconds, result = timed(client.ping)
    assert isinstance(result, redis.ConnectionError), result
    assert seconds < 1.0  # refused at once, no timeout to wait for
    own_redis.restart()
    assert own_redis.port == port
    assert client.ping() is True
    assert client.get("k") is None  # no persistence: a crash loses every key


def run_in_thread(action: Callable[[], Any]) -> Any:
    """A future for `action` on its own thread (the pool is left to finish it)."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(action)
    pool.shutdown(wait=False)
    return future


def test_a_paused_postgres_holds_a_query_until_resumed_and_a_killed_one_restarts(
    private_postgres: PrivatePostgres,
) -> None:
    with psycopg.connect(private_postgres.admin_url(), autocommit=True) as conn:
        private_postgres.pause()
        try:
            assert private_postgres.paused
            query = run_in_thread(lambda: conn.execute("select 41 + 1").fetchone())
            time.sleep(0.5)
            assert not query.done()  # held: the backend is stopped
        finally:
            private_postgres.resume()
        assert query.result(timeout=5) == (42,)

        private_postgres.kill()
        assert private_postgres.pid is None
        with pytest.raises(psycopg.OperationalError):
            conn.execute("select 1")
    seconds, _ = timed(private_postgres.restart)
    assert private_postgres.answers()
    assert seconds < 10


@pytest.fixture
def postgres_proxy(private_postgres: PrivatePostgres) -> Iterator[FaultProxy]:
    with FaultProxy(private_postgres.port) as proxy:
        yield proxy


def proxied(proxy: FaultProxy, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres", connect_timeout=2, **kwargs
    )


def test_a_paused_proxy_holds_a_postgres_query_and_restore_delivers_it(
    postgres_proxy: FaultProxy,
) -> None:
    with proxied(postgres_proxy, autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        postgres_proxy.pause()
        query = run_in_thread(lambda: conn.execute("select 2 + 2").fetchone())
        held = postgres_proxy.wait_held(timeout=2, direction=UP)
        assert len(held) == 1
        assert not query.done()
        postgres_proxy.restore()
        assert query.result(timeout=5) == (4,)


def test_hold_after_lets_a_commit_through_and_holds_its_answer(
    postgres_proxy: FaultProxy, private_postgres: PrivatePostgres
) -> None:
    """The "committed, but the answer was lost" fault the redemption and refresh tests use."""
    table = f"t_{int(time.time() * 1000)}"
    with psycopg.connect(private_postgres.admin_url(), autocommit=True) as direct:
        direct.execute(f"create table {table} (n int)")
        with proxied(postgres_proxy) as conn:
            postgres_proxy.hold_after(b"INSERT INTO", b"COMMIT")
            conn.execute("select 1")
            conn.commit()  # a COMMIT before the INSERT does not trigger
            conn.execute(f"INSERT INTO {table} VALUES (7)")
            commit = run_in_thread(conn.commit)
            assert postgres_proxy.wait_held(timeout=2, direction=DOWN)
            time.sleep(0.3)
            assert not commit.done()  # the client still waits for the answer...
            # ...that PostgreSQL gave already: the row is committed.
            assert direct.execute(f"select n from {table}").fetchall() == [(7,)]
            postgres_proxy.restore()
            commit.result(timeout=5)
        direct.execute(f"drop table {table}")


def test_delay_slows_each_way(own_redis: PrivateRedis) -> None:
    with FaultProxy(own_redis.port) as proxy:
        client = redis_client(proxy.port, timeout=3)
        assert client.ping()
        proxy.delay(250)
        seconds, result = timed(client.ping)
        assert result is True
        assert 0.5 <= seconds < 2.0, seconds  # 250 ms up plus 250 ms down
        proxy.restore()
        seconds, _ = timed(client.ping)
        assert seconds < 0.25


def test_drop_resets_open_and_new_connections_until_restored(own_redis: PrivateRedis) -> None:
    with FaultProxy(own_redis.port) as proxy:
        open_client = redis_client(proxy.port)
        assert open_client.ping()
        assert proxy.connections == 1
        proxy.drop()
        seconds, result = timed(open_client.ping)  # reconnects once, is reset again
        assert isinstance(result, redis.ConnectionError), result
        seconds, result = timed(redis_client(proxy.port).ping)
        assert isinstance(result, redis.ConnectionError), result
        assert seconds < 0.5  # reset, not left hanging
        proxy.restore()
        assert redis_client(proxy.port).ping()


def test_blackhole_answers_nothing_and_restore_resets_what_it_broke(
    own_redis: PrivateRedis,
) -> None:
    with FaultProxy(own_redis.port) as proxy:
        client = redis_client(proxy.port, timeout=0.5)
        assert client.ping()
        proxy.blackhole()
        seconds, result = timed(client.ping)
        assert isinstance(result, redis.TimeoutError), result
        assert 0.4 <= seconds < 1.5
        assert not proxy.held()  # swallowed, not held: nothing comes back on restore
        proxy.restore()
        assert redis_client(proxy.port).ping()


def test_pause_holds_new_connections_too(own_redis: PrivateRedis) -> None:
    with FaultProxy(own_redis.port) as proxy:
        proxy.pause()
        client = redis_client(proxy.port, timeout=3)
        ping = run_in_thread(client.ping)
        assert proxy.wait_held(timeout=2)
        assert not ping.done()
        proxy.restore()
        assert ping.result(timeout=3) is True


def test_the_worker_serving_a_request_is_found_through_proc(healthy_stack: Stack) -> None:
    """The process owning the HTTP connection is the one whose SQL the proxy holds."""
    server = healthy_stack.server
    workers = server.workers()
    assert len(workers) >= 2, workers  # two HTTP workers (plus whatever else it runs)
    pc, login = sign_in_and_login(server)
    healthy_stack.postgres_proxy.pause()
    poll = poll_in_flight(pc, login)
    held = healthy_stack.postgres_proxy.wait_held(timeout=3, direction=UP)
    assert held, "the redemption never reached SQL"
    serving = server.worker_serving(poll.local_port)
    assert serving is not None and serving in workers
    assert server.worker_behind(healthy_stack.postgres_proxy.port, held[0].peer[1]) == serving
    healthy_stack.postgres_proxy.restore()
    assert poll.answer().status is not None


def test_concurrent_proxy_traffic_passes_intact(own_redis: PrivateRedis) -> None:
    """Many clients at once through one proxy: every answer reaches its own caller."""
    with FaultProxy(own_redis.port) as proxy:
        errors: list[str] = []

        def worker(n: int) -> None:
            client = redis_client(proxy.port, timeout=3)
            for i in range(50):
                client.set(f"k{n}", str(i))
                if client.get(f"k{n}") != str(i).encode():
                    errors.append(f"client {n} read a wrong value")
            client.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert not errors
        assert proxy.accepted >= 8
