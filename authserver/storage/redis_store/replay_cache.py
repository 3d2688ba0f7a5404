"""One-time values in Redis, shared by every server process."""

from __future__ import annotations

import math
import secrets

import redis


class RedisReplayCache:
    """SET NX with an expiry: one round trip records a value or finds it already recorded."""

    GRACE = 60  # seconds a key outlives its time, for clock skew between processes

    def __init__(self, client: redis.Redis, prefix: str = "authserver:") -> None:
        self._redis = client
        self._prefix = prefix
        self._secret: bytes | None = None

    def first_use(self, key: str, until: float, now: float) -> bool:
        ttl = max(1, math.ceil(until - now)) + self.GRACE
        return bool(self._redis.set(f"{self._prefix}seen:{key}", b"1", nx=True, ex=ttl))

    def shared_secret(self) -> bytes:
        # Created once by whichever process asks first; read once per process after that.
        if self._secret is None:
            key = f"{self._prefix}nonce-secret"
            self._redis.set(key, secrets.token_bytes(32), nx=True)
            value = self._redis.get(key)
            if not isinstance(value, bytes) or len(value) != 32:
                raise RuntimeError("the shared nonce secret in Redis is missing or malformed")
            self._secret = value
        return self._secret
