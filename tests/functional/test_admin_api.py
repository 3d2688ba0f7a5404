"""The admin JSON API (/admin/v1): sign-in, every endpoint, and that nothing else is an admin."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from authserver.domain.codes import hash_secret
from authserver.domain.models import AuditFilter
from tests.functional.harness import Harness, basic
from tests.functional.lifecycle import (
    ADMIN_PASSWORD,
    admin_get,
    admin_headers,
    admin_post,
    admin_token,
    assert_alive,
    assert_dead,
    login,
    refresh,
    resource_server,
    session_id,
    user_id,
)

LOGIN_ATTEMPTS = 3


@pytest.fixture
def settings() -> dict[str, Any]:
    return {"login_attempts": LOGIN_ATTEMPTS}


def sign_in(h: Harness, username: str, password: str, ip: str = "198.51.100.9") -> Any:
    return h.http.post(
        "/admin/v1/auth/token",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def admin_delete(h: Harness, path: str) -> Any:
    return h.http.delete(f"/admin/v1{path}", headers=admin_headers(h))


# --- Signing in and out --------------------------------------------------------------------
def test_sign_in_and_out(harness: Harness) -> None:
    h = harness
    admin = h.services.admin_auth.create("root", ADMIN_PASSWORD)
    h.extra["admin"] = admin
    signed_in = sign_in(h, "root", ADMIN_PASSWORD)
    assert signed_in.status_code == 201
    assert signed_in.headers["Cache-Control"] == "no-store"
    body = signed_in.get_json()
    assert body["admin_token"].startswith("adm_") and len(body["admin_token"]) > 40
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == h.services.config.admin_session_ttl
    assert body["admin"] == {"admin_id": admin.admin_id, "username": "root"}
    auth = {"Authorization": f"Bearer {body['admin_token']}"}
    assert h.http.get("/admin/v1/clients", headers=auth).status_code == 200

    # Only the token's hash is stored.
    with h.services.database.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM admin_sessions")).scalars().all()
    assert stored == [hash_secret(body["admin_token"])]

    for username, password in (("root", "wrong password!"), ("nobody", ADMIN_PASSWORD)):
        wrong = sign_in(h, username, password)
        assert wrong.status_code == 401
        assert wrong.get_json()["error"] == "invalid_admin_credentials"
        assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="admin"'
        assert "admin_token" not in wrong.get_json()
    # A user of the mobile app is not an admin, with the right password or not.
    assert sign_in(h, h.username, "correct horse battery").status_code == 401

    assert h.http.delete("/admin/v1/auth/token", headers=auth).status_code == 204
    after = h.http.get("/admin/v1/clients", headers=auth)
    assert after.status_code == 401 and after.get_json()["error"] == "invalid_admin_credentials"
    # Another session of the same admin is unaffected by that sign-out.
    assert admin_get(h, "/clients").status_code == 200


def test_sign_in_body_is_checked(harness: Harness) -> None:
    h = harness
    h.services.admin_auth.create("root", ADMIN_PASSWORD)
    for body in ({}, {"username": "root"}, {"username": "root", "password": 5}, ["root"]):
        response = h.http.post("/admin/v1/auth/token", json=body)
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
    form = h.http.post(
        "/admin/v1/auth/token", data={"username": "root", "password": ADMIN_PASSWORD}
    )
    assert form.status_code == 400


def test_an_admin_session_expires(harness: Harness) -> None:
    h = harness
    ttl = h.services.config.admin_session_ttl
    with freeze_time("2030-01-01 12:00:00") as frozen:
        auth = {"Authorization": f"Bearer {admin_token(h)}"}
        frozen.tick(ttl - 1)
        assert h.http.get("/admin/v1/clients", headers=auth).status_code == 200
        frozen.tick(1)
        expired = h.http.get("/admin/v1/clients", headers=auth)
        assert expired.status_code == 401
        assert expired.get_json()["error"] == "invalid_admin_credentials"


def test_admin_sign_in_is_rate_limited_and_failures_are_audited(harness: Harness) -> None:
    h = harness
    admin = h.services.admin_auth.create("root", ADMIN_PASSWORD)
    for _ in range(LOGIN_ATTEMPTS):
        assert sign_in(h, "root", "not the password").status_code == 401
    limited = sign_in(h, "root", ADMIN_PASSWORD)  # even the right password now waits
    assert limited.status_code == 429 and limited.get_json()["error"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    assert "admin_token" not in limited.get_json()
    # The limit is per username and IP: the admin can still sign in from elsewhere.
    assert sign_in(h, "root", ADMIN_PASSWORD, ip="192.0.2.1").status_code == 201

    token = sign_in(h, "root", ADMIN_PASSWORD, "192.0.2.1").get_json()["admin_token"]
    auth = {"Authorization": f"Bearer {token}"}
    events = h.http.get("/admin/v1/audit?event=admin.sign_in_failed", headers=auth).get_json()
    failures = events["events"]
    assert len(failures) == LOGIN_ATTEMPTS
    for event in failures:
        assert event["ip"] == "198.51.100.9"
        assert event["actor"] == {"type": "admin", "id": admin.admin_id}
        assert event["detail"] == {}  # nothing typed is kept: it may be a misplaced password
    # An unknown admin name is audited without the name.
    assert sign_in(h, "nobody", "some password", ip="192.0.2.2").status_code == 401
    (unknown,) = h.http.get("/admin/v1/audit?limit=1", headers=auth).get_json()["events"]
    assert unknown["event"] == "admin.sign_in_failed" and unknown["actor"] == {
        "type": "admin",
        "id": None,
    }
    assert "nobody" not in str(unknown)


# --- Impersonation is impossible -----------------------------------------------------------
def test_no_other_credential_acts_as_an_admin(harness: Harness) -> None:
    h = harness
    client_id, secret = h.create_client(confidential=True)
    rs_id, rs_secret = resource_server(h)
    session = login(h, client_id=client_id, secret=secret)
    sid = session_id(h, session)
    uid = user_id(h)
    mdid = h.services.accounts.devices_of(uid)[0].id
    pending = h.authorize()

    with freeze_time("2020-01-01 12:00:00"):  # an admin session long expired by now
        expired = admin_token(h)
    signed_out = admin_token(h)
    assert (
        h.http.delete(
            "/admin/v1/auth/token", headers={"Authorization": f"Bearer {signed_out}"}
        ).status_code
        == 204
    )
    with h.services.database.engine.connect() as conn:
        stored_hash = (
            conn.execute(sa.text("SELECT token_hash FROM admin_sessions")).scalars().first()
        )
    admin_basic = base64.b64encode(f"root:{ADMIN_PASSWORD}".encode()).decode()

    credentials: dict[str, dict[str, Any]] = {
        "none": {},
        "client secret (Basic)": {"headers": basic(client_id, secret)},
        "resource server secret (Basic)": {"headers": basic(rs_id, rs_secret)},
        "client secret (body)": {"data": {"client_id": client_id, "client_secret": secret}},
        "client secret (JSON)": {
            "json": {
                "client_id": client_id,
                "client_secret": secret,
                "user_code": pending["user_code"],
            }
        },
        "device token": {"headers": session.phone.headers()},
        "access token": {"headers": {"Authorization": f"Bearer {session.access_token}"}},
        "refresh token": {"headers": {"Authorization": f"Bearer {session.refresh_token}"}},
        "random adm_": {"headers": {"Authorization": "Bearer adm_" + "A" * 43}},
        "bare adm_": {"headers": {"Authorization": "Bearer adm_"}},
        "stored hash": {"headers": {"Authorization": f"Bearer {stored_hash}"}},
        "adm_ + stored hash": {"headers": {"Authorization": f"Bearer adm_{stored_hash}"}},
        "admin password (Basic)": {"headers": {"Authorization": f"Basic {admin_basic}"}},
        "expired admin session": {"headers": {"Authorization": f"Bearer {expired}"}},
        "signed-out admin session": {"headers": {"Authorization": f"Bearer {signed_out}"}},
        "admin token as a cookie": {"headers": {"Cookie": f"admin_token={signed_out}"}},
    }
    endpoints = [
        ("GET", "/sessions"),
        ("GET", f"/sessions?user_id={uid}"),
        ("GET", f"/sessions/{sid}"),
        ("POST", f"/sessions/{sid}/revoke"),
        ("POST", f"/users/{uid}/sessions/revoke"),
        ("POST", f"/clients/{client_id}/sessions/revoke"),
        ("POST", f"/mobile-devices/{mdid}/sessions/revoke"),
        ("GET", f"/users?q={h.username}"),
        ("GET", f"/users/{uid}"),
        ("GET", f"/users/{uid}/mobile-devices"),
        ("DELETE", f"/users/{uid}/mobile-devices/{mdid}"),
        ("GET", "/clients"),
        ("POST", f"/clients/{client_id}/disable"),
        ("POST", f"/clients/{client_id}/enable"),
        ("POST", "/flows/cancel"),
        ("GET", "/audit"),
        ("DELETE", "/auth/token"),
    ]
    let_through: list[tuple[str, str, str, object]] = []
    for method, path in endpoints:
        for name, kwargs in credentials.items():
            response = h.http.open(f"/admin/v1{path}", method=method, **kwargs)
            if response.status_code != 401 or (
                response.get_json()["error"] != "invalid_admin_credentials"
            ):
                let_through.append((method, path, name, response.status_code))
            elif "sessions" in response.get_json() or "users" in response.get_json():
                let_through.append((method, path, name, "leaked data"))
    assert let_through == []

    # Nothing happened: the session, the phone, the client and the flow are as they were.
    assert_alive(h, session)
    assert h.scan(session.phone, qr=pending["verification_uri_complete"]).status_code == 200
    assert h.services.clients.get(client_id).disabled_at is None  # type: ignore[union-attr]
    events = {e.event for e in h.services.auditor.query(AuditFilter(limit=1000))}
    assert not events & {"token.revoked", "client.disabled", "device.unbound", "flow.cancelled"}


# --- Sessions ------------------------------------------------------------------------------
def test_sessions_list_filter_page_and_show(harness: Harness) -> None:
    h = harness
    uid = user_id(h)
    client_id, secret = h.create_client(confidential=True)
    with freeze_time("2030-01-01 12:00:00") as frozen:
        oldest = login(h)
        frozen.tick(10)
        middle = login(h, phone=oldest.phone)
        frozen.tick(10)
        newest = login(h, client_id=client_id, secret=secret, phone=oldest.phone)
        frozen.tick(10)
        bob = h.create_user()
        bobs = login(h, phone=h.sign_in("phone-b", username=bob))
        frozen.tick(10)
        ids = [session_id(h, s) for s in (newest, middle, oldest)]  # newest first

        listed = admin_get(h, f"/sessions?user_id={uid}")
        assert listed.status_code == 200 and listed.headers["Cache-Control"] == "no-store"
        assert [s["session_id"] for s in listed.get_json()["sessions"]] == ids

        page1 = admin_get(h, f"/sessions?user_id={uid}&limit=2").get_json()
        page2 = admin_get(h, f"/sessions?user_id={uid}&limit=2&offset=2").get_json()
        assert [s["session_id"] for s in page1["sessions"]] == ids[:2]
        assert [s["session_id"] for s in page2["sessions"]] == ids[2:]
        assert page2["offset"] == 2
        assert admin_get(h, f"/sessions?user_id={uid}&offset=3").get_json()["sessions"] == []

        by_client = admin_get(h, f"/sessions?client_id={h.client_id}").get_json()["sessions"]
        assert {s["session_id"] for s in by_client} == {ids[1], ids[2], session_id(h, bobs)}
        both = admin_get(h, f"/sessions?client_id={client_id}&user_id={uid}").get_json()
        assert [s["session_id"] for s in both["sessions"]] == [ids[0]]
        everything = admin_get(h, "/sessions").get_json()["sessions"]
        assert len(everything) == 4

        phone_id = h.services.accounts.devices_of(uid)[0].id
        by_phone = admin_get(h, f"/sessions?mobile_device_id={phone_id}").get_json()["sessions"]
        assert [s["session_id"] for s in by_phone] == ids
        assert admin_get(h, "/sessions?mobile_device_id=nope").get_json()["sessions"] == []

        assert admin_post(h, f"/sessions/{ids[1]}/revoke").get_json() == {"revoked": [ids[1]]}
        active = admin_get(h, f"/sessions?user_id={uid}&active=true").get_json()["sessions"]
        assert [s["session_id"] for s in active] == [ids[0], ids[2]]

        shown = admin_get(h, f"/sessions/{ids[2]}").get_json()
        assert shown["session_id"] == ids[2] and shown["active"] is True
        assert shown["created_at"] == "2030-01-01T12:00:00+00:00"
        assert shown["revoked_at"] is None and shown["revoked_reason"] is None
        assert shown["scope"] == "profile email"
        assert shown["requester"] == {
            "ip": "203.0.113.7",
            "user_agent": "TestPC/1.0",  # as sent, for the operator
            "device_says": "an unknown device",  # as the approval screens showed it
            "place": {"kind": "private", "country_code": None, "name": "a private network"},
        }
        assert shown["user"] == {"user_id": uid, "username": h.username, "name": "Alice Liddell"}
        assert shown["client"]["client_id"] == h.client_id
        assert shown["client"]["name"] == "Test PC app"
        assert shown["client"]["kind"] == "device" and shown["client"]["confidential"] is False
        assert shown["mobile_device"]["mobile_device_id"] == phone_id
        assert shown["mobile_device"]["device_id"] == "phone-1"
        assert shown["mobile_device"]["platform"] == "ios"
        assert shown["mobile_device"]["active"] is True

        revoked = admin_get(h, f"/sessions/{ids[1]}").get_json()
        assert revoked["active"] is False and revoked["revoked_reason"] == "admin"
        assert revoked["revoked_at"] == "2030-01-01T12:00:40+00:00"


def test_session_list_parameters_are_checked(harness: Harness) -> None:
    h = harness
    for query in ("limit=abc", "limit=-1", "offset=x", "offset=-5", "user_id=" + "u" * 201):
        response = admin_get(h, f"/sessions?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"] == "invalid_request"
    assert admin_get(h, "/sessions?limit=100000").status_code == 200  # capped, not refused
    bad_before = admin_get(h, "/audit?before=yesterday")
    assert bad_before.status_code == 400


def test_unknown_ids_are_404(harness: Harness) -> None:
    h = harness
    session = login(h)
    uid = user_id(h)
    bob_id = user_id(h, h.create_user())
    mdid = h.services.accounts.devices_of(uid)[0].id
    missing = [
        admin_get(h, "/sessions/no-such-session"),
        admin_post(h, "/sessions/no-such-session/revoke"),
        admin_get(h, "/users/no-such-user"),
        admin_get(h, "/users/no-such-user/mobile-devices"),
        admin_post(h, "/users/no-such-user/sessions/revoke"),
        admin_post(h, "/clients/no-such-client/sessions/revoke"),
        admin_post(h, "/clients/no-such-client/disable"),
        admin_post(h, "/clients/no-such-client/enable"),
        admin_post(h, "/mobile-devices/no-such-device/sessions/revoke"),
        admin_delete(h, f"/users/{uid}/mobile-devices/no-such-device"),
        admin_delete(h, f"/users/{bob_id}/mobile-devices/{mdid}"),  # not Bob's phone
        admin_post(h, "/flows/cancel", json={"user_code": "BCDF-GHJK"}),
        admin_get(h, "/no-such-endpoint"),
    ]
    for response in missing:
        assert response.status_code == 404, (response.request.path, response.get_json())
        assert response.get_json()["error"] == "not_found"
    assert_alive(h, session)  # Bob's unbind of Alice's phone did nothing
    assert h.scan(session.phone, user_code=h.authorize()["user_code"]).status_code == 200


# --- Users, phones, clients ----------------------------------------------------------------
def test_users_and_their_phones(harness: Harness) -> None:
    h = harness
    uid = user_id(h)
    bob = h.create_user()
    phone = h.sign_in("phone-1")
    h.sign_in("phone-2")
    session = login(h, phone=phone)

    found = admin_get(h, f"/users?q={h.username[:8].upper()}").get_json()["users"]
    assert found == [{"user_id": uid, "username": h.username, "name": "Alice Liddell"}]
    by_name = admin_get(h, "/users?q=liddell").get_json()["users"]
    assert [u["user_id"] for u in by_name] == [uid]
    assert {u["username"] for u in admin_get(h, "/users?q=e").get_json()["users"]} >= {
        h.username,
        bob,
    }
    assert admin_get(h, "/users?q=").get_json() == {"users": []}
    assert admin_get(h, "/users?q=%25").get_json() == {"users": []}  # a literal %, not "any"
    assert admin_get(h, f"/users/{uid}").get_json()["username"] == h.username

    devices = admin_get(h, f"/users/{uid}/mobile-devices").get_json()["mobile_devices"]
    assert [d["device_id"] for d in devices] == ["phone-2", "phone-1"]  # newest first
    assert all(d["active"] and d["user_id"] == uid and d["platform"] == "ios" for d in devices)
    phone_1 = devices[1]["mobile_device_id"]
    assert "token" not in str(devices)

    # Unbinding signs that phone out; the PC session it approved is kept.
    assert admin_delete(h, f"/users/{uid}/mobile-devices/{phone_1}").status_code == 204
    refused = h.scan(phone, user_code=h.authorize()["user_code"])
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_token"
    assert_alive(h, session)
    after = admin_get(h, f"/users/{uid}/mobile-devices").get_json()["mobile_devices"]
    assert [(d["device_id"], d["active"]) for d in after] == [("phone-2", True), ("phone-1", False)]
    assert after[1]["revoked_at"] is not None
    assert admin_delete(h, f"/users/{uid}/mobile-devices/{phone_1}").status_code == 204
    # The phone signs in again and works.
    assert h.scan(h.sign_in("phone-1"), user_code=h.authorize()["user_code"]).status_code == 200


def test_clients_list_disable_and_enable(harness: Harness) -> None:
    h = harness
    rs_id, _ = resource_server(h)
    client_id, secret = h.create_client(confidential=True)
    phone = h.sign_in()
    held = login(h, client_id=client_id, secret=secret, phone=phone)
    approved = h.authorize(client_id, client_secret=secret)
    h.approve(approved, phone)
    pending = h.authorize(client_id, client_secret=secret)

    clients = {c["client_id"]: c for c in admin_get(h, "/clients").get_json()["clients"]}
    assert (
        clients[h.client_id]["kind"] == "device" and clients[h.client_id]["confidential"] is False
    )
    assert clients[rs_id]["kind"] == "resource_server" and clients[rs_id]["confidential"] is True
    assert clients[client_id]["disabled_at"] is None
    assert "secret" not in str(clients) and secret not in str(clients)

    disabled = admin_post(h, f"/clients/{client_id}/disable")
    assert disabled.status_code == 200 and disabled.get_json()["disabled_at"] is not None
    listed = {c["client_id"]: c for c in admin_get(h, "/clients").get_json()["clients"]}
    assert listed[client_id]["disabled_at"] is not None

    # No new device codes; an approved flow is not redeemed; a pending one cannot be scanned.
    started = h.http.post(
        "/oauth/device_authorization", data={"client_id": client_id, "client_secret": secret}
    )
    assert started.status_code == 401 and started.get_json()["error"] == "invalid_client"
    redeem = h.poll(approved["device_code"], client_id, client_secret=secret)
    assert redeem.status_code == 401 and redeem.get_json()["error"] == "invalid_client"
    scanned = h.scan(phone, qr=pending["verification_uri_complete"])
    assert scanned.status_code == 409 and scanned.get_json()["error"] == "not_actionable"
    assert_dead(h, held, refresh_error="invalid_client")
    # Disabling twice is harmless.
    assert admin_post(h, f"/clients/{client_id}/disable").status_code == 200

    enabled = admin_post(h, f"/clients/{client_id}/enable")
    assert enabled.status_code == 200 and enabled.get_json()["disabled_at"] is None
    assert_dead(h, held)  # what it held stays revoked
    fresh = login(h, client_id=client_id, secret=secret, phone=phone)  # a new flow works
    assert_alive(h, fresh)
    assert refresh(h, fresh.refresh_token, client_id, secret).status_code == 200


# --- Flows -----------------------------------------------------------------------------------
def test_cancel_a_flow_until_it_is_redeemed(harness: Harness) -> None:
    h = harness
    phone = h.sign_in()
    pending = h.authorize()
    cancelled = admin_post(h, "/flows/cancel", json={"user_code": pending["user_code"]})
    assert cancelled.status_code == 200 and cancelled.get_json() == {"cancelled": True}
    denied = h.poll(pending["device_code"])
    assert denied.status_code == 400 and denied.get_json()["error"] == "access_denied"
    assert h.status(pending["device_code"]).get_json()["status"] == "denied"
    rescan = h.scan(phone, qr=pending["verification_uri_complete"])
    assert rescan.status_code == 409
    again = admin_post(h, "/flows/cancel", json={"user_code": pending["user_code"]})
    assert again.status_code == 409 and again.get_json()["error"] == "not_actionable"

    scanned = h.authorize()
    screen = h.scan(phone, qr=scanned["verification_uri_complete"]).get_json()
    typed = scanned["user_code"].lower().replace("-", " ")  # normalised like the phone's entry
    assert admin_post(h, "/flows/cancel", json={"user_code": typed}).status_code == 200
    late = h.decide(phone, screen["confirm_token"])
    assert late.status_code == 400 and late.get_json()["error"] == "invalid_confirm_token"
    assert h.poll(scanned["device_code"]).get_json()["error"] == "access_denied"

    # An approved flow not yet redeemed can still be cancelled; a redeemed one is past that.
    approved = h.authorize()
    h.approve(approved, phone)
    assert (
        admin_post(h, "/flows/cancel", json={"user_code": approved["user_code"]}).status_code == 200
    )
    assert h.poll(approved["device_code"]).get_json()["error"] == "access_denied"
    redeemed = h.authorize()
    h.approve(redeemed, phone)
    assert h.poll(redeemed["device_code"]).status_code == 200
    refused = admin_post(h, "/flows/cancel", json={"user_code": redeemed["user_code"]})
    assert refused.status_code == 409 and refused.get_json()["error"] == "not_actionable"

    for body in ({}, {"user_code": ""}, {"user_code": 7}):
        bad = admin_post(h, "/flows/cancel", json=body)
        assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_request"
