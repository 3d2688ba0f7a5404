"""A circuit breaker and a bulkhead: a dependency that fails costs one wait, not every thread.

Both answer TemporarilyUnavailable (503 with Retry-After) at once instead of letting a request
wait for a dependency that is known to be down, or for one that already holds as many threads
as it may. storage/sql/guard.py puts both in front of the database, storage/redis_store/
client.py puts a breaker in front of Redis.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable

from authserver.domain.errors import TemporarilyUnavailable


class BreakerState(enum.Enum):
    CLOSED = "closed"  # calls pass
    OPEN = "open"  # calls are answered at once until the cool-off ends
    HALF_OPEN = "half_open"  # one probe call passes; its outcome closes or reopens


class CircuitBreaker:
    """Open after a failure, answer at once for a cool-off, then let one probe through.

    It exists to spare callers a wait, so what opens it is a wait: the caller says `failed()`
    when a call to the dependency ran out its timeout (a hung or unreachable server),
    `succeeded()` for an answer from it, `released()` for a call that proved nothing (a refused
    or reset connection fails at once by itself, and a retry may well reach a healthy server).
    One failure opens: each cost a whole timeout, and a second would cost every waiting thread
    another.
    """

    def __init__(
        self,
        name: str,
        cooloff: float,
        probe_window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._cooloff = cooloff
        self._probe_window = probe_window  # a probe that never reports frees its turn after it
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._open_until = 0.0
        self._probe: int | None = None  # thread id of the probe in flight
        self._probe_until = 0.0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
                return BreakerState.HALF_OPEN
            return self._state

    def admit(self) -> None:
        """Return if a call may go to the dependency now, else raise TemporarilyUnavailable.

        After the cool-off the first caller becomes the probe; the same thread is admitted
        again (a probe may need several calls, e.g. a checkout and then a connect).
        """
        if self._closed():  # the common case takes no lock
            return
        me = threading.get_ident()
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.OPEN:
                if now < self._open_until:
                    raise self._unavailable(self._open_until - now)
                self._state = BreakerState.HALF_OPEN
                self._probe = None
            if self._probe == me:
                return
            if self._probe is None or now >= self._probe_until:
                self._probe, self._probe_until = me, now + self._probe_window
                return
            raise self._unavailable(1.0)  # the probe is out: its answer is due any moment

    def succeeded(self) -> None:
        """The dependency answered: close (a probe's answer, or any answer while half-open)."""
        if self._closed():
            return
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._state, self._probe = BreakerState.CLOSED, None

    def failed(self) -> None:
        """The dependency is down: open for the cool-off from now."""
        with self._lock:
            self._state = BreakerState.OPEN
            self._open_until = self._clock() + self._cooloff
            self._probe = None

    def released(self) -> None:
        """A call that proved nothing; if it was the probe, the next caller probes instead."""
        if self._closed():
            return
        with self._lock:
            if self._probe == threading.get_ident():
                self._probe = None

    def _closed(self) -> bool:
        # Read without the lock: a call that slips through as the breaker opens is harmless.
        return self._state is BreakerState.CLOSED

    def _unavailable(self, remaining: float) -> TemporarilyUnavailable:
        # The standard description: which dependency is down is the operator's business.
        return TemporarilyUnavailable(retry_after=max(1, math.ceil(remaining)))


class Bulkhead:
    """At most `limit` threads inside at once; the next one is refused at once, never queued.

    Threads waiting for a dependency are threads that serve nothing else: a bound on them keeps
    the rest of the worker's threads for the requests that do not need it.
    """

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._lock = threading.Lock()
        self._inside = 0

    @property
    def inside(self) -> int:
        return self._inside

    def enter(self) -> None:
        """Take a place, or raise TemporarilyUnavailable if all `limit` are taken."""
        with self._lock:
            if self._inside >= self.limit:
                raise TemporarilyUnavailable(
                    retry_after=1, description="The server is busy. Try again shortly."
                )
            self._inside += 1

    def leave(self) -> None:
        with self._lock:
            if self._inside <= 0:
                raise RuntimeError(f"{self.name} bulkhead: leave() without enter()")
            self._inside -= 1
