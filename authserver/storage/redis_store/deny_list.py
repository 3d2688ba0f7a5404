"""The deny-list in Redis, shared by every server process."""

from __future__ import annotations

from typing import Any

import redis

from authserver.domain.models import Denial


class RedisRevocationList:
    """The deny-list in Redis: one key per revoked access token or session.

    Each key holds when its denial ends and lives a little longer (a TTL relative to the injected
    clock, like the flows'). A marker key says the list is complete. The marker expires too, so
    the list is rebuilt from SQL at least that often: whatever Redis lost (a restart that
    restored an older snapshot, an evicted key, a write that failed while another process could
    not even delete the marker) is back within COMPLETE_TTL seconds, and at once when the marker
    itself was lost.
    """

    GRACE = 60  # seconds a key outlives its denial, for clock skew between processes
    COMPLETE_TTL = 10

    def __init__(self, client: redis.Redis, prefix: str = "authserver:") -> None:
        self._redis = client
        self._prefix = prefix
        self._complete_key = f"{prefix}deny-complete"

    def _key(self, kind: str, value: str) -> str:
        return f"{self._prefix}deny:{kind}:{value}"

    def _add(self, pipe: Any, denials: list[Denial], now: float) -> None:
        for denial in denials:
            if denial.until > now:
                ttl = int(denial.until - now) + self.GRACE
                pipe.set(self._key(denial.kind, denial.id), repr(denial.until), ex=ttl)

    def add(self, denials: list[Denial], now: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        self._add(pipe, denials, now)
        pipe.execute()

    def is_denied(self, jti: str, sid: str, now: float) -> bool | None:
        complete, token, session = self._redis.mget(
            [self._complete_key, self._key("jti", jti), self._key("sid", sid)]
        )
        if complete is None:
            return None
        return any(until is not None and float(until) > now for until in (token, session))

    def rebuild(self, denials: list[Denial], now: float) -> None:
        pipe = self._redis.pipeline(transaction=True)  # the marker only lands with the entries
        self._add(pipe, denials, now)
        pipe.set(self._complete_key, "1", ex=self.COMPLETE_TTL)
        pipe.execute()

    def mark_incomplete(self) -> None:
        self._redis.delete(self._complete_key)
