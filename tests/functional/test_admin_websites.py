"""Websites in the admin API and console: browser sessions listed and revoked, website logins
(the code flow's token families) like any session, the audit trail of each, and that expired
authorization codes and ended browser sessions do not pile up."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from freezegun import freeze_time

from authserver.domain.authorization import KEPT_AFTER_EXPIRY
from authserver.domain.models import AuditFilter
from tests.functional.harness import Harness, Phone
from tests.functional.lifecycle import admin_get, admin_headers, admin_post, user_id
from tests.functional.test_admin_console import csrf_of, signed_in
from tests.functional.test_authorization_code import (
    Pkce,
    authorize,
    exchange,
    redirected,
    sign_in,
    site,  # noqa: F401 (a fixture)
)

one_backend = pytest.mark.parametrize("backend", ["embedded+sqlite"], indirect=True)


def prompt_none(h: Harness) -> dict[str, str]:
    """What /authorize?prompt=none answers this browser (its redirect's query)."""
    return redirected(authorize(h, Pkce(), prompt="none"), 302)


def browser_sessions(h: Harness, **query: str) -> list[dict[str, Any]]:
    listed = admin_get(h, "/browser-sessions", query_string=query)
    assert listed.status_code == 200, listed.get_json()
    assert listed.headers["Cache-Control"] == "no-store"
    found: list[dict[str, Any]] = listed.get_json()["browser_sessions"]
    return found


def other_browser(h: Harness) -> Harness:
    """The same server seen from a second browser (its own cookie jar)."""
    return dataclasses.replace(h, http=h.http.application.test_client())


def events(h: Harness, name: str) -> list[Any]:
    return h.services.administration.audit(AuditFilter(event=name, limit=100))


# --- The admin API -------------------------------------------------------------------------
def test_the_api_lists_and_revokes_one_browser_session(site: Harness) -> None:  # noqa: F811
    h = site
    uid = user_id(h)
    sign_in(h, Pkce())
    assert "code" in prompt_none(h)
    [listed] = browser_sessions(h, user_id=uid)
    assert listed["active"] is True and listed["ended_at"] is None
    assert listed["user_id"] == uid and listed["amr"]
    assert listed["mobile_device"]["name"] == "Test phone"
    assert "secret_hash" not in listed and "secret" not in str(listed)
    session_id = listed["browser_session_id"]
    one = admin_get(h, f"/browser-sessions/{session_id}")
    assert one.status_code == 200 and one.get_json() == listed
    assert admin_get(h, "/browser-sessions/nope").status_code == 404

    revoked = admin_post(h, f"/browser-sessions/{session_id}/revoke")
    assert revoked.status_code == 200 and revoked.get_json() == {"revoked": [session_id]}
    # OIDC Core §3.1.2.6: no session any more, so no code without interaction.
    assert prompt_none(h)["error"] == "login_required"
    again = admin_post(h, f"/browser-sessions/{session_id}/revoke")
    assert again.get_json() == {"revoked": []}
    assert browser_sessions(h, user_id=uid, active="true") == []
    [ended] = browser_sessions(h, user_id=uid)
    assert ended["active"] is False and ended["ended_at"] is not None

    [event] = events(h, "browser_session.revoked")  # once, not for the second call
    assert event.actor.kind == "admin" and event.ip == "198.51.100.9"
    assert event.user_id == uid and event.detail["browser_session_id"] == session_id
    assert event.mobile_device_id == listed["mobile_device"]["mobile_device_id"]


def test_the_api_revokes_all_of_a_users_browser_sessions(site: Harness) -> None:  # noqa: F811
    h, second = site, other_browser(site)
    uid = user_id(h)
    sign_in(h, Pkce())
    sign_in(second, Pkce())
    someone_else = other_browser(h)
    someone_else.username = h.create_user()
    sign_in(someone_else, Pkce(), someone_else.sign_in("phone-9"))
    assert len(browser_sessions(h, user_id=uid, active="true")) == 2
    assert len(browser_sessions(h, active="true")) == 3

    revoked = admin_post(h, f"/users/{uid}/browser-sessions/revoke")
    assert revoked.status_code == 200
    ids = {b["browser_session_id"] for b in browser_sessions(h, user_id=uid)}
    assert set(revoked.get_json()["revoked"]) == ids and len(ids) == 2
    assert prompt_none(h)["error"] == "login_required"
    assert prompt_none(second)["error"] == "login_required"
    assert "code" in prompt_none(someone_else)  # another user's browser stays signed in
    assert len(events(h, "browser_session.revoked")) == 2
    assert admin_post(h, "/users/nobody/browser-sessions/revoke").status_code == 404


def test_a_website_login_is_a_session_the_admin_sees_and_revokes(
    site: Harness,  # noqa: F811
) -> None:
    h, pkce = site, Pkce()
    tokens = exchange(h, sign_in(h, pkce)["code"], pkce.verifier).get_json()
    [session] = admin_get(h, "/sessions", query_string={"user_id": user_id(h)}).get_json()[
        "sessions"
    ]
    assert session["client"]["name"] == "Example website" and session["active"] is True
    assert session["mobile_device"]["name"] == "Test phone"
    revoked = admin_post(h, f"/sessions/{session['session_id']}/revoke")
    assert revoked.get_json() == {"revoked": [session["session_id"]]}
    refreshed = h.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"


def _revoke_users_sessions(h: Harness, uid: str, phone: Phone, mobile_device_id: str) -> None:
    assert admin_post(h, f"/users/{uid}/sessions/revoke").status_code == 200


def _revoke_phones_sessions(h: Harness, uid: str, phone: Phone, mobile_device_id: str) -> None:
    assert admin_post(h, f"/mobile-devices/{mobile_device_id}/sessions/revoke").status_code == 200


def _unbind_phone(h: Harness, uid: str, phone: Phone, mobile_device_id: str) -> None:
    unbound = h.http.delete(
        f"/admin/v1/users/{uid}/mobile-devices/{mobile_device_id}", headers=admin_headers(h)
    )
    assert unbound.status_code == 204


def _phone_signs_out(h: Harness, uid: str, phone: Phone, mobile_device_id: str) -> None:
    assert h.http.delete("/mobile/v1/sessions", headers=phone.headers()).status_code in (200, 204)


@pytest.mark.parametrize(
    "withdraw",
    [_revoke_users_sessions, _revoke_phones_sessions, _unbind_phone, _phone_signs_out],
    ids=["user-sessions", "phone-sessions", "unbind", "phone-signs-out"],
)
def test_withdrawing_the_approval_ends_the_browser_session(
    site: Harness,  # noqa: F811
    withdraw: Any,
) -> None:
    h = site
    uid = user_id(h)
    phone = h.sign_in("phone-a")
    sign_in(h, Pkce(), phone)
    [listed] = browser_sessions(h, user_id=uid, active="true")
    device = listed["mobile_device"]["mobile_device_id"]

    withdraw(h, uid, phone, device)
    assert browser_sessions(h, user_id=uid, active="true") == []
    [ended] = browser_sessions(h, user_id=uid)
    assert ended["ended_at"] is not None
    assert prompt_none(h)["error"] == "login_required"
    [event] = events(h, "browser_session.revoked")
    assert event.detail["browser_session_id"] == listed["browser_session_id"]
    assert event.mobile_device_id == device


@one_backend
def test_browser_sessions_need_an_admin(site: Harness) -> None:  # noqa: F811
    h = site
    sign_in(h, Pkce())
    uid = user_id(h)
    [view] = h.services.administration.browser_sessions(uid)
    phone = h.sign_in("phone-x")
    for method, path in [
        ("GET", "/admin/v1/browser-sessions"),
        ("GET", f"/admin/v1/browser-sessions/{view.session.id}"),
        ("POST", f"/admin/v1/browser-sessions/{view.session.id}/revoke"),
        ("POST", f"/admin/v1/users/{uid}/browser-sessions/revoke"),
    ]:
        for headers in ({}, phone.headers(), {"Authorization": "Bearer adm_forged"}):
            response = h.http.open(path, method=method, headers=headers)
            assert response.status_code == 401, (path, headers)
    for path in (
        f"/admin/users/{uid}/browser-sessions/{view.session.id}/revoke",
        f"/admin/users/{uid}/browser-sessions/revoke",
    ):
        response = h.http.application.test_client().post(path)
        assert response.status_code == 303, path
        assert response.location == "/admin/login?notice=signed_in_required", path
    assert "code" in prompt_none(h)
    assert events(h, "browser_session.revoked") == []


# --- The console ---------------------------------------------------------------------------
def browser_row(html: str, session_id: str) -> str:
    start = html.index(f'<tr id="browser-session-{session_id}"')
    return html[start : html.index("</tr>", start)]


@pytest.fixture
def console(site: Harness) -> FlaskClient:  # noqa: F811
    site.services.admin_auth.create("console-admin", "a long admin password")
    return site.http.application.test_client()


def test_the_console_signs_a_browser_out(site: Harness, console: FlaskClient) -> None:  # noqa: F811
    h = site
    uid = user_id(h)
    sign_in(h, Pkce())
    [view] = h.services.administration.browser_sessions(uid)
    token = signed_in(console)
    page = console.get(f"/admin/users/{uid}")
    assert "1 active of 1" in page.text
    row = browser_row(page.text, view.session.id)
    assert "Active" in row and "Test phone (ios)" in row and ">Sign out<" in row
    action = f"/admin/users/{uid}/browser-sessions/{view.session.id}/revoke"
    assert f'action="{action}"' in row and csrf_of(row) == token

    forged = console.post(action, data={"csrf_token": "forged"})
    assert forged.status_code == 403 and "code" in prompt_none(h)
    other = h.create_user()
    foreign = console.post(
        f"/admin/users/{user_id(h, other)}/browser-sessions/{view.session.id}/revoke",
        data={"csrf_token": token, "confirmed": "yes"},
    )
    assert foreign.status_code == 404 and "code" in prompt_none(h)

    asked = console.post(action, data={"csrf_token": token})  # asked once more first
    assert asked.status_code == 200 and "Are you sure?" in asked.text and "code" in prompt_none(h)
    done = console.post(action, data={"csrf_token": token, "confirmed": "yes"})
    assert done.status_code == 303
    assert done.location == (f"/admin/users/{uid}?notice=browser_session_revoked#browser-sessions")
    page = console.get(done.location)
    assert "The browser was signed out." in page.text
    row = browser_row(page.text, view.session.id)
    assert "Ended" in row and ">Sign out<" not in row
    assert "browser_session.revoked" in page.text
    assert prompt_none(h)["error"] == "login_required"
    [event] = events(h, "browser_session.revoked")
    assert event.actor.kind == "admin"


@one_backend
def test_the_console_signs_every_browser_of_a_user_out(
    site: Harness,  # noqa: F811
    console: FlaskClient,
) -> None:
    h, second = site, other_browser(site)
    uid = user_id(h)
    sign_in(h, Pkce())
    sign_in(second, Pkce())
    token = signed_in(console)
    page = console.get(f"/admin/users/{uid}")
    assert "2 active of 2" in page.text and ">Sign out every browser<" in page.text
    done = console.post(
        f"/admin/users/{uid}/browser-sessions/revoke",
        data={"csrf_token": token, "confirmed": "yes"},
    )
    assert done.status_code == 303
    page = console.get(done.location)
    assert "Browsers signed out: 2." in page.text and "0 active of 2" in page.text
    assert prompt_none(h)["error"] == "login_required"
    assert prompt_none(second)["error"] == "login_required"


# --- Housekeeping --------------------------------------------------------------------------
def count(h: Harness, table: str) -> int:
    with h.services.database.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_expired_codes_and_ended_browser_sessions_are_deleted_as_new_ones_come(
    site: Harness,  # noqa: F811
) -> None:
    h, pkce = site, Pkce()
    # A website login (its code used), a browser that signed out, and a sign-in never finished.
    exchange(h, sign_in(h, pkce)["code"], pkce.verifier)
    second = other_browser(h)
    sign_in(second, Pkce())
    uid = user_id(h)
    assert admin_post(h, f"/users/{uid}/browser-sessions/revoke").status_code == 200
    authorize(h, Pkce())
    assert (count(h, "authorization_codes"), count(h, "browser_sessions")) == (3, 2)

    session_ttl = h.services.config.browser_session_ttl
    # Expired, but within KEPT_AFTER_EXPIRY: a new sign-in deletes nothing.
    with freeze_time(timedelta(seconds=KEPT_AFTER_EXPIRY - 60)):
        sign_in(other_browser(h), Pkce())
        assert (count(h, "authorization_codes"), count(h, "browser_sessions")) == (4, 3)
    # Later, each insert deletes what expired (or ended) more than KEPT_AFTER_EXPIRY ago; a
    # session goes once no stored code names it any more. The first rows go; the sign-in of a
    # day later, not yet KEPT_AFTER_EXPIRY past its expiry, stays beside the new one.
    with freeze_time(timedelta(seconds=session_ttl + KEPT_AFTER_EXPIRY + 60)):
        sign_in(other_browser(h), Pkce())
        assert (count(h, "authorization_codes"), count(h, "browser_sessions")) == (2, 2)
