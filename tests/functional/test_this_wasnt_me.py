""" "This wasn't me": the phone lists the user's signed-in computers, ends one or reports one."""

from __future__ import annotations

from typing import Any

import jwt

from authserver.domain.models import AuditFilter
from tests.functional.harness import Harness, Phone
from tests.functional.lifecycle import introspection


def signed_in_pc(h: Harness, phone: Phone) -> tuple[dict[str, Any], dict[str, Any]]:
    started = h.authorize(scope="profile")
    h.approve(started, phone)
    tokens = h.poll(started["device_code"]).get_json()
    return started, dict(tokens)


def logins(h: Harness, phone: Phone) -> list[dict[str, Any]]:
    response = h.http.get("/mobile/v1/logins", headers=phone.headers())
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return list(response.get_json()["logins"])


def assert_dead(h: Harness, started: dict[str, Any], tokens: dict[str, Any]) -> None:
    me = h.http.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 401
    assert h.refresh(tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert introspection(h, tokens["access_token"]) == {"active": False}
    # The device code can never be redeemed again.
    assert h.poll(started["device_code"]).get_json()["error"] == "invalid_grant"


def test_the_phone_lists_the_users_signed_in_computers(harness: Harness) -> None:
    phone, other_phone = harness.sign_in("phone-a"), harness.sign_in("phone-b")
    signed_in_pc(harness, phone)
    signed_in_pc(harness, other_phone)
    listed = logins(harness, phone)
    assert len(listed) == 2
    assert {login["approved_by"]["this_phone"] for login in listed} == {True, False}
    first = listed[0]
    assert first["client"] == {"client_id": harness.client_id, "name": "Test PC app"}
    assert first["requesting_device"]["ip"] == "203.0.113.7"
    assert first["requesting_device"]["device_says"]
    assert first["approved_by"]["name"] == "Test phone"


def test_ending_a_login_kills_its_tokens(harness: Harness) -> None:
    phone = harness.sign_in()
    started, tokens = signed_in_pc(harness, phone)
    login_id = logins(harness, phone)[0]["id"]
    ended = harness.http.delete(f"/mobile/v1/logins/{login_id}", headers=phone.headers())
    assert ended.status_code == 204
    assert_dead(harness, started, tokens)
    assert logins(harness, phone) == []


def test_a_report_kills_the_login_and_says_so_to_admins(harness: Harness) -> None:
    phone = harness.sign_in()
    started, tokens = signed_in_pc(harness, phone)
    _, kept = signed_in_pc(harness, phone)
    reported_id = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
    assert reported_id in [login["id"] for login in logins(harness, phone)]
    reported = harness.http.post(f"/mobile/v1/logins/{reported_id}/report", headers=phone.headers())
    assert reported.status_code == 204
    assert_dead(harness, started, tokens)
    # Only that login: the other one lives on.
    assert harness.refresh(kept["refresh_token"]).status_code == 200
    events = harness.services.auditor.query(AuditFilter(family_id=reported_id))
    assert "login.reported" in [str(e.event) for e in events]
    family = harness.services.administration.session(reported_id).family
    assert family.revoked_reason == "reported_by_user"


def test_another_users_login_is_unknown(harness: Harness) -> None:
    phone = harness.sign_in()
    signed_in_pc(harness, phone)
    login_id = logins(harness, phone)[0]["id"]
    stranger = harness.sign_in("phone-x", username=harness.create_user())
    for response in (
        harness.http.delete(f"/mobile/v1/logins/{login_id}", headers=stranger.headers()),
        harness.http.post(f"/mobile/v1/logins/{login_id}/report", headers=stranger.headers()),
        harness.http.delete("/mobile/v1/logins/no-such-id", headers=phone.headers()),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"] == "not_found"
    assert logins(harness, phone)[0]["id"] == login_id  # untouched
    assert harness.http.get("/mobile/v1/logins").status_code == 401
