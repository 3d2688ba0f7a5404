"""While PostgreSQL hangs, requests that need SQL cannot take the threads the others need.

The app runs on Redis and on PostgreSQL reached through a PausableProxy (pausing it makes the
database hang as a SIGSTOPped one does; the shared server is never touched). A fixed pool of
worker threads stands in for a gunicorn worker's threads: a burst of SQL-needing requests is
queued ahead of a pending token poll, a status check and a resource check (none of which needs
SQL), and those must be answered without waiting for any SQL bound. Then the proxy passes again
and the same app serves SQL again: recovery without a restart. About 3 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from authserver import create_app
from authserver.storage.sql.guard import SqlLimits, guard_of
from tests.contract.pausable_proxy import PausableProxy
from tests.functional.harness import PASSWORD, Harness, make_services

SETTINGS: dict[str, Any] = {
    "sql_statement_timeout": 1.0,
    "sql_connect_timeout": 1.0,  # libpq: 2 s
    "sql_lock_timeout": 1.0,
    "sql_pool_timeout": 0.5,
    "sql_pool_size": 2,
    "sql_pool_overflow": 0,
    "sql_max_threads": 3,
}
LIMITS = SqlLimits(
    **{k.removeprefix("sql_"): v for k, v in SETTINGS.items() if k != "sql_lock_timeout"}
)
WORKER_THREADS = 6
SQL_BURST = 24
# Not waiting for SQL: below the pool timeout (0.5 s) and the round-trip bound (1.5 s) that any
# request queued behind a SQL request would have waited for.
FAST = 0.45
SLACK = 1.0


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[PausableProxy]:
    with PausableProxy.in_front_of(postgres_url) as proxy:
        yield proxy


@pytest.fixture
def app_and_harness(
    postgres_url: str, proxy: PausableProxy, redis_url: str, redis_prefix: str
) -> Iterator[tuple[Flask, Harness]]:
    services = make_services(proxy.url(postgres_url), redis_url, redis_prefix, **SETTINGS)
    app = create_app(services=services)
    client, _ = services.clients.create("Test PC app", confidential=False, scope="profile email")
    services.accounts.create_user("alice", PASSWORD, "Alice Liddell")
    yield app, Harness(app.test_client(), services, client.client_id, "alice")
    proxy.restore()
    services.close()


def answered(request: Callable[[], TestResponse]) -> tuple[float, int, str | None]:
    """(monotonic time the answer came, status, OAuth error code)."""
    response = request()
    body = response.get_json(silent=True) or {}
    if response.status_code == 503:  # core-design.md: always with Retry-After
        assert int(response.headers["Retry-After"]) >= 1
    return time.monotonic(), response.status_code, body.get("error")


def test_sql_free_requests_are_answered_at_once_while_postgres_hangs(
    app_and_harness: tuple[Flask, Harness], proxy: PausableProxy
) -> None:
    app, h = app_and_harness
    pending = h.authorize()
    approved = h.authorize(scope="email")  # with `profile`, /api/v1/me reads the user's name
    h.approve(approved)
    access_token = h.poll(approved["device_code"]).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {access_token}"}
    assert h.http.get("/api/v1/me", headers=bearer).status_code == 200  # deny-list complete

    def authorize() -> TestResponse:  # needs SQL: the client is looked up
        return app.test_client().post(
            "/oauth/device_authorization", data={"client_id": h.client_id}
        )

    def pending_poll() -> TestResponse:
        return Harness(app.test_client(), h.services, h.client_id, h.username).poll(
            pending["device_code"]
        )

    def status() -> TestResponse:
        return Harness(app.test_client(), h.services, h.client_id, h.username).status(
            pending["device_code"]
        )

    def resource() -> TestResponse:
        return app.test_client().get("/api/v1/me", headers=bearer)

    proxy.pause()
    with ThreadPoolExecutor(WORKER_THREADS) as workers:
        queued_at = time.monotonic()
        sql: list[Future[tuple[float, int, str | None]]] = [
            workers.submit(answered, authorize) for _ in range(SQL_BURST)
        ]
        free = [workers.submit(answered, request) for request in (pending_poll, status, resource)]
        sql_free = [future.result() for future in free]
        sql_answers = [future.result() for future in sql]

    (poll_at, poll_status, poll_error), (status_at, status_code, _), (me_at, me_status, _) = (
        sql_free
    )
    assert (poll_status, poll_error) == (400, "authorization_pending")
    assert status_code == 200
    assert me_status == 200
    for at in (poll_at, status_at, me_at):
        assert at - queued_at < FAST  # never waited for a thread stuck in SQL
    for at, code, error in sql_answers:
        assert (code, error) == (503, "temporarily_unavailable")
        assert at - queued_at < LIMITS.round_trip_timeout + SLACK
    refused_at_once = [at for at, _, _ in sql_answers if at - queued_at < FAST]
    assert len(refused_at_once) >= SQL_BURST - LIMITS.max_threads
    guard = guard_of(h.services.database.engine)
    assert guard is not None and guard.bulkhead.inside == 0

    proxy.restore()
    time.sleep(LIMITS.cooloff)
    assert authorize().status_code == 200  # the same app serves SQL again
