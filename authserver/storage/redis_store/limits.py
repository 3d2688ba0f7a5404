"""Attempt limits in Redis, shared by every server process: one script call per attempt."""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from authserver.domain.limits import Limit
from authserver.storage.redis_store.scripts import load_script


class RedisRateLimiter:
    """domain.limits on Redis hashes, one per limit, that expire with their window."""

    def __init__(
        self, client: redis.Redis, prefix: str = "authserver:", timeout: float = 2.0
    ) -> None:
        self._prefix = prefix
        self._timeout = timeout
        self._attempt = client.register_script(load_script("attempt"))
        self._give_back = client.register_script(load_script("give_back"))

    def _keys(self, limits: Sequence[Limit]) -> list[str]:
        return [f"{self._prefix}rl:{limit.key}" for limit in limits]

    def attempt(self, limits: Sequence[Limit], now: float) -> float:
        index = {limit.key: i for i, limit in enumerate(limits, start=1)}
        args: list[str | float | int] = [now, self._deadline()]
        for limit in limits:
            args += [limit.kind.value, limit.limit, limit.window, limit.max_delay]
            args.append(index[limit.own] if limit.own else 0)
        # -1 (Redis ran it after the deadline) is never seen: the call timed out before.
        return float(max(0, int(self._attempt(keys=self._keys(limits), args=args))))

    def release(self, limits: Sequence[Limit], now: float) -> None:
        self._give_back(keys=self._keys(limits), args=[now, *(limit.window for limit in limits)])

    def _deadline(self) -> float:
        # The real clock, which Redis's TIME also reads (an injected or frozen clock would
        # not do): hosts whose clocks agree to well within the timeout are assumed.
        return time.clock_gettime(time.CLOCK_REALTIME) + self._timeout
