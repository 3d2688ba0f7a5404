"""The jti deny-list in Redis, shared by every server process."""

from __future__ import annotations

from typing import Any

import redis

from authserver.domain.models import DeniedToken


class RedisRevocationList:
    """The jti deny-list in Redis: one key per revoked access token, shared by all processes.

    Each key holds the token's expiry and lives a little longer (a TTL relative to the
    injected clock, like the flows'). A marker key says the list is complete. The marker
    expires too, so the list is rebuilt from SQL at least that often: whatever Redis lost
    (a restart that restored an older snapshot, an evicted key, a failed write) is back within
    COMPLETE_TTL seconds, and at once when the marker itself was lost.
    """

    GRACE = 60  # seconds a key outlives its token, for clock skew between processes
    COMPLETE_TTL = 60

    def __init__(self, client: redis.Redis, prefix: str = "authserver:") -> None:
        self._redis = client
        self._prefix = prefix
        self._complete_key = f"{prefix}deny-complete"

    def _key(self, jti: str) -> str:
        return f"{self._prefix}deny:{jti}"

    def _add(self, pipe: Any, tokens: list[DeniedToken], now: float) -> None:
        for token in tokens:
            if token.expires_at > now:
                ttl = int(token.expires_at - now) + self.GRACE
                pipe.set(self._key(token.jti), repr(token.expires_at), ex=ttl)

    def add(self, tokens: list[DeniedToken], now: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        self._add(pipe, tokens, now)
        pipe.execute()

    def is_denied(self, jti: str, now: float) -> bool | None:
        complete, expires_at = self._redis.mget([self._complete_key, self._key(jti)])
        if complete is None:
            return None
        return expires_at is not None and float(expires_at) > now

    def rebuild(self, tokens: list[DeniedToken], now: float) -> None:
        pipe = self._redis.pipeline(transaction=True)  # the marker only lands with the entries
        self._add(pipe, tokens, now)
        pipe.set(self._complete_key, "1", ex=self.COMPLETE_TTL)
        pipe.execute()

    def mark_incomplete(self) -> None:
        self._redis.delete(self._complete_key)
