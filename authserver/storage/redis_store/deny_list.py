"""The deny-list in Redis, shared by every server process."""

from __future__ import annotations

import secrets
from typing import Any

import redis

from authserver.domain.models import Denial, DenyListAnswer

# The markers land only if nothing marked the list incomplete since the rebuild read SQL.
_MARK_COMPLETE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], '1', 'EX', ARGV[2])
redis.call('set', KEYS[3], '1', 'EX', ARGV[3])
return 1
"""


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
        self._generation_key = f"{prefix}deny-generation"
        self._mark_complete = client.register_script(_MARK_COMPLETE)

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

    def generation(self) -> str:
        # A random value, never a counter: a restarted Redis (which lost the key) gets a new
        # one, so a rebuild that read the old generation before the restart cannot match it.
        self._redis.set(self._generation_key, secrets.token_hex(8), nx=True)
        value = self._redis.get(self._generation_key)
        return value.decode() if isinstance(value, bytes) else str(value or "")

    def rebuild(self, denials: list[Denial], now: float, generation: str) -> bool:
        pipe = self._redis.pipeline(transaction=True)  # the marker only lands with the entries
        self._add(pipe, denials, now)
        pipe.execute()
        marked = self._mark_complete(
            keys=[self._generation_key, self._complete_key, self._fresh_key],
            args=[generation, self.COMPLETE_TTL, self.FRESH_TTL],
        )
        return bool(marked)

    def mark_incomplete(self) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._complete_key)
        pipe.set(self._generation_key, secrets.token_hex(8))
        pipe.execute()
