"""One-time values in Redis, shared by every server process."""

from __future__ import annotations

import math
import secrets
import time

import redis


class RedisReplayCache:
    """SET NX with an expiry: one round trip records a value or finds it already recorded."""

    GRACE = 60  # seconds a key outlives its time, for clock skew between processes
    # How long a process trusts its copy of the shared secret: if Redis lost it (a restart
    # without persistence), every process adopts the one made next within this long.
    SECRET_RELOAD = 30.0

    def __init__(self, client: redis.Redis, prefix: str = "authserver:") -> None:
        self._redis = client
        self._prefix = prefix
        self._secret: bytes | None = None
        self._secret_read_at = 0.0

    def first_use(self, key: str, until: float, now: float) -> bool:
        ttl = max(1, math.ceil(until - now)) + self.GRACE
        return bool(self._redis.set(f"{self._prefix}seen:{key}", b"1", nx=True, ex=ttl))

    def shared_secret(self) -> bytes:
        # Created by whichever process asks first (SET NX), then read by every process, again
        # every SECRET_RELOAD seconds; if Redis cannot be read, the copy held keeps working.
        now = time.monotonic()
        if self._secret is None or now - self._secret_read_at >= self.SECRET_RELOAD:
            key = f"{self._prefix}nonce-secret"
            try:
                value = self._redis.get(key)
                if value is None:
                    self._redis.set(key, secrets.token_bytes(32), nx=True)
                    value = self._redis.get(key)
            except redis.RedisError:
                if self._secret is None:
                    raise
                return self._secret
            if not isinstance(value, bytes) or len(value) != 32:
                raise RuntimeError("the shared secret in Redis is malformed")
            self._secret, self._secret_read_at = value, now
        return self._secret
