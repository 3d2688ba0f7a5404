"""Fixtures: the HTTP harness on each real backend pair."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from authserver import create_app
from tests.functional.harness import PASSWORD, Harness, make_services


@pytest.fixture(params=["embedded+sqlite", "redis+postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None, str]:
    """(database URL, Redis URL or None, Redis key prefix) for each backend pair."""
    if request.param == "embedded+sqlite":
        return request.getfixturevalue("sqlite_url"), None, "x:"
    return (
        request.getfixturevalue("postgres_url"),
        request.getfixturevalue("redis_url"),
        request.getfixturevalue("redis_prefix"),
    )


@pytest.fixture
def settings() -> dict[str, Any]:
    """Config overrides; a test module can override this fixture."""
    return {}


@pytest.fixture
def harness(backend: tuple[str, str | None, str], settings: dict[str, Any]) -> Iterator[Harness]:
    services = make_services(*backend, **settings)
    app = create_app(services=services)
    client, _ = services.clients.create("Test PC app", confidential=False, scope="profile email")
    username = f"alice-{uuid.uuid4().hex[:6]}"
    services.accounts.create_user(username, PASSWORD, "Alice Liddell")
    yield Harness(app.test_client(), services, client.client_id, username)
    services.close()
