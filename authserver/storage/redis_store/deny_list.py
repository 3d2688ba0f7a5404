"""The deny-list in Redis, shared by every server process."""

from __future__ import annotations

from typing import Any

import redis

from authserver.domain.models import Denial, DenyListAnswer


class RedisRevocationList:
    """The deny-list in Redis: one key per revoked access token or session.

    Each key holds when its denial ends and lives a little longer (a TTL relative to the injected
    clock, like the flows'). Two marker keys: `deny-complete` says the list holds everything SQL
    held when it was last rebuilt (it is lost with a Redis restart, and deleted by a process whose
    write failed); `deny-fresh` expires after FRESH_TTL seconds, so the list is rebuilt from SQL at
    least that often and whatever Redis lost without losing the markers (an older snapshot, an
    evicted key) is back within seconds. A complete list that is merely not fresh still answers
    when SQL cannot be read.
    """

    GRACE = 60  # seconds a key outlives its denial, for clock skew between processes
    FRESH_TTL = 10
    COMPLETE_TTL = 24 * 3600  # tidy: rebuilt long before, every FRESH_TTL

    def __init__(self, client: redis.Redis, prefix: str = "authserver:") -> None:
        self._redis = client
        self._prefix = prefix
        self._complete_key = f"{prefix}deny-complete"
        self._fresh_key = f"{prefix}deny-fresh"

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

    def is_denied(self, jti: str, sid: str, now: float) -> DenyListAnswer:
        complete, fresh, token, session = self._redis.mget(
            [self._complete_key, self._fresh_key, self._key("jti", jti), self._key("sid", sid)]
        )
        if complete is None:
            return DenyListAnswer.INCOMPLETE
        if any(until is not None and float(until) > now for until in (token, session)):
            return DenyListAnswer.DENIED
        return DenyListAnswer.ALLOWED if fresh is not None else DenyListAnswer.STALE

    def rebuild(self, denials: list[Denial], now: float) -> None:
        pipe = self._redis.pipeline(transaction=True)  # the marker only lands with the entries
        self._add(pipe, denials, now)
        pipe.set(self._complete_key, "1", ex=self.COMPLETE_TTL)
        pipe.set(self._fresh_key, "1", ex=self.FRESH_TTL)
        pipe.execute()

    def mark_incomplete(self) -> None:
        self._redis.delete(self._complete_key)
