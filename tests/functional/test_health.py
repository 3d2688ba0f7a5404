"""/healthz and /readyz: what load balancers see, with the dependencies up, down and hung.

Each state is read from a fresh app (the readiness result is cached for a second per app);
the Readiness class itself is tested with checks that hang or fail on purpose and a frozen
clock, so no test waits out a real timeout (the hung check is given 0.2 s).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from freezegun import freeze_time
from werkzeug.test import TestResponse

from authserver import create_app
from authserver.web.health import OK, Readiness
from tests.functional.faults import redis_down, sql_down
from tests.functional.harness import Harness

LOAD_BALANCER = {"Host": "10.0.0.5:8000"}  # probes name the backend by its address


def fresh(harness: Harness) -> FlaskClient:
    """A new app on the same services: no readiness result cached yet."""
    return create_app(services=harness.services).test_client()


def probe(http: FlaskClient, path: str) -> TestResponse:
    response = http.get(path, headers=LOAD_BALANCER)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    return response


def expected_checks(harness: Harness, **states: str) -> dict[str, str]:
    checks = {"database": OK, "schema": OK}
    if harness.services.redis is not None:
        checks["redis"] = OK
    return {**checks, **states}


def test_liveness_asks_no_dependency(harness: Harness) -> None:
    http = fresh(harness)
    assert probe(http, "/healthz").get_json() == {"status": "ok"}
    with sql_down(harness.services):
        response = probe(http, "/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_ready_when_everything_answers(harness: Harness) -> None:
    response = probe(fresh(harness), "/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": expected_checks(harness)}


def test_not_ready_while_the_database_is_down_then_ready_again(harness: Harness) -> None:
    with sql_down(harness.services):
        response = probe(fresh(harness), "/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "checks": expected_checks(harness, database="unavailable", schema="unknown"),
    }
    for internal in ("psycopg", "sqlite", "Error", "5432", "nonexistent"):
        assert internal not in response.get_data(as_text=True)
    assert probe(fresh(harness), "/readyz").status_code == 200


def test_not_ready_on_a_schema_the_code_does_not_expect(harness: Harness) -> None:
    """After a deploy whose migration has not run (or ran for newer code)."""
    engine = harness.services.database.engine
    with engine.begin() as conn:
        (revision,) = conn.execute(sa.text("SELECT version_num FROM alembic_version")).one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'someoldrev'"))
    try:
        response = probe(fresh(harness), "/readyz")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    assert response.status_code == 503
    assert response.get_json()["checks"] == expected_checks(harness, schema="mismatch")


@pytest.mark.parametrize("backend", ["redis+postgres"], indirect=True)
def test_not_ready_while_redis_is_down(harness: Harness) -> None:
    with redis_down(harness.services):
        response = probe(fresh(harness), "/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "checks": {"database": OK, "schema": OK, "redis": "unavailable"},
    }


def test_readiness_costs_one_connection_and_at_most_two_statements(harness: Harness) -> None:
    """A probe is cheap, and a flood of them within a second costs no more than one."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        # SQLite's BEGIN IMMEDIATE (storage/sql/database.py) is transaction control, not work.
        if not str(args[2]).startswith("BEGIN"):
            statements.append(str(args[2]))

    engine = harness.services.database.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        http = fresh(harness)
        for _ in range(20):
            assert probe(http, "/readyz").status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert 1 <= len(statements) <= 2, statements


def test_health_endpoints_answer_any_host_and_nothing_else_does(harness: Harness) -> None:
    http = fresh(harness)
    for host in ("10.0.0.5:8000", "[fd00::5]:8000", "backend-7", "evil.example"):
        assert http.get("/healthz", headers={"Host": host}).status_code == 200, host
        assert http.get("/readyz", headers={"Host": host}).status_code == 200, host
        refused = http.get("/oauth/jwks", headers={"Host": host})
        assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"


# --- The Readiness class ---------------------------------------------------------------------
def test_a_hung_check_is_a_timeout_and_is_never_started_twice() -> None:
    release = threading.Event()
    calls: list[str] = []

    def hung() -> dict[str, str]:
        calls.append("database")
        release.wait(10)
        return {"database": OK}

    def fine() -> dict[str, str]:
        calls.append("redis")
        return {"redis": OK}

    readiness = Readiness(
        {
            "database": (hung, {"database": "unavailable", "schema": "unknown"}),
            "redis": (fine, {"redis": "unavailable"}),
        },
        timeout=0.2,
        cache_for=0,
    )
    try:
        first = readiness.run()
        second = readiness.run()  # the first database check still hangs: waited on, not rerun
    finally:
        release.set()
    assert first == second == {"database": "timeout", "schema": "unknown", "redis": OK}
    assert calls.count("database") == 1 and calls.count("redis") == 2
    for thread in threading.enumerate():
        if thread.name == "readyz-database":
            thread.join(5)  # the released check has finished
    # Once it has returned, the next probe runs it afresh.
    assert readiness.run() == {"database": OK, "redis": OK}
    assert calls.count("database") == 2


def test_a_failing_check_reports_its_names_and_results_are_cached_briefly() -> None:
    calls: list[int] = []

    def failing() -> dict[str, str]:
        calls.append(1)
        raise ConnectionRefusedError("no")

    readiness = Readiness(
        {"database": (failing, {"database": "unavailable", "schema": "unknown"})},
        timeout=1.0,
        cache_for=1.0,
    )
    with freeze_time("2026-01-01 12:00:00") as frozen:
        assert readiness.run() == {"database": "unavailable", "schema": "unknown"}
        frozen.tick(0.5)
        readiness.run()
        assert len(calls) == 1  # within a second: the cached answer
        frozen.tick(1.0)
        readiness.run()
        assert len(calls) == 2
