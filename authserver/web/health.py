"""Health endpoints for load balancers and orchestrators: unauthenticated, cheap, no internals.

- `GET /healthz` (liveness): 200 `{"status": "ok"}` whenever the process answers HTTP at all;
  it touches no dependency, so a database outage never gets healthy workers restarted.
- `GET /readyz` (readiness): 200 `{"status": "ready", "checks": {...}}` when the database
  answers, its schema is at the code's Alembic head and Redis (when configured) answers PING;
  else 503 `{"status": "unavailable", "checks": {...}}` naming each check's state: "ok",
  "unavailable", "timeout", "mismatch" (schema) or "unknown" (schema, database down).

Each check runs on a thread of its own and is given READINESS_TIMEOUT seconds, so the answer is
bounded whatever a dependency does (a hung database included); a check still running from an
earlier probe is waited on, never started twice, so a flood of probes cannot pile up threads
or connections. A result is reused for READINESS_CACHE seconds: at most about one database
query and one PING per process per second, whoever calls.

Both answer any Host (web/hosts.py exempts them): probes use the backend's address.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any

from flask import Blueprint, Response, current_app, request

from authserver.bootstrap import Services
from authserver.domain.context import parse_ip
from authserver.metrics import exposition
from authserver.storage.failures import (
    code_revision,
    database_revision,
    describe,
    redis_ping,
)
from authserver.web.common import no_store, services

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)
VIEWS = ("healthz", "readyz", "metrics")  # answered on any Host: probes and scrapers use addresses

READINESS_TIMEOUT = 2.0  # seconds one readiness answer may take, whatever hangs
READINESS_CACHE = 1.0  # seconds a readiness result is reused

OK, UNAVAILABLE, TIMEOUT, MISMATCH, UNKNOWN = "ok", "unavailable", "timeout", "mismatch", "unknown"

Results = dict[str, str]


def _database(svc: Services) -> Results:
    current = database_revision(svc.database.engine)
    return {"database": OK, "schema": OK if current == code_revision() else MISMATCH}


def _redis(svc: Services) -> Results:
    assert svc.redis is not None
    redis_ping(svc.redis)
    return {"redis": OK}


class Readiness:
    """The readiness checks of one process: bounded, deduplicated, briefly cached."""

    def __init__(
        self,
        checks: dict[str, tuple[Callable[[], Results], Results]],
        *,
        timeout: float = READINESS_TIMEOUT,
        cache_for: float = READINESS_CACHE,
        clock: Callable[[], float] | None = None,
    ) -> None:
        # name -> (the check, what it reports when it fails: every name it covers)
        self._checks = checks
        self._timeout = timeout
        self._cache_for = cache_for
        self._clock = clock or (lambda: time.monotonic())  # looked up per call: freezegun
        self._lock = threading.Lock()
        self._running: dict[str, Future[Results]] = {}
        self._last: tuple[float, Results] | None = None
        self._logged: Results = {}
        self._details: dict[str, str] = {}  # check -> why it failed, for the log

    def run(self) -> Results:
        """Every check's state; at most `timeout` seconds."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last[0] < self._cache_for:
                return dict(self._last[1])
            futures = {name: self._start(name) for name in self._checks}
        wait(futures.values(), timeout=self._timeout)
        with self._lock:
            results: Results = {}
            for name, future in futures.items():
                results.update(self._outcome(name, future))
            self._last = (self._clock(), results)
            self._log_changes(results)
        return dict(results)

    def _start(self, name: str) -> Future[Results]:
        """The running check `name`, or a new run on a daemon thread (never joined at exit)."""
        running = self._running.get(name)
        if running is not None and not running.done():
            return running
        future: Future[Results] = Future()
        check = self._checks[name][0]

        def run() -> None:
            try:
                future.set_result(check())
            except BaseException as exc:  # reported as this check's failure
                future.set_exception(exc)

        self._running[name] = future
        threading.Thread(target=run, name=f"readyz-{name}", daemon=True).start()
        return future

    def _outcome(self, name: str, future: Future[Results]) -> Results:
        failed = self._checks[name][1]
        if not future.done():
            return {
                key: TIMEOUT if value == UNAVAILABLE else value for key, value in failed.items()
            }
        error = future.exception()
        if error is None:
            return future.result()
        self._details[name] = describe(error)
        return dict(failed)

    def _log_changes(self, results: Results) -> None:
        """One log line when a check changes state, not one per probe."""
        for name, state in results.items():
            if self._logged.get(name, OK) == state:
                continue
            if state == OK:
                log.info("readiness: %s: ok again", name)
            else:
                detail = self._details.get(name, "")
                log.warning("readiness: %s: %s%s", name, state, f" ({detail})" if detail else "")
        self._logged = dict(results)
        self._details.clear()


def readiness_for(svc: Services) -> Readiness:
    checks: dict[str, tuple[Callable[[], Results], Results]] = {
        "database": (lambda: _database(svc), {"database": UNAVAILABLE, "schema": UNKNOWN}),
    }
    if svc.redis is not None:
        checks["redis"] = (lambda: _redis(svc), {"redis": UNAVAILABLE})
    return Readiness(checks)


_CREATE_LOCK = threading.Lock()


def _readiness() -> Readiness:
    extensions: dict[str, Any] = current_app.extensions
    with _CREATE_LOCK:
        if "authserver.readiness" not in extensions:
            extensions["authserver.readiness"] = readiness_for(services())
        readiness: Readiness = extensions["authserver.readiness"]
    return readiness


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process serves HTTP. No dependency is asked."""
    return no_store({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: the database, its schema and Redis answer (bounded; see the module doc)."""
    results = _readiness().run()
    ready = all(state == OK for state in results.values())
    return no_store(
        {"status": "ready" if ready else "unavailable", "checks": results}, 200 if ready else 503
    )


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics (authserver/metrics.py). With AUTHSERVER_METRICS_TOKEN, only for
    `Authorization: Bearer <that token>`; without it, only from this machine (a loopback
    address, never a forwarded one), so a public server shows them to nobody by default."""
    expected = services().config.metrics_token
    if expected:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        allowed = scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), expected)
    else:
        address = parse_ip(request.environ.get("REMOTE_ADDR", ""))
        allowed = (
            address is not None
            and address.is_loopback
            and not request.headers.get("X-Forwarded-For")
        )
    if not allowed:
        response = Response('{"error": "forbidden"}', 403, mimetype="application/json")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = exposition()
    response = Response(body, 200, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
