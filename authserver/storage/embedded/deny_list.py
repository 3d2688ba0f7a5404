"""The deny-list in process memory."""

from __future__ import annotations

import threading

from authserver.domain.models import Denial, DenialKind, DenyListAnswer


class EmbeddedRevocationList:
    """The deny-list in process memory, for the single-process set-up.

    It starts incomplete, so the first check rebuilds it from SQL: a restart loses nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._denied: dict[tuple[str, str], float] = {}  # (kind, id) -> when the denial ends
        self._complete = False
        self._generation = 0

    def add(self, denials: list[Denial], now: float) -> None:
        with self._lock:
            if len(self._denied) > 10_000:  # drop what has ended anyway
                self._denied = {k: until for k, until in self._denied.items() if until > now}
            self._denied.update(((d.kind.value, d.id), d.until) for d in denials if d.until > now)

    def is_denied(self, jti: str, sid: str, now: float) -> DenyListAnswer:
        # Every write happens in this process, so a complete list stays complete (and fresh).
        with self._lock:
            if not self._complete:
                return DenyListAnswer.INCOMPLETE
            denied = (
                self._denied.get((DenialKind.ACCESS_TOKEN.value, jti), 0.0) > now
                or self._denied.get((DenialKind.SESSION.value, sid), 0.0) > now
            )
            return DenyListAnswer.DENIED if denied else DenyListAnswer.ALLOWED

    def mark_incomplete(self) -> None:
        with self._lock:
            self._complete = False
            self._generation += 1

    def generation(self) -> str:
        with self._lock:
            return str(self._generation)

    def rebuild(self, denials: list[Denial], now: float, generation: str) -> bool:
        self.add(denials, now)
        with self._lock:
            if str(self._generation) != generation:
                return False
            self._complete = True
            return True
