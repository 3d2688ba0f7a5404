"""The circuit breaker and the bulkhead (storage/isolation.py), on an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from authserver.domain.errors import TemporarilyUnavailable
from authserver.storage.isolation import BreakerState, Bulkhead, CircuitBreaker

COOLOFF = 2.0
PROBE_WINDOW = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("database", COOLOFF, PROBE_WINDOW, clock=clock)


def in_other_thread(action: Callable[[], object]) -> BaseException | None:
    """Run `action` in a thread of its own (another caller); the exception it raised, if any."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_a_closed_breaker_admits_everyone(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        breaker.admit()
        breaker.succeeded()
    breaker.released()
    assert breaker.state is BreakerState.CLOSED


def test_one_failure_opens_it_for_the_cooloff(breaker: CircuitBreaker, clock: Clock) -> None:
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(TemporarilyUnavailable) as refused:
        breaker.admit()
    assert refused.value.retry_after == 2
    assert "database" not in refused.value.description  # nothing about what is down
    clock.now += 1.5
    with pytest.raises(TemporarilyUnavailable) as refused:
        breaker.admit()
    assert refused.value.retry_after == 1  # what is left, rounded up
    clock.now += 0.5
    assert breaker.state is BreakerState.HALF_OPEN


def test_after_the_cooloff_one_probe_passes_and_its_success_closes(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    breaker.failed()
    clock.now += COOLOFF
    breaker.admit()  # this thread is the probe
    breaker.admit()  # and may call again (a checkout, then a connect)
    refused = in_other_thread(breaker.admit)
    assert isinstance(refused, TemporarilyUnavailable)
    assert refused.retry_after == 1
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED
    assert in_other_thread(breaker.admit) is None


def test_a_failed_probe_reopens_for_another_cooloff(breaker: CircuitBreaker, clock: Clock) -> None:
    breaker.failed()
    clock.now += COOLOFF
    breaker.admit()
    clock.now += 1.0  # the probe waited for its timeout
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(TemporarilyUnavailable) as refused:
        breaker.admit()
    assert refused.value.retry_after == 2
    clock.now += COOLOFF
    breaker.admit()


def test_a_probe_that_proved_nothing_hands_the_turn_on(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    breaker.failed()
    clock.now += COOLOFF
    breaker.admit()
    breaker.released()  # e.g. its connection was reset at once: no verdict
    assert breaker.state is BreakerState.HALF_OPEN
    assert in_other_thread(breaker.admit) is None  # the next caller probes


def test_a_probe_that_never_reports_frees_its_turn_after_the_window(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    breaker.failed()
    clock.now += COOLOFF
    breaker.admit()  # ... and this caller disappears
    assert isinstance(in_other_thread(breaker.admit), TemporarilyUnavailable)
    clock.now += PROBE_WINDOW
    assert in_other_thread(breaker.admit) is None


def test_release_by_a_thread_that_is_not_the_probe_changes_nothing(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    breaker.failed()
    clock.now += COOLOFF
    breaker.admit()
    assert in_other_thread(breaker.released) is None
    assert isinstance(in_other_thread(breaker.admit), TemporarilyUnavailable)


def test_a_success_while_open_does_not_cut_the_cooloff_short(breaker: CircuitBreaker) -> None:
    # A straggler that was answered before the outage says nothing about now.
    breaker.failed()
    breaker.succeeded()
    assert breaker.state is BreakerState.OPEN


def test_the_bulkhead_refuses_beyond_its_limit_at_once() -> None:
    bulkhead = Bulkhead("database", 2)
    bulkhead.enter()
    bulkhead.enter()
    with pytest.raises(TemporarilyUnavailable) as refused:
        bulkhead.enter()
    assert refused.value.retry_after == 1
    assert bulkhead.inside == 2
    bulkhead.leave()
    bulkhead.enter()
    bulkhead.leave()
    bulkhead.leave()
    assert bulkhead.inside == 0
    with pytest.raises(RuntimeError):
        bulkhead.leave()
