"""AUTHSERVER_REFRESH_GRACE: a refresh whose response was lost on the network does not end the
session; the replaced token rotates once more inside the window, and only once."""

from __future__ import annotations

from typing import Any

import pytest
from freezegun import freeze_time

from tests.functional.harness import Harness

GRACE = 30


@pytest.fixture
def settings() -> dict[str, Any]:
    return {"refresh_grace": GRACE}


def tokens_of(harness: Harness) -> dict[str, Any]:
    started = harness.authorize()
    harness.approve(started)
    issued = harness.poll(started["device_code"])
    assert issued.status_code == 200
    return dict(issued.get_json())


def refreshed(harness: Harness, refresh_token: str) -> dict[str, Any]:
    response = harness.refresh(refresh_token)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def test_the_replaced_token_rotates_once_more_within_the_grace_period(harness: Harness) -> None:
    with freeze_time("2026-06-01 12:00:00") as clock:
        first = tokens_of(harness)["refresh_token"]
        lost = refreshed(harness, first)["refresh_token"]  # this answer never arrived
        clock.tick(GRACE - 1)
        retried = refreshed(harness, first)["refresh_token"]  # the client retries
        assert retried not in (first, lost)
        # The session goes on with the retried answer.
        assert refreshed(harness, retried)["refresh_token"]


def test_the_undelivered_token_is_spent_and_a_second_retry_is_a_replay(harness: Harness) -> None:
    with freeze_time("2026-06-01 12:00:00"):
        first = tokens_of(harness)["refresh_token"]
        lost = refreshed(harness, first)["refresh_token"]
        retried = refreshed(harness, first)["refresh_token"]
        # Once only: the first token again is a replay, which revokes the whole family.
        assert harness.refresh(first).get_json()["error"] == "invalid_grant"
        assert harness.refresh(retried).get_json()["error"] == "invalid_grant"
        assert harness.refresh(lost).get_json()["error"] == "invalid_grant"


def test_the_token_that_was_never_delivered_is_a_replay(harness: Harness) -> None:
    with freeze_time("2026-06-01 12:00:00"):
        first = tokens_of(harness)["refresh_token"]
        lost = refreshed(harness, first)["refresh_token"]
        retried = refreshed(harness, first)["refresh_token"]
        # Whoever holds the superseded answer is not the client that retried: revoke.
        assert harness.refresh(lost).get_json()["error"] == "invalid_grant"
        assert harness.refresh(retried).get_json()["error"] == "invalid_grant"


def test_after_the_grace_period_the_replaced_token_is_a_replay(harness: Harness) -> None:
    with freeze_time("2026-06-01 12:00:00") as clock:
        first = tokens_of(harness)["refresh_token"]
        second = refreshed(harness, first)["refresh_token"]
        clock.tick(GRACE)
        assert harness.refresh(first).get_json()["error"] == "invalid_grant"
        assert harness.refresh(second).get_json()["error"] == "invalid_grant"  # family revoked


def test_an_older_token_is_a_replay_even_inside_the_window(harness: Harness) -> None:
    with freeze_time("2026-06-01 12:00:00"):
        first = tokens_of(harness)["refresh_token"]
        second = refreshed(harness, first)["refresh_token"]
        third = refreshed(harness, second)["refresh_token"]
        # `first` is two rotations old: spent, not "previous".
        assert harness.refresh(first).get_json()["error"] == "invalid_grant"
        assert harness.refresh(third).get_json()["error"] == "invalid_grant"
