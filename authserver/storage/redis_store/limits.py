"""Fixed-window attempt counters in Redis, shared by every server process."""

from __future__ import annotations

import redis

_RATE_HIT = """
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('expire', KEYS[1], ARGV[1]) end
return n
"""

# Only ever decrements an existing counter: a release never creates a key or goes below 0.
_RATE_RELEASE = """
if tonumber(redis.call('get', KEYS[1]) or '0') > 0 then redis.call('decr', KEYS[1]) end
return 0
"""


class RedisRateLimiter:
    """Fixed-window attempt counters in Redis, shared by all processes."""

    def __init__(self, client: redis.Redis, prefix: str = "authserver:") -> None:
        self._redis = client
        self._prefix = prefix
        self._hit = client.register_script(_RATE_HIT)
        self._release = client.register_script(_RATE_RELEASE)

    def _key(self, key: str, window: int, now: float) -> tuple[str, int]:
        start = int(now // window) * window
        return f"{self._prefix}rl:{key}:{start}", start

    def hit(self, key: str, limit: int, window: int, now: float) -> int:
        redis_key, start = self._key(key, window, now)
        count = int(self._hit(keys=[redis_key], args=[window]))
        return max(1, int(start + window - now)) if count > limit else 0

    def release(self, key: str, window: int, now: float) -> None:
        redis_key, _ = self._key(key, window, now)
        self._release(keys=[redis_key])
