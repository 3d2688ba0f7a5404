"""Fixed-window attempt counters in process memory."""

from __future__ import annotations

import threading


class EmbeddedRateLimiter:
    """Fixed-window attempt counters in process memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, count)

    def _count(self, key: str, window: int, now: float, add: int) -> tuple[int, int]:
        start = int(now // window) * window
        with self._lock:
            if len(self._windows) > 100_000:  # bound memory under a flood of distinct keys
                self._windows = {k: v for k, v in self._windows.items() if v[0] >= start}
            seen_start, count = self._windows.get(key, (start, 0))
            if seen_start != start:
                count = 0
            count = max(0, count + add)
            self._windows[key] = (start, count)
        return start, count

    def hit(self, key: str, limit: int, window: int, now: float) -> int:
        start, count = self._count(key, window, now, 1)
        return max(1, int(start + window - now)) if count > limit else 0

    def release(self, key: str, window: int, now: float) -> None:
        self._count(key, window, now, -1)
