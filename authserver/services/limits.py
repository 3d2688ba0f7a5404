"""Rate-limited attempts: reserve first, give back only what succeeded."""

from __future__ import annotations

from types import TracebackType

from authserver.domain import errors
from authserver.domain.ports import RateLimiter


class AttemptGuard:
    """Counts one attempt against several limits for the duration of a `with` block.

    Every key is hit before the work starts (so parallel requests cannot slip past a limit);
    if any is over, the attempt is refused and the hits are given back. On success the block
    calls succeeded() and the hits are given back too: only failures stay counted, and a
    success never resets a window (RFC 8628 §5.1 brute force of user codes, and passwords).
    """

    def __init__(
        self, limiter: RateLimiter, limits: tuple[tuple[str, int], ...], window: int, now: float
    ) -> None:
        self._limiter = limiter
        self._limits = limits
        self._window = window
        self._now = now
        self._success = False

    def __enter__(self) -> AttemptGuard:
        waits = [
            self._limiter.hit(key, limit, self._window, self._now) for key, limit in self._limits
        ]
        if any(waits):
            self._release()
            raise errors.RateLimited(max(waits))
        return self

    def succeeded(self) -> None:
        self._success = True

    def _release(self) -> None:
        for key, _ in self._limits:
            self._limiter.release(key, self._window, self._now)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Only a failure the user could have caused counts; a crash or success does not.
        if self._success or (exc is not None and not isinstance(exc, errors.DomainError)):
            self._release()
