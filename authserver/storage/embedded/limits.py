"""Attempt limits in process memory."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from authserver.domain.limits import Counter, Limit, counted, given_back, wait_for

MAX_COUNTERS = 100_000  # past this, counters whose window ended are dropped


def _count(counter: Counter | None, limit: Limit, now: float) -> int:
    return counter.current(limit.window, now) if counter else 0


class EmbeddedRateLimiter:
    """domain.limits on a dict, under one lock (an attempt checks and counts atomically)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, tuple[Counter, int]] = {}  # key -> (counter, its window)

    def attempt(self, limits: Sequence[Limit], now: float) -> float:
        with self._lock:
            found = {limit.key: self._counters.get(limit.key, (None, 0))[0] for limit in limits}
            current = {limit.key: _count(found[limit.key], limit, now) for limit in limits}
            wait = max(
                wait_for(limit, found[limit.key], current.get(limit.own, 0), now)
                for limit in limits
            )
            if wait > 0:
                return wait
            if len(self._counters) + len(limits) > MAX_COUNTERS:
                self._counters = {
                    key: (counter, window)
                    for key, (counter, window) in self._counters.items()
                    if counter.current(window, now)
                }
            for limit in limits:
                self._counters[limit.key] = (counted(limit, found[limit.key], now), limit.window)
            return 0.0

    def release(self, limits: Sequence[Limit], now: float) -> None:
        with self._lock:
            for limit in limits:
                counter, window = self._counters.get(limit.key, (None, 0))
                if counter is not None:
                    self._counters[limit.key] = (given_back(limit, counter, now), window)
