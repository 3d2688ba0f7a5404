"""An approval that was revoked before the PC redeemed it never becomes a session."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from authserver.domain.models import Admin, AuditFilter, FamilyFilter
from tests.functional.harness import Harness, Phone


def make_admin(harness: Harness) -> Admin:
    return harness.services.admin_auth.create(f"ops-{uuid.uuid4().hex[:6]}", "admin password 123")


def phone_row_id(harness: Harness) -> str:
    user = harness.services.accounts.find_user(harness.username)
    assert user is not None
    return harness.services.accounts.devices_of(user.user_id)[0].id


def assert_denied(response: Any) -> None:
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "access_denied"


def families(harness: Harness) -> list[Any]:
    return harness.services.administration.sessions(FamilyFilter(client_id=harness.client_id))


def test_revoking_the_approving_phone_withdraws_an_unredeemed_approval(harness: Harness) -> None:
    started = harness.authorize()
    harness.approve(started)  # approved, but the PC has not polled yet
    harness.services.administration.revoke_device_sessions(
        phone_row_id(harness), make_admin(harness), "198.51.100.1"
    )
    assert_denied(harness.poll(started["device_code"]))
    assert_denied(harness.poll(started["device_code"]))  # withdrawn for good, not retried
    assert families(harness) == []
    events = harness.services.auditor.query(AuditFilter(client_id=harness.client_id))
    assert "flow.withdrawn" in [e.event for e in events]


def test_a_user_wide_revocation_voids_approvals_not_yet_redeemed(harness: Harness) -> None:
    started = harness.authorize()
    harness.approve(started)
    user = harness.services.accounts.find_user(harness.username)
    assert user is not None
    harness.services.administration.revoke_user_sessions(
        user.user_id, make_admin(harness), "198.51.100.1"
    )
    assert_denied(harness.poll(started["device_code"]))
    # A login started after the revocation works as usual.
    later = harness.authorize()
    harness.approve(later, Phone(*harness_phone(harness)))
    assert harness.poll(later["device_code"]).status_code == 200


def harness_phone(harness: Harness) -> tuple[str, str]:
    phone = harness.sign_in(device_id=f"phone-{uuid.uuid4().hex[:6]}")
    return phone.token, phone.device_id


def test_a_revocation_that_races_the_redemption_waits_for_it_then_revokes_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phone is revoked while the redemption's unit of work is open: the revocation waits
    for the rows the redemption holds (PostgreSQL row locks, SQLite's write lock), then sees
    and revokes the new family, so the approval never outlives the revocation."""
    started = harness.authorize()
    harness.approve(started)
    admin = make_admin(harness)
    device_row = phone_row_id(harness)
    minter = harness.services.minter
    issue = minter.issue
    racers: list[threading.Thread] = []

    def revoke_meanwhile(family: Any) -> Any:
        racer = threading.Thread(
            target=harness.services.administration.revoke_device_sessions,
            args=(device_row, admin, "198.51.100.1"),
        )
        racer.start()
        racer.join(0.5)
        assert racer.is_alive(), "the revocation did not wait for the redemption"
        racers.append(racer)
        return issue(family)

    monkeypatch.setattr(minter, "issue", revoke_meanwhile)
    redeemed = harness.poll(started["device_code"])
    assert redeemed.status_code == 200, redeemed.get_json()
    racers[0].join(10)
    (session,) = families(harness)
    assert session.family.revoked_at is not None and session.family.revoked_reason == "admin"
    # Whatever was issued is dead: the refresh token, and the access token through its session.
    tokens = redeemed.get_json()
    assert harness.refresh(tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert harness.http.get("/api/v1/me", headers=bearer).status_code == 401
    # Later polls are replays of a redeemed code: invalid_grant, never tokens.
    assert harness.poll(started["device_code"]).get_json()["error"] == "invalid_grant"


def test_a_revocation_that_commits_first_withdraws_the_approval(harness: Harness) -> None:
    """The revocation holds its rows when the PC polls: the redemption waits for it, then reads
    the phone as revoked and refuses; nothing was issued."""
    started = harness.authorize()
    harness.approve(started)
    admin = make_admin(harness)
    device_row = phone_row_id(harness)
    polled: list[Any] = []

    def poll() -> None:
        client = harness.http.application.test_client()
        polled.append(
            client.post(
                "/oauth/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "device_code": started["device_code"],
                    "client_id": harness.client_id,
                },
            )
        )

    poller = threading.Thread(target=poll)
    with harness.services.database.transaction():
        # The revocation's unit of work holds the phone's row until it commits.
        harness.services.administration.revoke_device_sessions(device_row, admin, "198.51.100.1")
        poller.start()
        poller.join(0.5)
        assert poller.is_alive(), "the redemption did not wait for the revocation"
    poller.join(10)
    assert_denied(polled[0])
    assert families(harness) == []


def test_disabling_the_client_before_redemption_refuses_the_tokens(harness: Harness) -> None:
    started = harness.authorize()
    harness.approve(started)
    harness.services.administration.set_client_enabled(
        harness.client_id, False, make_admin(harness), "198.51.100.1"
    )
    response = harness.poll(started["device_code"])
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert families(harness) == []


def test_an_approval_does_not_outlive_a_client_disable(harness: Harness) -> None:
    """Disabled, then re-enabled: a flow approved before the disable stays refused."""
    started = harness.authorize()
    harness.approve(started)
    admin = make_admin(harness)
    administration = harness.services.administration
    administration.set_client_enabled(harness.client_id, False, admin, "198.51.100.1")
    administration.set_client_enabled(harness.client_id, True, admin, "198.51.100.1")
    assert_denied(harness.poll(started["device_code"]))
    assert families(harness) == []
    # A login started after the re-enable works.
    later = harness.authorize()
    harness.approve(later, Phone(*harness_phone(harness)))
    assert harness.poll(later["device_code"]).status_code == 200


def test_revoking_all_of_a_clients_sessions_voids_its_unredeemed_approvals(
    harness: Harness,
) -> None:
    started = harness.authorize()
    harness.approve(started)
    harness.services.administration.revoke_client_sessions(
        harness.client_id, make_admin(harness), "198.51.100.1"
    )
    assert_denied(harness.poll(started["device_code"]))
