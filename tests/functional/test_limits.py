"""Guards against floods and races: rate limits reserve first, long-polls are capped."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import pytest

from authserver.domain.models import AuditFilter
from authserver.domain.text import printable
from tests.functional.harness import PASSWORD, Harness, basic


@pytest.fixture
def settings() -> dict[str, Any]:
    return {
        "login_attempts": 3,
        "user_code_attempts": 3,
        "device_authorizations_per_minute": 5,
        "status_max_waiters": 1,
    }


def parallel(n: int, call: Any) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(_: int) -> Any:
        barrier.wait()
        return call()

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_parallel_wrong_passwords_cannot_slip_past_the_limit(harness: Harness) -> None:
    app = harness.http.application

    def wrong_login() -> int:
        return (
            app.test_client()
            .post(
                "/mobile/v1/sessions",
                json={
                    "username": harness.username,
                    "password": "not the password",
                    "device": {"id": "d", "name": "n", "platform": "ios"},
                },
            )
            .status_code
        )

    codes = parallel(12, wrong_login)
    # Never more than the limit is evaluated. (A thread refused by the per-IP ceiling gives its
    # per-user slot back; if nobody takes it, fewer than 3 are evaluated: safe, not exact.)
    assert 1 <= codes.count(401) <= 3
    assert codes.count(401) + codes.count(429) == 12
    # Use up whatever the burst left, one at a time: then the limit is exactly reached.
    for _ in range(3 - codes.count(401)):
        assert wrong_login() == 401
    assert wrong_login() == 429
    # Locked for this username from this IP, even with the right password...
    right = harness.http.post(
        "/mobile/v1/sessions",
        json={
            "username": harness.username,
            "password": PASSWORD,
            "device": {"id": "d", "name": "n", "platform": "ios"},
        },
    )
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
    # ...but not from another IP: an attacker cannot lock the victim out everywhere.
    elsewhere = harness.http.post(
        "/mobile/v1/sessions",
        json={
            "username": harness.username,
            "password": PASSWORD,
            "device": {"id": "d", "name": "n", "platform": "ios"},
        },
        environ_base={"REMOTE_ADDR": "198.51.100.9"},
    )
    assert elsewhere.status_code == 201


def test_parallel_wrong_user_codes_cannot_slip_past_the_limit(harness: Harness) -> None:
    phone = harness.sign_in()
    app = harness.http.application

    def guess() -> int:
        return (
            app.test_client()
            .post("/mobile/v1/scan", json={"user_code": "BCDF-GHJK"}, headers=phone.headers())
            .status_code
        )

    codes = parallel(10, guess)
    assert codes.count(404) == 3 and codes.count(429) == 7
    started = harness.authorize()
    assert harness.scan(phone, user_code=started["user_code"]).status_code == 429


def test_successes_do_not_use_up_the_user_code_limit(harness: Harness) -> None:
    phone = harness.sign_in()
    for _ in range(5):  # more successes than the limit of 3
        started = harness.authorize()
        assert harness.scan(phone, user_code=started["user_code"]).status_code == 200


def test_device_authorization_is_rate_limited_per_client_and_ip(harness: Harness) -> None:
    for _ in range(5):
        harness.authorize()
    flood = harness.http.post(
        "/oauth/device_authorization",
        data={"client_id": harness.client_id},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert flood.status_code == 429 and flood.get_json()["error"] == "rate_limited"
    other_ip = harness.http.post(
        "/oauth/device_authorization",
        data={"client_id": harness.client_id},
        environ_base={"REMOTE_ADDR": "192.0.2.55"},
    )
    assert other_ip.status_code == 200


def test_long_polls_are_capped_so_they_cannot_hold_every_thread(harness: Harness) -> None:
    first, second = harness.authorize(), harness.authorize()
    app = harness.http.application
    holder = threading.Thread(
        target=lambda: app.test_client().post(
            "/oauth/device_status",
            data={
                "device_code": first["device_code"],
                "client_id": harness.client_id,
                "status": "pending",
                "wait": "1.5",
            },
        )
    )
    holder.start()
    time.sleep(0.3)  # let the holder take the only waiting slot (this tests blocking, not time)
    started = time.monotonic()
    for code in (first["device_code"], second["device_code"]):  # same code, and any other
        answer = harness.status(code, status="pending", wait="5")
        assert answer.get_json()["status"] == "pending"
    assert time.monotonic() - started < 1.0  # answered at once, not after 5 s
    holder.join()


def test_status_channel_authenticates_confidential_clients(harness: Harness) -> None:
    client_id, secret = harness.create_client(confidential=True)
    started = harness.http.post(
        "/oauth/device_authorization", headers=basic(client_id, secret)
    ).get_json()
    ok = harness.http.post(
        "/oauth/device_status",
        data={"device_code": started["device_code"]},
        headers=basic(client_id, secret),
    )
    assert ok.get_json()["status"] == "pending"
    for headers, data in (
        (basic(client_id, "wrong"), {}),
        ({}, {"client_id": client_id}),
    ):
        refused = harness.http.post(
            "/oauth/device_status",
            data={"device_code": started["device_code"], **data},
            headers=headers,
        )
        assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"


def test_approval_screen_user_agent_is_made_printable(harness: Harness) -> None:
    response = harness.http.post(
        "/oauth/device_authorization",
        data={"client_id": harness.client_id},
        headers={"User-Agent": "Evil\u202e kcatta\u0007" + "x" * 400},
    )
    started = response.get_json()
    screen = harness.scan(harness.sign_in(), user_code=started["user_code"]).get_json()
    assert "kcatta" not in str(screen)  # never the raw text: only family names
    assert screen["requesting_device"]["device_says"] == "an unknown device"
    # What is stored (and shown to admins on hover) is printable and bounded.
    stored = next(
        e.detail["user_agent"]
        for e in harness.services.auditor.query(AuditFilter(event="flow.created", limit=5))
        if "kcatta" in str(e.detail.get("user_agent", ""))
    )
    assert "\u202e" not in stored and "\u0007" not in stored and len(stored) == 200
    assert printable("a\u200bb\tc", 10) == "abc"
