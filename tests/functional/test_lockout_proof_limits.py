"""Rate limits that protect accounts without handing attackers a way to lock owners out.

The README's "Rate limits" is the policy; these tests are its scenarios, through HTTP, on both
backends: many addresses guessing one password, an admin under attack, an office behind one
NAT mistyping codes, a spray of usernames from one address, and outages during sign-in.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from freezegun import freeze_time

from authserver.storage.isolation import BreakerState
from authserver.storage.sql.guard import guard_of
from tests.functional.faults import redis_down, sql_down
from tests.functional.harness import PASSWORD, Harness

FROZEN = "2026-01-01 12:10:00"
ATTEMPTS = 3
MAX_DELAY = 60
ADMIN_PASSWORD = "admin password long enough"


@pytest.fixture
def settings() -> dict[str, Any]:
    return {
        "login_attempts": ATTEMPTS,
        "login_max_delay": MAX_DELAY,
        "user_code_attempts": ATTEMPTS,
        "user_code_attempts_per_ip": 5,
    }


def sign_in(h: Harness, password: str, ip: str, *, username: str = "", cookie: str = "") -> Any:
    body: dict[str, Any] = {
        "username": username or h.username,
        "password": password,
        "device": {"id": f"phone-{ip}", "name": "Phone", "platform": "ios"},
    }
    if cookie:
        body["device_cookie"] = cookie
    return h.http.post("/mobile/v1/sessions", json=body, environ_base={"REMOTE_ADDR": ip})


def admin_sign_in(h: Harness, password: str, ip: str, cookie: str = "") -> Any:
    body = {"username": "root", "password": password}
    if cookie:
        body["device_cookie"] = cookie
    return h.http.post("/admin/v1/auth/token", json=body, environ_base={"REMOTE_ADDR": ip})


def test_failures_from_many_addresses_never_lock_the_owner_out(harness: Harness) -> None:
    with freeze_time(FROZEN) as clock:
        first = sign_in(harness, PASSWORD, "198.51.100.1")
        assert first.status_code == 201
        cookie = first.get_json()["device_cookie"]
        # Ten addresses try three wrong passwords each: thirty failures, ten times the limit.
        answers = [
            sign_in(harness, "wrong password", f"10.0.0.{i}").status_code
            for i in range(10)
            for _ in range(ATTEMPTS)
        ]
        assert set(answers) <= {401, 429} and answers.count(401) >= ATTEMPTS * 3
        # The owner's phone, which signed in before, gets in at once from an 11th address...
        known = sign_in(harness, PASSWORD, "192.0.2.11", cookie=cookie)
        assert known.status_code == 201, known.get_json()
        assert known.get_json()["device_cookie"] == cookie
        # ...and a new device waits at most AUTHSERVER_LOGIN_MAX_DELAY, never a window.
        new_device = sign_in(harness, PASSWORD, "192.0.2.12")
        assert new_device.status_code == 429
        wait = int(new_device.headers["Retry-After"])
        assert 0 < wait <= MAX_DELAY
        clock.tick(wait)
        assert sign_in(harness, PASSWORD, "192.0.2.12").status_code == 201


def test_a_device_cookie_vouches_only_for_its_own_account_and_has_its_own_limit(
    harness: Harness,
) -> None:
    with freeze_time(FROZEN):
        bob = harness.create_user()
        alices = sign_in(harness, PASSWORD, "198.51.100.1").get_json()["device_cookie"]
        for i in range(ATTEMPTS * 3):  # bob's account-wide limit is reached from 9 addresses
            assert sign_in(harness, "wrong", f"10.0.1.{i}", username=bob).status_code == 401
        for cookie in (alices, "forged-" + alices[7:], "short"):
            refused = sign_in(harness, PASSWORD, "198.51.100.1", username=bob, cookie=cookie)
            assert refused.status_code in (400, 429), refused.get_json()
        # Alice's own phone: ATTEMPTS failures of its own, then it is refused like anyone.
        for _ in range(ATTEMPTS):
            assert sign_in(harness, "wrong", "198.51.100.1", cookie=alices).status_code == 401
        assert sign_in(harness, PASSWORD, "198.51.100.1", cookie=alices).status_code == 429


def test_wrong_passwords_cannot_lock_an_admin_out(harness: Harness) -> None:
    harness.services.admin_auth.create("root", ADMIN_PASSWORD)
    with freeze_time(FROZEN):
        first = admin_sign_in(harness, ADMIN_PASSWORD, "198.51.100.1")
        assert first.status_code == 201
        cookie = first.get_json()["device_cookie"]
        answers = [
            admin_sign_in(harness, "wrong password!", f"10.0.2.{i % 10}").status_code
            for i in range(30)
        ]
        assert set(answers) <= {401, 429} and answers.count(401) >= ATTEMPTS * 3
        again = admin_sign_in(harness, ADMIN_PASSWORD, "192.0.2.30", cookie)
        assert again.status_code == 201, again.get_json()
        assert (
            0
            < int(admin_sign_in(harness, ADMIN_PASSWORD, "192.0.2.31").headers["Retry-After"])
            <= MAX_DELAY
        )


def test_colleagues_mistyping_behind_one_address_cannot_block_a_genuine_scan(
    harness: Harness,
) -> None:
    office = {"REMOTE_ADDR": "203.0.113.50"}

    def scan(phone: Any, user_code: str) -> int:
        response = harness.http.post(
            "/mobile/v1/scan",
            json={"user_code": user_code},
            headers=phone.headers(),
            environ_base=office,
        )
        return int(response.status_code)

    with freeze_time(FROZEN):
        phones = [harness.sign_in(f"p{i}", username=harness.create_user()) for i in range(5)]
        # Four colleagues mistype: five wrong codes spend the office's budget.
        for phone, wrong in zip(phones[:4], (2, 2, 1, 0), strict=True):
            assert [scan(phone, "BCDF-GHJK") for _ in range(wrong)] == [404] * wrong
        assert scan(phones[0], "BCDF-GHJK") == 429  # accounts that failed are held back
        assert scan(phones[3], "BCDF-GHJK") == 404  # one that had not: its first counts...
        assert scan(phones[3], "BCDF-GHJK") == 429  # ...and then it is held back too
        genuine = harness.authorize()
        assert scan(phones[4], genuine["user_code"]) == 200  # the fifth's own code


@pytest.mark.parametrize("backend", ["redis+postgres"], indirect=True)
def test_a_refused_spray_of_usernames_stores_nothing(harness: Harness) -> None:
    redis = harness.services.redis
    assert redis is not None
    prefix = harness.services.config.redis_prefix
    answers = [
        sign_in(harness, "wrong", "10.9.9.9", username=f"nobody-{i}").status_code
        for i in range(300)
    ]
    assert answers.count(401) == ATTEMPTS * 3 and answers.count(429) == 300 - ATTEMPTS * 3
    keys = list(redis.scan_iter(match=f"{prefix}rl:*"))
    # The address's counter and two per admitted username: nothing for the refused ones.
    assert len(keys) == 1 + 2 * ATTEMPTS * 3, sorted(keys)


def test_sign_ins_during_an_sql_outage_do_not_count(harness: Harness) -> None:
    with sql_down(harness.services):
        for _ in range(ATTEMPTS + 2):
            assert sign_in(harness, PASSWORD, "198.51.100.7").status_code == 503
    for _ in range(ATTEMPTS - 1):
        assert sign_in(harness, "wrong", "198.51.100.7").status_code == 401
    assert sign_in(harness, PASSWORD, "198.51.100.7").status_code == 201


@pytest.mark.parametrize("backend", ["redis+postgres"], indirect=True)
def test_sign_ins_during_a_redis_outage_do_not_count(harness: Harness) -> None:
    with redis_down(harness.services):
        for _ in range(ATTEMPTS + 2):
            assert sign_in(harness, PASSWORD, "198.51.100.8").status_code == 503
    for _ in range(ATTEMPTS - 1):
        assert sign_in(harness, "wrong", "198.51.100.8").status_code == 401
    assert sign_in(harness, PASSWORD, "198.51.100.8").status_code == 201


@pytest.mark.parametrize("backend", ["redis+postgres"], indirect=True)
def test_sign_ins_the_sql_breaker_refuses_do_not_count(harness: Harness) -> None:
    """A failure the server reports itself (TemporarilyUnavailable, here from the open breaker
    in front of PostgreSQL) is given back like a success."""
    guard = guard_of(harness.services.database.engine)
    assert guard is not None
    guard.breaker.failed()  # as after a statement that ran out its timeout
    for _ in range(ATTEMPTS + 2):
        assert sign_in(harness, PASSWORD, "198.51.100.9").status_code == 503
    deadline = time.monotonic() + 5
    while guard.breaker.state is BreakerState.OPEN:  # its cool-off: at most MAX_COOLOFF
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for _ in range(ATTEMPTS - 1):
        assert sign_in(harness, "wrong", "198.51.100.9").status_code == 401
    assert sign_in(harness, PASSWORD, "198.51.100.9").status_code == 201
