"""One-time values in process memory, for the single-process set-up."""

from __future__ import annotations

import secrets
import threading

MAX_ENTRIES = 100_000  # past this, entries whose time is up are dropped


class EmbeddedReplayCache:
    """A dict of key -> until, under one lock (a check and its record are one step)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._secret = secrets.token_bytes(32)

    def first_use(self, key: str, until: float, now: float) -> bool:
        with self._lock:
            if len(self._seen) > MAX_ENTRIES:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            if self._seen.get(key, 0.0) > now:
                return False
            self._seen[key] = until
            return True

    def shared_secret(self) -> bytes:
        return self._secret
