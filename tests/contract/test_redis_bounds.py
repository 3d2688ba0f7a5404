"""Every wait on Redis ends within AUTHSERVER_REDIS_TIMEOUT; then the breaker answers at once.

Redis is reached through a PausableProxy in front of the shared server, which makes it hang as
a SIGSTOPped one does; the shared server itself is never paused. Timeouts are 0.3 s.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from authserver.domain.errors import TemporarilyUnavailable
from authserver.storage.isolation import BreakerState, CircuitBreaker
from authserver.storage.redis_store.client import breaker_of, connect_redis
from authserver.storage.redis_store.flows import RedisFlowStore
from tests.contract.pausable_proxy import PausableProxy
from tests.contract.test_flow_store import make_flow

pytestmark = pytest.mark.redis

TIMEOUT = 0.3
AT_ONCE = 0.1  # answered without waiting for Redis: a third of the timeout
SLACK = 1.0  # a noisy 2-core machine may answer this much later than a bound


def timed(action: Callable[[], object]) -> tuple[float, BaseException | None]:
    start = time.monotonic()
    try:
        action()
    except BaseException as exc:
        return time.monotonic() - start, exc
    return time.monotonic() - start, None


def breaker(client: redis.Redis) -> CircuitBreaker:
    found = breaker_of(client)
    assert found is not None
    return found


@pytest.fixture
def proxy(redis_url: str) -> Iterator[PausableProxy]:
    with PausableProxy.in_front_of(redis_url) as proxy:
        yield proxy


@pytest.fixture
def client(redis_url: str, proxy: PausableProxy) -> Iterator[redis.Redis]:
    client = connect_redis(proxy.url(redis_url), TIMEOUT)
    yield client
    proxy.restore()
    client.close()


def test_a_command_to_a_hung_redis_times_out_once_then_the_breaker_answers(
    client: redis.Redis, proxy: PausableProxy, redis_prefix: str
) -> None:
    key = f"{redis_prefix}k"
    client.set(key, "v")
    proxy.pause()
    elapsed, error = timed(lambda: client.get(key))
    assert isinstance(error, redis.TimeoutError)
    assert TIMEOUT <= elapsed < TIMEOUT + SLACK  # once: no retry doubles it
    assert breaker(client).state is BreakerState.OPEN

    # Commands, pipelines and pub/sub alike are answered at once while it is open.
    pipeline = client.pipeline()
    pipeline.get(key)
    for action in (
        lambda: client.get(key),
        pipeline.execute,
        lambda: client.pubsub().subscribe("c"),
    ):
        elapsed, error = timed(action)
        assert isinstance(error, TemporarilyUnavailable), error
        assert error.retry_after == 1
        assert elapsed < AT_ONCE

    proxy.restore()
    time.sleep(TIMEOUT)  # the cool-off
    assert client.get(key) == b"v"  # the probe: recovered without a new client
    assert breaker(client).state is BreakerState.CLOSED


def test_connecting_to_a_hung_redis_times_out(redis_url: str, proxy: PausableProxy) -> None:
    client = connect_redis(proxy.url(redis_url), TIMEOUT)
    proxy.pause()
    try:
        elapsed, error = timed(client.ping)
        assert isinstance(error, (redis.TimeoutError, redis.ConnectionError))
        assert elapsed < 2 * TIMEOUT + SLACK  # TCP connect + the handshake's reply, at most
        assert breaker(client).state is BreakerState.OPEN
    finally:
        client.close()


def test_a_refused_connection_fails_at_once_and_leaves_the_breaker_closed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = connect_redis(f"redis://127.0.0.1:{closed_port}/0", TIMEOUT)
    try:
        for _ in range(2):
            elapsed, error = timed(client.ping)
            assert isinstance(error, redis.ConnectionError)
            assert elapsed < AT_ONCE
        assert breaker(client).state is BreakerState.CLOSED
    finally:
        client.close()


def test_a_probe_that_times_out_reopens_the_breaker(
    client: redis.Redis, proxy: PausableProxy
) -> None:
    client.ping()
    proxy.pause()
    timed(client.ping)
    time.sleep(TIMEOUT)
    assert breaker(client).state is BreakerState.HALF_OPEN
    elapsed, error = timed(client.ping)  # the probe
    assert isinstance(error, redis.TimeoutError)
    assert TIMEOUT <= elapsed < TIMEOUT + SLACK
    _, error = timed(client.ping)
    assert isinstance(error, TemporarilyUnavailable)


def test_a_redis_error_reply_is_an_answer_not_an_outage(
    client: redis.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}list"
    client.rpush(key, "x")
    with pytest.raises(redis.ResponseError):
        client.incr(key)  # WRONGTYPE
    assert breaker(client).state is BreakerState.CLOSED


def test_the_status_long_poll_outlives_the_socket_timeout(
    redis_url: str, redis_prefix: str
) -> None:
    """wait_for_change reads pub/sub with its own timeout (up to 1 s), not the socket's."""
    client = connect_redis(redis_url, 0.2)
    try:
        store = RedisFlowStore(client, prefix=redis_prefix)
        flow = make_flow(time.time())
        assert store.create(flow)
        start = time.monotonic()
        got = store.wait_for_change(flow.device_code_hash, flow.version, 0.8)
        assert time.monotonic() - start >= 0.8  # no TimeoutError after 0.2 s
        assert got is not None and got.version == flow.version
        assert breaker(client).state is BreakerState.CLOSED
    finally:
        client.close()
