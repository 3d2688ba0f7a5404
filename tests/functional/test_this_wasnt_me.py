""" "This wasn't me": the phone lists the user's signed-in computers, ends one or reports one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt
from freezegun import freeze_time

from authserver.domain.models import AuditFilter
from tests.functional.harness import Harness, Phone
from tests.functional.lifecycle import admin_get, introspection, user_id
from tests.functional.test_admin_console import ADMIN, ADMIN_PASSWORD, signed_in


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


def session_id_of(tokens: dict[str, Any]) -> str:
    """The login (token family) an access token belongs to: its `sid` claim."""
    return str(jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"])


def test_the_list_says_when_and_when_last_used(harness: Harness) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    with freeze_time(start) as frozen:
        phone = harness.sign_in()
        _, tokens = signed_in_pc(harness, phone)
        [login] = logins(harness, phone)
        assert login["signed_in_at"] == start.isoformat()
        assert login["last_refreshed_at"] is None  # never refreshed yet
        frozen.tick(90)
        assert harness.refresh(tokens["refresh_token"]).status_code == 200
        [login] = logins(harness, phone)
        assert login["signed_in_at"] == start.isoformat()
        assert datetime.fromisoformat(login["last_refreshed_at"]) == datetime.fromtimestamp(
            start.timestamp() + 90, UTC
        )


def test_any_phone_of_the_user_can_report_a_login_another_one_approved(harness: Harness) -> None:
    approver, other = harness.sign_in("phone-a"), harness.sign_in("phone-b")
    started, tokens = signed_in_pc(harness, approver)
    [seen] = logins(harness, other)
    assert seen["approved_by"] == {"name": "Test phone", "this_phone": False}
    reported = harness.http.post(f"/mobile/v1/logins/{seen['id']}/report", headers=other.headers())
    assert reported.status_code == 204
    assert_dead(harness, started, tokens)
    assert logins(harness, approver) == []


def test_admins_see_the_report_in_the_api_the_console_and_the_audit_trail(
    harness: Harness,
) -> None:
    phone = harness.sign_in()
    _, tokens = signed_in_pc(harness, phone)
    _, kept = signed_in_pc(harness, phone)
    reported_id, kept_id = session_id_of(tokens), session_id_of(kept)
    response = harness.http.post(
        f"/mobile/v1/logins/{reported_id}/report",
        headers=phone.headers(),
        environ_base={"REMOTE_ADDR": "198.51.100.44"},
    )
    assert response.status_code == 204

    # The admin API: the session is revoked, reported; the other one is neither.
    shown = admin_get(harness, f"/sessions/{reported_id}").get_json()
    assert shown["active"] is False
    assert shown["revoked_reason"] == "reported_by_user"
    assert shown["reported"] is True
    other = admin_get(harness, f"/sessions/{kept_id}").get_json()
    assert other["active"] is True and other["reported"] is False
    events = admin_get(harness, f"/audit?session_id={reported_id}").get_json()["events"]
    [report] = [e for e in events if e["event"] == "login.reported"]
    assert report["actor"] == {"type": "user", "id": user_id(harness)}
    assert report["ip"] == "198.51.100.44"
    assert report["mobile_device_id"] is not None
    revoked = [e for e in events if e["event"] == "token.revoked"]
    assert [e["detail"].get("reason") for e in revoked] == ["reported_by_user"]

    # The console: the user's page marks that session reported, and the audit page shows it.
    harness.services.admin_auth.create(ADMIN, ADMIN_PASSWORD)
    console = harness.http.application.test_client()
    signed_in(console)
    page = console.get(f"/admin/users/{user_id(harness)}")
    assert page.status_code == 200
    rows = {
        sid: page.text.split(f'id="session-{sid}"', 1)[1].split("</tr>", 1)[0]
        for sid in (reported_id, kept_id)
    }
    assert "Reported by the user" in rows[reported_id]
    assert "Reported by the user" not in rows[kept_id]
    audit = console.get(f"/admin/audit?session_id={reported_id}")
    assert audit.status_code == 200
    assert "login.reported" in audit.text


def test_a_reported_device_code_never_yields_tokens_again(harness: Harness) -> None:
    start = datetime.now(UTC)
    with freeze_time(start) as frozen:
        phone = harness.sign_in()
        started, tokens = signed_in_pc(harness, phone)
        reported = harness.http.post(
            f"/mobile/v1/logins/{session_id_of(tokens)}/report", headers=phone.headers()
        )
        assert reported.status_code == 204
        for wait in (0, 5, 10, started["expires_in"], 3600):
            frozen.tick(wait)
            polled = harness.poll(started["device_code"])
            assert polled.status_code == 400, polled.get_json()
            assert "access_token" not in polled.get_json()
            assert polled.get_json()["error"] in ("invalid_grant", "expired_token")
        # Nor does the status channel say anything but that it is over.
        assert "access_token" not in (harness.status(started["device_code"]).get_json() or {})
