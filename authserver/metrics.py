"""Prometheus metrics (prometheus-client): what operators graph and alert on.

- `authserver_requests_total{method, route, status}` and `authserver_request_seconds{route}`:
  every answer by route template (never the path: user codes travel in paths), so each step of
  a login (device authorization, scan, confirm, token poll) has its rate and latency.
- `authserver_events_total{event}`: every audit event as it is recorded: flows by outcome
  (`flow.created`, `flow.approved`, `flow.denied`, `flow.expired`, `flow.number_mismatch`...),
  tokens issued and refreshed (`token.issued`, `token.refreshed`), reports (`login.reported`).
  Pending flows are `flow.created` minus the flows that ended.
- `authserver_errors_total{error}`: domain errors answered, e.g. `RateLimited` (rate-limit
  refusals), `InvalidDpopProof`, `NumberMismatch`.
- `authserver_dependency_failures_total{dependency}`: 503s by the failing dependency.

Several worker processes: `authserver serve` points PROMETHEUS_MULTIPROC_DIR at a fresh
directory before the workers start, and /metrics adds up every process's values (the
client's multiprocess mode). The metrics are made on first use in each process, after that
variable is set, and prometheus_client is imported only then.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Request latency buckets, seconds: from a cached answer to a long-poll that waited.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class _Metrics:
    requests: Any
    latency: Any
    events: Any
    errors: Any
    dependency_failures: Any


@functools.cache
def _metrics() -> _Metrics:
    from prometheus_client import Counter, Histogram, values

    # The value class follows PROMETHEUS_MULTIPROC_DIR as it is now, whenever this module
    # (or prometheus_client) was first imported.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return _Metrics(
        Counter(
            "authserver_requests", "Answers by route and status", ["method", "route", "status"]
        ),
        Histogram(
            "authserver_request_seconds", "Time to answer, by route", ["route"], buckets=BUCKETS
        ),
        Counter("authserver_events", "Audit events as recorded", ["event"]),
        Counter("authserver_errors", "Domain errors answered", ["error"]),
        Counter("authserver_dependency_failures", "503s by failing dependency", ["dependency"]),
    )


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    metrics = _metrics()
    metrics.requests.labels(method, route, str(status)).inc()
    metrics.latency.labels(route).observe(seconds)


def count_event(event: str) -> None:
    _metrics().events.labels(event).inc()


def count_error(error: str) -> None:
    _metrics().errors.labels(error).inc()


def count_dependency_failure(dependency: str) -> None:
    _metrics().dependency_failures.labels(dependency).inc()


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, across worker processes when there are several."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    _metrics()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
