"""Attempt limits: what a counter allows, decided the same way by every store.

An attempt is counted on every limit of its set *before* the work (so parallel requests cannot
slip past), or refused without storing anything (so a refused flood grows nothing). A success,
or a failure of the server's own, is given back; only what the caller could have caused stays
counted. The embedded store runs these functions; the Redis store's Lua script
(storage/redis_store/lua/limits.lua) mirrors them, and tests/contract/test_rate_limiter.py holds
both to the same answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class LimitKind(StrEnum):
    """How a counter refuses once it reaches its limit."""

    # Refuse until the window ends: per-address and per-device limits, which only their holder
    # can fill.
    CAP = "cap"
    # Never refuse for long: past the limit, each attempt waits a doubling delay after the
    # last one (1 s, 2 s, 4 s ... up to max_delay). A per-account limit that anyone can fill
    # this way slows guessing down without locking the owner out (NIST SP 800-63B §5.2.2).
    DELAY = "delay"
    # CAP, but only for a subject that failed in its own right (its `own` counter is not zero):
    # one address's budget shared by several accounts cannot refuse an account that has not
    # failed yet.
    CAP_IF_FAILED = "cap-if-failed"


@dataclass(frozen=True)
class Limit:
    """One counter of an attempt: `limit` counted failures per `window` seconds."""

    key: str
    limit: int
    window: int
    kind: LimitKind = LimitKind.CAP
    max_delay: int = 0  # DELAY: the longest wait between two attempts past the limit
    own: str = ""  # CAP_IF_FAILED: the key of the subject's own counter, in the same set


@dataclass(frozen=True)
class Counter:
    """A counter's stored state: `count` since `start` (its window), the last at `last`."""

    count: int
    start: float
    last: float

    def current(self, window: int, now: float) -> int:
        """The count of the window `now` is in (a window starts at its first attempt)."""
        return self.count if now < self.start + window else 0


def wait_for(limit: Limit, counter: Counter | None, own_count: int, now: float) -> float:
    """Seconds before `limit` admits another attempt; 0 if it admits one now."""
    if counter is None:
        return 0.0
    count = counter.current(limit.window, now)
    if count < limit.limit:
        return 0.0
    if limit.kind is LimitKind.DELAY:
        delay = min(2.0 ** (count - limit.limit), float(limit.max_delay))
        return max(0.0, counter.last + delay - now)
    if limit.kind is LimitKind.CAP_IF_FAILED and own_count == 0:
        return 0.0
    return counter.start + limit.window - now


def counted(limit: Limit, counter: Counter | None, now: float) -> Counter:
    """The counter after one more attempt (a new window if the last one ended)."""
    if counter is None or counter.current(limit.window, now) == 0:
        return Counter(1, now, now)
    return Counter(counter.count + 1, counter.start, now)


def given_back(limit: Limit, counter: Counter, now: float) -> Counter:
    """The counter with one attempt of its window uncounted (never below zero)."""
    return Counter(max(0, counter.current(limit.window, now) - 1), counter.start, counter.last)


def retry_after(wait: float) -> int:
    """A wait as whole seconds for Retry-After: at least 1."""
    return max(1, math.ceil(wait))
