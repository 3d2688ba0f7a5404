"""An approved login ends in tokens delivered once, or a clear terminal error: never stranded.

Each test breaks the redemption at one moment (before the commit, after it, at the store's
settlement) the way a dead worker or a failing dependency would, then lets time pass the claim's
lease with freezegun and checks what the PC and its status channel see next.
"""

from __future__ import annotations

from typing import Any

import pytest
from freezegun import freeze_time

from authserver.domain.flow import DEFAULT_REDEMPTION_LEASE
from authserver.domain.models import FamilyFilter
from tests.functional.harness import Harness

LEASE = DEFAULT_REDEMPTION_LEASE


class Died(Exception):
    """A worker dying mid-request: nothing after this point runs."""


def families(h: Harness) -> list[Any]:
    return h.services.administration.sessions(FamilyFilter(client_id=h.client_id))


def status(h: Harness, started: dict[str, Any]) -> str:
    return str(h.status(started["device_code"]).get_json()["status"])


def test_a_claim_whose_worker_died_before_the_commit_lapses_and_the_next_poll_gets_the_tokens(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    with freeze_time("2026-06-01 12:00:00") as clock:
        started = harness.authorize()
        harness.approve(started)
        store = harness.services.device_grant._store
        with monkeypatch.context() as patch:
            # The worker dies inside the unit of work, and cannot give the claim back either.
            patch.setattr(harness.services.minter, "issue", _die)
            patch.setattr(store, "settle_claim", _die)
            dead = harness.poll(started["device_code"])
            assert dead.status_code == 500  # the worker never answered
        assert families(harness) == []
        # Until the lease lapses the PC is told to keep polling; the screen says approved.
        clock.tick(LEASE - 1)
        assert harness.poll(started["device_code"]).get_json()["error"] == "authorization_pending"
        assert status(harness, started) == "approved"
        clock.tick(1)
        issued = harness.poll(started["device_code"])
        assert issued.status_code == 200, issued.get_json()
        assert len(families(harness)) == 1
        assert harness.poll(started["device_code"]).get_json()["error"] == "invalid_grant"


def test_a_failed_commit_gives_the_claim_back_at_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = harness.authorize()
    harness.approve(started)
    with monkeypatch.context() as patch:
        patch.setattr(harness.services.minter, "issue", _die)
        dead = harness.poll(started["device_code"])
        assert dead.status_code == 500  # the worker never answered
    # Given back: the very next poll claims again and gets the tokens, no lease to wait out.
    assert harness.poll(started["device_code"]).status_code == 200
    assert len(families(harness)) == 1


def test_tokens_committed_by_a_claim_that_never_finished_are_voided_not_issued_twice(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker committed the tokens, then died before answering and before marking the flow
    issued. Nobody knows whether the PC got them: the next claim finds them in SQL, revokes them
    and ends the flow; both channels say the login is over."""
    with freeze_time("2026-06-01 12:00:00") as clock:
        started = harness.authorize()
        harness.approve(started)
        issue = harness.services.minter.issue
        delivered: list[Any] = []

        def issue_and_keep(family: Any) -> Any:
            delivered.append(issue(family))
            return delivered[-1]

        with monkeypatch.context() as patch:
            patch.setattr(harness.services.minter, "issue", issue_and_keep)
            # It dies right after the commit: before settling the claim and answering.
            patch.setattr(harness.services.device_grant, "_settle", _die)
            dead = harness.poll(started["device_code"])
            assert dead.status_code == 500  # the worker never answered
        (family,) = families(harness)
        assert family.family.revoked_at is None  # committed, not yet known to be lost
        clock.tick(LEASE)
        ended = harness.poll(started["device_code"])
        assert ended.status_code == 400
        assert ended.get_json()["error"] == "expired_token"
        assert status(harness, started) == "expired"
        (family,) = families(harness)  # still the one family: nothing issued twice
        assert family.family.revoked_reason == "redemption_voided"
        # The tokens the dead worker minted are dead too, should they have been delivered.
        tokens = delivered[0]
        assert harness.refresh(tokens.refresh_token).get_json()["error"] == "invalid_grant"
        bearer = {"Authorization": f"Bearer {tokens.access_token}"}
        assert harness.http.get("/api/v1/me", headers=bearer).status_code == 401
        # And it stays over.
        assert harness.poll(started["device_code"]).get_json()["error"] == "expired_token"


def test_tokens_reach_the_pc_even_if_the_store_cannot_mark_the_flow_issued(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis fails after the commit: the PC still gets its tokens; a later replay of the code is
    caught through SQL."""
    with freeze_time("2026-06-01 12:00:00") as clock:
        started = harness.authorize()
        harness.approve(started)
        store = harness.services.device_grant._store
        with monkeypatch.context() as patch:
            patch.setattr(store, "settle_claim", _fail)
            issued = harness.poll(started["device_code"])
        assert issued.status_code == 200, issued.get_json()
        clock.tick(LEASE)
        replay = harness.poll(started["device_code"])
        assert replay.get_json()["error"] == "expired_token"  # the code's login is over
        (family,) = families(harness)
        assert family.family.revoked_at is not None  # a second use revokes what was issued


def test_a_late_claim_that_nobody_redeems_lapses(harness: Harness) -> None:
    """Redis ran the claim after the caller had given up (its answer was lost): the claim is
    harmless, it lapses and the PC's next poll after the lease gets the tokens."""
    with freeze_time("2026-06-01 12:00:00") as clock:
        started = harness.authorize()
        harness.approve(started)
        store = harness.services.device_grant._store
        lost = store.poll(
            _hash(started["device_code"]),
            clock.time_to_freeze.timestamp(),
            client_id=harness.client_id,
            client_secret_hash="",
            lease=LEASE,
        )
        assert lost.outcome.value == "redeem"  # claimed, and nobody will ever settle it
        assert harness.poll(started["device_code"]).get_json()["error"] == "authorization_pending"
        clock.tick(LEASE)
        assert harness.poll(started["device_code"]).status_code == 200


def _hash(device_code: str) -> str:
    from authserver.domain.codes import hash_secret

    return hash_secret(device_code)


def _die(*_: Any, **__: Any) -> Any:
    raise Died()


def _fail(*_: Any, **__: Any) -> Any:
    raise ConnectionError("the flow store is unreachable")
