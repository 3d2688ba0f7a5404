"""The polling path is cheap by design: a pending poll is one Redis round trip and no SQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from authserver import create_app
from authserver.domain.models import Actor, FamilyFilter
from tests.functional.harness import Harness, make_services


@contextmanager
def counting(services: Any) -> Iterator[dict[str, int]]:
    """Count Redis commands sent by the app's client and SQL statements on its engine."""
    counts = {"redis": 0, "sql": 0}
    client = services.redis
    original = client.execute_command if client is not None else None

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts["redis"] += 1
        return original(*args, **kwargs)  # type: ignore[misc]

    def on_sql(*_: Any) -> None:
        counts["sql"] += 1

    if client is not None:
        client.execute_command = counted
    sa.event.listen(services.database.engine, "before_cursor_execute", on_sql)
    try:
        yield counts
    finally:
        sa.event.remove(services.database.engine, "before_cursor_execute", on_sql)
        if client is not None:
            client.execute_command = original


@pytest.fixture
def redis_harness(postgres_url: str, redis_url: str, redis_prefix: str) -> Iterator[Harness]:
    services = make_services(postgres_url, redis_url, redis_prefix)
    client, _ = services.clients.create("PC", confidential=False, scope=None)
    yield Harness(create_app(services=services).test_client(), services, client.client_id, "")
    services.close()


def test_pending_and_slow_down_polls_cost_one_redis_round_trip_and_no_sql(
    redis_harness: Harness,
) -> None:
    with freeze_time("2026-01-01 12:00:00") as frozen:
        code = redis_harness.authorize()["device_code"]
        redis_harness.poll(code)  # loads the Lua script into Redis once
        for expected, step in (("authorization_pending", 5), ("slow_down", 1)):
            frozen.tick(step)
            with counting(redis_harness.services) as counts:
                answer = redis_harness.poll(code).get_json()["error"]
            assert answer == expected
            assert counts == {"redis": 1, "sql": 0}, f"{expected}: {counts}"


def test_scanned_poll_is_as_cheap_as_a_pending_one(redis_harness: Harness) -> None:
    with freeze_time("2026-01-01 12:00:00") as frozen:
        started = redis_harness.authorize()
        phone = redis_harness.sign_in(username=redis_harness.create_user())
        assert redis_harness.scan(phone, user_code=started["user_code"]).status_code == 200
        redis_harness.poll(started["device_code"])
        frozen.tick(5)
        with counting(redis_harness.services) as counts:
            answer = redis_harness.poll(started["device_code"]).get_json()["error"]
        assert answer == "authorization_pending"
        assert counts == {"redis": 1, "sql": 0}


def test_embedded_store_pending_poll_runs_no_sql(sqlite_url: str) -> None:
    services = make_services(sqlite_url, None, "x:")
    client, _ = services.clients.create("PC", confidential=False, scope=None)
    harness = Harness(create_app(services=services).test_client(), services, client.client_id, "")
    code = harness.authorize()["device_code"]
    with counting(services) as counts:
        assert harness.poll(code).get_json()["error"] == "authorization_pending"
    assert counts["sql"] == 0
    services.close()


def test_checking_an_access_token_costs_one_redis_round_trip_and_no_sql(
    redis_harness: Harness,
) -> None:
    """What a resource server pays per request: a local signature check and one deny-list read."""
    harness = redis_harness
    with freeze_time("2026-01-01 12:00:00"):
        harness.username = harness.create_user()
        started = harness.authorize(scope="email")  # no profile: /me then reads no user row
        harness.approve(started)
        access = harness.poll(started["device_code"]).get_json()["access_token"]
        bearer = {"Authorization": f"Bearer {access}"}
        assert harness.http.get("/api/v1/me", headers=bearer).status_code == 200  # warm up
        with counting(harness.services) as counts:
            assert harness.http.get("/api/v1/me", headers=bearer).status_code == 200
        assert counts == {"redis": 1, "sql": 0}
        # Revoked: refused, and still without SQL.
        family = harness.services.administration.sessions(
            FamilyFilter(client_id=harness.client_id), 1
        )[0].family
        harness.services.revocations.revoke_family(family, "test", Actor("system"), "")
        with counting(harness.services) as counts:
            assert harness.http.get("/api/v1/me", headers=bearer).status_code == 401
        assert counts == {"redis": 1, "sql": 0}
