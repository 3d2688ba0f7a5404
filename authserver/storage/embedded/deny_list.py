"""The jti deny-list in process memory."""

from __future__ import annotations

import threading

from authserver.domain.models import DeniedToken


class EmbeddedRevocationList:
    """The jti deny-list in process memory, for the single-process set-up.

    It starts incomplete, so the first check rebuilds it from SQL: a restart loses nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._denied: dict[str, float] = {}  # jti -> the token's expiry
        self._complete = False

    def add(self, tokens: list[DeniedToken], now: float) -> None:
        with self._lock:
            if len(self._denied) > 10_000:  # drop what has expired anyway
                self._denied = {j: exp for j, exp in self._denied.items() if exp > now}
            self._denied.update((t.jti, t.expires_at) for t in tokens if t.expires_at > now)

    def is_denied(self, jti: str, now: float) -> bool | None:
        with self._lock:
            if not self._complete:
                return None
            return self._denied.get(jti, 0.0) > now

    def mark_incomplete(self) -> None:
        with self._lock:
            self._complete = False

    def rebuild(self, tokens: list[DeniedToken], now: float) -> None:
        self.add(tokens, now)
        with self._lock:
            self._complete = True
