"""What a whole QR login costs the database: one commit per step, a handful of statements.

Counted on PostgreSQL + Redis, the production set-up, with the caches warm (client rows and
signing keys are cached with a bounded staleness). The phone's one-time sign-in is not part of
a login: a phone signs in once and then approves many.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from authserver import create_app
from tests.functional.harness import Harness, make_services
from tests.functional.test_polling_cost import counting

# Issue 9's budget for device authorization -> scan -> confirm -> token: 8, plus one indexed
# read of the user's recent logins for the scan's "first sign-in from this place" (issue 11).
LOGIN_STATEMENTS = 9
LOGIN_COMMITS = 4


@contextmanager
def counting_commits(services: Any) -> Iterator[dict[str, int]]:
    counts = {"commits": 0}

    def on_commit(*_: Any) -> None:
        counts["commits"] += 1

    sa.event.listen(services.database.engine, "commit", on_commit)
    try:
        yield counts
    finally:
        sa.event.remove(services.database.engine, "commit", on_commit)


@pytest.fixture
def production(postgres_url: str, redis_url: str, redis_prefix: str) -> Iterator[Harness]:
    services = make_services(postgres_url, redis_url, redis_prefix)
    client, _ = services.clients.create("PC", confidential=False, scope="profile email")
    h = Harness(create_app(services=services).test_client(), services, client.client_id, "")
    h.username = h.create_user()
    yield h
    services.close()


def login(h: Harness, phone: Any) -> dict[str, Any]:
    started = h.authorize()
    h.approve(started, phone)
    issued = h.poll(started["device_code"])
    assert issued.status_code == 200, issued.get_json()
    return dict(issued.get_json())


def test_a_whole_login_is_one_commit_per_step_and_at_most_nine_statements(
    production: Harness,
) -> None:
    phone = production.sign_in()
    login(production, phone)  # warm: the key ring, the client cache, the Lua scripts
    with counting(production.services) as statements, counting_commits(production.services) as c:
        tokens = login(production, phone)
    assert tokens["access_token"] and tokens["refresh_token"]
    assert c["commits"] <= LOGIN_COMMITS, c
    assert statements["sql"] <= LOGIN_STATEMENTS, statements


def test_a_device_authorization_commits_once(production: Harness) -> None:
    production.authorize()  # warm
    with counting(production.services) as statements, counting_commits(production.services) as c:
        production.authorize()
    assert c["commits"] == 1
    assert statements["sql"] == 1  # its audit row


def test_each_phone_step_and_the_redemption_commit_once(production: Harness) -> None:
    phone = production.sign_in()
    login(production, phone)  # warm
    started = production.authorize()
    services = production.services
    with counting_commits(services) as c:
        scanned = production.scan(phone, qr=started["verification_uri_complete"])
    assert scanned.status_code == 200 and c["commits"] == 1
    with counting_commits(services) as c:
        production.decide(phone, scanned.get_json()["confirm_token"])
    assert c["commits"] == 1
    with counting_commits(services) as c:
        assert production.poll(started["device_code"]).status_code == 200
    assert c["commits"] == 1


def test_a_refresh_is_one_commit(production: Harness) -> None:
    tokens = login(production, production.sign_in())
    with counting(production.services) as statements, counting_commits(production.services) as c:
        refreshed = production.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()
    assert c["commits"] == 1
    assert statements["sql"] <= 4  # look up (locked), spend the previous, rotate, audit


def test_an_openid_login_costs_the_same_and_its_refresh_one_read_more(
    production: Harness,
) -> None:
    client, _ = production.services.clients.create("OIDC PC", confidential=False, scope=None)
    production.client_id = client.client_id
    phone = production.sign_in()

    def oidc_login() -> dict[str, Any]:
        started = production.authorize(scope="openid profile email offline_access")
        production.approve(started, phone)
        issued = production.poll(started["device_code"])
        assert issued.status_code == 200, issued.get_json()
        return dict(issued.get_json())

    oidc_login()  # warm
    with counting(production.services) as statements, counting_commits(production.services) as c:
        tokens = oidc_login()
    # The ID token's user is the one the redemption reads anyway (locked, with the phone).
    assert tokens["id_token"] and tokens["refresh_token"]
    assert c["commits"] <= LOGIN_COMMITS, c
    assert statements["sql"] <= LOGIN_STATEMENTS, statements
    with counting(production.services) as statements, counting_commits(production.services) as c:
        refreshed = production.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200 and refreshed.get_json()["id_token"]
    assert c["commits"] == 1
    assert statements["sql"] <= 5  # a refresh's four, and the user the ID token describes
