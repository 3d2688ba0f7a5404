"""The Redis client: every wait bounded by AUTHSERVER_REDIS_TIMEOUT, behind a circuit breaker.

The timeout bounds the TCP connect and every read of a reply. The status channel's long-poll
is not cut by it: pub/sub reads pass their own timeout (1 s at a time, flows.wait_for_change),
which redis-py applies to that read alone.

No command is retried: a command that timed out may still run on the server (a claim script
included), and a retry would make a hung Redis cost twice the timeout.

Every call, command, pipeline or pub/sub read, goes through the connection's Retry object
(redis-py's one hook around each attempt), so that is where the breaker sits: after a timeout,
Redis is not asked again for a short cool-off and callers get TemporarilyUnavailable (503,
Retry-After) at once; then one probe goes through. A refused connection fails at once by
itself and does not open it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from authserver.storage.isolation import CircuitBreaker

T = TypeVar("T")

MAX_COOLOFF = 2.0  # seconds the breaker answers at once before it lets a probe through
HEALTH_CHECK_INTERVAL = 30  # a connection idle this long is PINGed before it is used


class GuardedRetry(Retry):
    """No retries; the breaker admits each call and learns from its outcome.

    Calls nest (a command connects first, and connecting is a call too); only the outermost
    call of a thread is admitted and counted. A call that returned nothing (a pub/sub read that
    timed out, a GET of a missing key, a connect) proves nothing either way.
    """

    def __init__(self, breaker: CircuitBreaker) -> None:
        super().__init__(NoBackoff(), 0)
        self.breaker = breaker
        self._depth = threading.local()

    def __deepcopy__(self, memo: dict[int, Any]) -> GuardedRetry:
        return self  # redis-py copies the Retry into every connection: they share one breaker

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        depth = getattr(self._depth, "value", 0)
        if depth:
            return super().call_with_retry(do, fail, is_retryable, with_failure_count)
        self.breaker.admit()
        self._depth.value = 1
        try:
            result = super().call_with_retry(do, fail, is_retryable, with_failure_count)
        except redis.TimeoutError:
            self.breaker.failed()
            raise
        except redis.ResponseError:
            self.breaker.succeeded()  # an error reply is an answer
            raise
        except BaseException:
            # Refused or reset: answered at once, nobody waited; or we were interrupted.
            self.breaker.released()
            raise
        finally:
            self._depth.value = 0
        if result is None:
            self.breaker.released()
        else:
            self.breaker.succeeded()
        return result


def connect_redis(url: str, timeout: float) -> redis.Redis:
    """A client for `url` whose connect and every reply wait at most `timeout` seconds."""
    breaker = CircuitBreaker("redis", min(MAX_COOLOFF, timeout), probe_window=2 * timeout)
    return redis.Redis.from_url(
        url,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=GuardedRetry(breaker),
    )


def breaker_of(client: redis.Redis) -> CircuitBreaker | None:
    """The breaker in front of `client`, if it has one (for readiness probes and tests)."""
    retry = client.get_retry()
    return retry.breaker if isinstance(retry, GuardedRetry) else None
