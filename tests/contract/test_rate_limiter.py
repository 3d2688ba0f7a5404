"""One contract suite for every RateLimiter (domain/ports.py, domain/limits.py).

Each test runs against the embedded limiter and against a real Redis (its Lua script), so both
decide exactly as domain.limits says. Time is passed in as `now`; nothing sleeps.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from authserver.domain.limits import Limit, LimitKind

WINDOW = 60
LIMIT = 3
BACKENDS = ["embedded", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BACKENDS)
def limiter(request: pytest.FixtureRequest) -> Any:
    """A fresh RateLimiter of each kind."""
    if request.param == "embedded":
        from authserver.storage.embedded.limits import EmbeddedRateLimiter

        return EmbeddedRateLimiter()
    from authserver.storage.redis_store.limits import RedisRateLimiter

    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    return RedisRateLimiter(client, prefix=prefix)


@pytest.fixture
def t0() -> float:
    return time.time()


def cap(key: str = "k", limit: int = LIMIT) -> Limit:
    return Limit(key, limit, WINDOW)


def attempts(limiter: Any, limits: tuple[Limit, ...], now: float, n: int) -> list[float]:
    return [limiter.attempt(limits, now) for _ in range(n)]


def test_a_cap_admits_up_to_its_limit_then_asks_to_wait_for_the_window(
    limiter: Any, t0: float
) -> None:
    waits = attempts(limiter, (cap(),), t0, LIMIT + 2)
    assert waits[:LIMIT] == [0] * LIMIT
    assert all(WINDOW - 1 <= wait <= WINDOW for wait in waits[LIMIT:]), waits
    later = limiter.attempt((cap(),), t0 + 20.5)
    assert abs(later - (WINDOW - 20.5)) <= 1
    assert limiter.attempt((cap(),), t0 + WINDOW) == 0  # a new window


def test_a_refused_attempt_counts_nowhere(limiter: Any, t0: float) -> None:
    """Every limit is checked before any is written: one full limit refuses the set and the
    others do not move (a refused flood grows nothing)."""
    full, other = cap("full"), cap("other")
    attempts(limiter, (full,), t0, LIMIT)
    for _ in range(10):
        assert limiter.attempt((full, other), t0) > 0
    assert attempts(limiter, (other,), t0, LIMIT) == [0] * LIMIT
    assert limiter.attempt((other,), t0) > 0


@pytest.mark.redis
def test_refused_attempts_with_new_keys_store_no_key(
    redis_client: Any, redis_prefix: str, t0: float
) -> None:
    from authserver.storage.redis_store.limits import RedisRateLimiter

    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    address = cap("ip:192.0.2.1")
    attempts(limiter, (address,), t0, LIMIT)
    for i in range(50):  # a spray of new usernames from a refused address
        assert limiter.attempt((address, cap(f"user:{i}")), t0) > 0
    keys = list(redis_client.scan_iter(match=redis_prefix + "*"))
    assert len(keys) == 1, keys
    assert 0 < redis_client.ttl(keys[0]) <= WINDOW


def test_release_gives_back_one_attempt_and_never_goes_below_zero(limiter: Any, t0: float) -> None:
    for _ in range(5):
        limiter.release((cap("fresh"),), t0)
    for _ in range(10 * LIMIT):  # successes: each given back
        assert limiter.attempt((cap(),), t0) == 0
        limiter.release((cap(),), t0)
    attempts(limiter, (cap(),), t0, LIMIT - 1)  # failures stay counted
    assert limiter.attempt((cap(),), t0) == 0
    limiter.release((cap(),), t0)  # the last allowed attempt succeeded...
    assert limiter.attempt((cap(),), t0) == 0  # ...so one more is allowed, not LIMIT more
    assert limiter.attempt((cap(),), t0) > 0
    assert attempts(limiter, (cap("fresh"),), t0, LIMIT) == [0] * LIMIT


def test_a_delay_slows_attempts_down_and_never_locks(limiter: Any, t0: float) -> None:
    delay = Limit("user:alice", LIMIT, 3600, LimitKind.DELAY, max_delay=8)
    assert attempts(limiter, (delay,), t0, LIMIT) == [0] * LIMIT
    now, waits = t0, []
    for _ in range(6):  # each next attempt must wait 1, 2, 4, 8, 8, 8 s after the last
        wait = limiter.attempt((delay,), now)
        waits.append(round(wait))
        assert limiter.attempt((delay,), now + wait - 0.01) > 0
        now += wait
        assert limiter.attempt((delay,), now) == 0
    assert waits == [1, 2, 4, 8, 8, 8]


def test_cap_if_failed_refuses_only_subjects_that_failed(limiter: Any, t0: float) -> None:
    """An address's budget, once spent, refuses accounts with failures of their own and
    admits an account that has none (its first attempt is then counted as usual)."""

    def entry(account: str) -> tuple[Limit, ...]:
        own = cap(f"account:{account}", 10)
        return (Limit("ip:office", LIMIT, WINDOW, LimitKind.CAP_IF_FAILED, own=own.key), own)

    attempts(limiter, entry("a"), t0, 2)
    attempts(limiter, entry("b"), t0, 1)  # the office has spent its 3
    assert limiter.attempt(entry("a"), t0) > 0
    assert limiter.attempt(entry("b"), t0) > 0
    assert limiter.attempt(entry("c"), t0) == 0  # c had never failed: admitted...
    assert limiter.attempt(entry("c"), t0) > 0  # ...and once it failed, refused too
    limiter.release(entry("c"), t0)  # had c's first attempt succeeded, c stays welcome
    assert limiter.attempt(entry("c"), t0) == 0


def test_limits_are_counted_apart(limiter: Any, t0: float) -> None:
    attempts(limiter, (cap("user:alice"),), t0, LIMIT)
    assert limiter.attempt((cap("user:alice"),), t0) > 0
    assert limiter.attempt((cap("user:bob"),), t0) == 0


def test_concurrent_attempts_never_exceed_the_limit(limiter: Any, t0: float) -> None:
    n, limit = 20, 10
    barrier = threading.Barrier(n)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        wait = limiter.attempt((cap("k", limit), cap("other", 100)), t0)
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(w == 0 for w in waits).count(True) == limit
    assert len(waits) == n


@pytest.mark.redis
def test_a_script_redis_runs_after_its_caller_gave_up_changes_nothing(
    redis_client: Any, redis_prefix: str, t0: float
) -> None:
    """The caller's deadline travels with the script: Redis compares it with its own clock,
    so an attempt a paused Redis runs after the caller answered 503 counts nowhere."""
    from authserver.storage.redis_store.limits import RedisRateLimiter

    late = RedisRateLimiter(redis_client, prefix=redis_prefix, timeout=-1.0)
    for _ in range(LIMIT + 5):
        assert late.attempt((cap(),), t0) == 0
    assert list(redis_client.scan_iter(match=redis_prefix + "*")) == []
    on_time = RedisRateLimiter(redis_client, prefix=redis_prefix, timeout=2.0)
    assert attempts(on_time, (cap(),), t0, LIMIT) == [0] * LIMIT
