"""The audit trail: who did what, when, from where, in order; and never a secret."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from freezegun import freeze_time

from authserver.domain.codes import hash_secret, normalize_user_code
from authserver.domain.models import AuditEvent, AuditFilter
from tests.functional.harness import PASSWORD, Harness, Phone, basic
from tests.functional.lifecycle import (
    ADMIN_PASSWORD,
    admin_get,
    admin_headers,
    admin_post,
    login,
    refresh,
    refresh_login,
    resource_server,
    revoke,
    session_id,
    user_id,
)

PC = {"REMOTE_ADDR": "203.0.113.7"}
PHONE = {"REMOTE_ADDR": "198.51.100.20"}
ADMIN_IP = "198.51.100.9"


def events(h: Harness, **where: Any) -> list[AuditEvent]:
    """Matching events, oldest first."""
    return list(reversed(h.services.auditor.query(AuditFilter(limit=1000, **where))))


def names(h: Harness, **where: Any) -> list[str]:
    return [e.event for e in events(h, **where)]


def phone_sign_in(h: Harness, device_id: str = "phone-1") -> Phone:
    response = h.http.post(
        "/mobile/v1/sessions",
        json={
            "username": h.username,
            "password": PASSWORD,
            "device": {"id": device_id, "name": "Test phone", "platform": "ios"},
        },
        environ_base=PHONE,
    )
    assert response.status_code == 201
    return Phone(response.get_json()["device_token"], device_id)


def test_a_full_flow_is_recorded_in_order_with_actors_ips_and_ids(harness: Harness) -> None:
    h = harness
    uid = user_id(h)
    started = h.authorize()  # from 203.0.113.7
    phone = phone_sign_in(h)
    screen = h.http.post(
        "/mobile/v1/scan",
        json={"qr": started["verification_uri_complete"]},
        headers=phone.headers(),
        environ_base=PHONE,
    ).get_json()
    confirmed = h.http.post(
        "/mobile/v1/confirm",
        json={"confirm_token": screen["confirm_token"]},
        headers=phone.headers(),
        environ_base=PHONE,
    )
    assert confirmed.status_code == 200
    token_request = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": started["device_code"],
        "client_id": h.client_id,
    }
    tokens = h.http.post("/oauth/token", data=token_request, environ_base=PC).get_json()
    refreshed = h.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": h.client_id,
        },
        environ_base=PC,
    ).get_json()
    revoked = h.http.post(
        "/oauth/revoke",
        data={"token": refreshed["refresh_token"], "client_id": h.client_id},
        environ_base=PC,
    )
    assert revoked.status_code == 200
    signed_out = h.http.delete("/mobile/v1/sessions", headers=phone.headers(), environ_base=PHONE)
    assert signed_out.status_code == 204

    trail = events(h)
    assert [e.event for e in trail] == [
        "flow.created",
        "device.signed_in",
        "flow.scanned",
        "flow.approved",
        "flow.redeemed",
        "token.issued",
        "token.refreshed",
        "token.revoked",
        "device.signed_out",
    ]
    by_name = {e.event: e for e in trail}
    client = ("client", h.client_id)
    user = ("user", uid)
    family = by_name["token.issued"].family_id
    mdid = by_name["device.signed_in"].mobile_device_id
    assert family and mdid
    ref = hash_secret(started["device_code"])[:16]
    expected = {
        # event: (actor, ip, user_id, client_id, mobile_device_id, family_id, flow_ref)
        "flow.created": (client, PC, None, h.client_id, None, None, ref),
        "device.signed_in": (user, PHONE, uid, None, mdid, None, None),
        "flow.scanned": (user, PHONE, uid, h.client_id, mdid, None, ref),
        "flow.approved": (user, PHONE, uid, h.client_id, mdid, None, ref),
        "flow.redeemed": (client, PC, uid, h.client_id, mdid, family, ref),
        "token.issued": (client, PC, uid, h.client_id, mdid, family, ref),
        "token.refreshed": (client, PC, uid, h.client_id, None, family, None),
        "token.revoked": (client, PC, uid, h.client_id, mdid, family, None),
        "device.signed_out": (user, PHONE, uid, None, mdid, None, None),
    }
    for event in trail:
        actor, ip, *ids = expected[event.event]
        assert (event.actor.kind, event.actor.id) == actor, event
        assert event.ip == ip["REMOTE_ADDR"], event
        assert [
            event.user_id,
            event.client_id,
            event.mobile_device_id,
            event.family_id,
            event.flow_ref,
        ] == ids, event
    assert by_name["flow.created"].detail == {
        "scope": "profile email",
        "user_agent": "TestPC/1.0",
        "expires_in": harness.services.config.device_code_ttl,
    }
    assert by_name["token.issued"].detail == {"scope": "profile email", "amr": "mca user"}
    assert by_name["token.revoked"].detail == {"reason": "revoked_by_client"}
    assert by_name["device.signed_in"].detail == {
        "device_name": "Test phone",
        "platform": "ios",
        "method": "password",
        "key_bound": False,
    }
    times = [e.occurred_at for e in trail]
    assert times == sorted(times)
    event_ids = [e.id or 0 for e in trail]
    assert event_ids == sorted(event_ids) and len(set(event_ids)) == len(event_ids)


def test_denied_and_single_access_token_revocation_are_recorded(harness: Harness) -> None:
    h = harness
    phone = h.sign_in()
    started = h.authorize()
    screen = h.scan(phone, qr=started["verification_uri_complete"]).get_json()
    h.decide(phone, screen["confirm_token"], "deny")
    denied = events(h, event="flow.denied")
    assert len(denied) == 1
    assert (
        denied[0].actor.kind == "user"
        and denied[0].flow_ref == hash_secret(started["device_code"])[:16]
    )

    session = login(h, phone=phone)
    revoke(h, session.access_token)
    (access,) = events(h, event="token.access_revoked")
    assert (access.actor.kind, access.actor.id) == ("client", h.client_id)
    assert access.family_id == session_id(h, session) and access.detail == {"jti": session.jti}
    assert names(h, event="token.revoked") == []  # the grant itself lives on


def test_expiry_is_recorded_once_however_often_it_is_seen(harness: Harness) -> None:
    h = harness
    with freeze_time("2030-01-01 12:00:00") as frozen:
        pending = h.authorize()
        approved = h.authorize()
        h.approve(approved)
        frozen.tick(h.services.config.device_code_ttl)
        for _ in range(3):
            for flow in (pending, approved):
                assert h.poll(flow["device_code"]).get_json()["error"] == "expired_token"
                assert h.status(flow["device_code"]).get_json()["status"] == "expired"
            frozen.tick(30)
        expired = events(h, event="flow.expired")
    assert len(expired) == 2
    states = {e.flow_ref: e.detail["state"] for e in expired}
    assert states == {
        hash_secret(pending["device_code"])[:16]: "pending",
        hash_secret(approved["device_code"])[:16]: "approved",
    }
    assert all(e.actor == expired[0].actor and e.actor.kind == "client" for e in expired)
    assert all(e.client_id == h.client_id for e in expired)
    assert {e.user_id for e in expired} == {None, user_id(h)}


def test_replays_are_recorded_with_the_revocation_they_caused(harness: Harness) -> None:
    h = harness
    by_code = login(h)
    assert h.poll(by_code.device_code).get_json()["error"] == "invalid_grant"
    assert h.poll(by_code.device_code).get_json()["error"] == "invalid_grant"
    family = session_id(h, by_code)
    assert names(h, family_id=family) == [
        "flow.redeemed",
        "token.issued",
        "flow.replay_detected",
        "token.revoked",
        "flow.replay_detected",  # seen again; the family was revoked only once
    ]
    detected, revoked = events(h, family_id=family)[2:4]
    assert detected.flow_ref == hash_secret(by_code.device_code)[:16]
    assert (detected.actor.kind, detected.actor.id) == ("client", h.client_id)
    assert revoked.detail == {"reason": "device_code_replay"}

    first = login(h, phone=by_code.phone)
    refresh_login(h, first)
    assert refresh(h, first.refresh_token).get_json()["error"] == "invalid_grant"
    replayed = events(h, family_id=session_id(h, first), event="token.revoked")
    assert [e.detail["reason"] for e in replayed] == ["refresh_token_replay"]
    assert replayed[0].actor.kind == "client"


def test_admin_actions_are_recorded_with_the_admin_as_actor(harness: Harness) -> None:
    h = harness
    other_id, secret = h.create_client(confidential=True)
    phone = h.sign_in("phone-1")
    one = login(h, phone=phone)
    two = login(h, phone=phone)
    three = login(h, client_id=other_id, secret=secret, phone=phone)
    pending = h.authorize()
    uid = user_id(h)
    mdid = h.services.accounts.devices_of(uid)[0].id

    headers = admin_headers(h)
    admin = h.extra["admin"]
    assert admin_post(h, f"/sessions/{session_id(h, one)}/revoke").status_code == 200
    assert admin_post(h, f"/clients/{other_id}/disable").status_code == 200
    assert admin_post(h, f"/clients/{other_id}/enable").status_code == 200
    assert (
        admin_post(h, "/flows/cancel", json={"user_code": pending["user_code"]}).status_code == 200
    )
    assert admin_post(h, f"/mobile-devices/{mdid}/sessions/revoke").status_code == 200
    other_phone = h.sign_in("phone-2")
    other_mdid = next(d.id for d in h.services.accounts.devices_of(uid) if d.device_id == "phone-2")
    deleted = h.http.delete(
        f"/admin/v1/users/{uid}/mobile-devices/{other_mdid}",
        headers=headers,
        environ_base={"REMOTE_ADDR": ADMIN_IP},
    )
    assert deleted.status_code == 204
    assert h.scan(other_phone, user_code=h.authorize()["user_code"]).status_code == 401
    assert admin_post(h, f"/users/{uid}/sessions/revoke").get_json() == {"revoked": []}
    out = h.http.delete(
        "/admin/v1/auth/token", headers=headers, environ_base={"REMOTE_ADDR": ADMIN_IP}
    )
    assert out.status_code == 204

    by_admin = events(h, actor_id=admin.admin_id)
    assert all(e.actor.kind == "admin" and e.ip == ADMIN_IP for e in by_admin)
    summary = [(e.event, e.family_id or e.client_id or e.mobile_device_id) for e in by_admin]
    assert summary[0] == ("admin.signed_in", None)
    assert summary[1] == ("token.revoked", session_id(h, one))
    assert summary[2:4] == [("client.disabled", other_id), ("token.revoked", session_id(h, three))]
    assert summary[4] == ("client.enabled", other_id)
    assert summary[5] == ("flow.cancelled", h.client_id)
    assert summary[6] == ("device.unbound", mdid)
    assert summary[7] == ("token.revoked", session_id(h, two))
    assert summary[8] == ("device.unbound", other_mdid)
    assert summary[9] == ("admin.signed_out", None)
    assert len(summary) == 10
    reasons = [e.detail["reason"] for e in by_admin if e.event == "token.revoked"]
    assert reasons == ["admin", "client_disabled", "admin"]
    cancelled = next(e for e in by_admin if e.event == "flow.cancelled")
    assert cancelled.flow_ref == hash_secret(pending["device_code"])[:16]
    (created,) = events(h, event="admin.created")
    assert created.actor.kind == "system" and created.detail == {"admin": admin.admin_id}


def test_the_audit_endpoint_filters_and_pages(harness: Harness) -> None:
    h = harness
    session = login(h)
    other = login(h, phone=session.phone)
    sid = session_id(h, session)
    assert admin_post(h, f"/sessions/{sid}/revoke").status_code == 200
    admin = h.extra["admin"]

    page = admin_get(h, "/audit?limit=3")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    newest = page.get_json()["events"]
    assert [e["event"] for e in newest] == ["token.revoked", "admin.signed_in", "admin.created"]
    revoked = newest[0]
    assert revoked["actor"] == {"type": "admin", "id": admin.admin_id}
    assert revoked["ip"] == ADMIN_IP and revoked["session_id"] == sid
    assert revoked["user_id"] == user_id(h) and revoked["client_id"] == h.client_id
    assert revoked["detail"] == {"reason": "admin"}
    assert revoked["occurred_at"].endswith("+00:00")
    assert set(revoked) == {
        "id",
        "event",
        "occurred_at",
        "actor",
        "ip",
        "user_id",
        "client_id",
        "mobile_device_id",
        "session_id",
        "flow_ref",
        "detail",
    }

    older = admin_get(h, f"/audit?limit=3&before={newest[-1]['id']}").get_json()["events"]
    assert all(e["id"] < newest[-1]["id"] for e in older) and len(older) == 3
    every = admin_get(h, "/audit").get_json()["events"]
    assert [e["id"] for e in every] == sorted((e["id"] for e in every), reverse=True)
    assert [e["id"] for e in every[:6]] == [e["id"] for e in newest + older]

    def query(q: str) -> list[str]:
        return [e["event"] for e in admin_get(h, f"/audit?{q}").get_json()["events"]]

    assert query(f"session_id={sid}") == ["token.revoked", "token.issued", "flow.redeemed"]
    assert query(f"session_id={session_id(h, other)}") == ["token.issued", "flow.redeemed"]
    assert query("event=flow.created") == ["flow.created", "flow.created"]
    assert query(f"actor_id={admin.admin_id}") == ["token.revoked", "admin.signed_in"]
    mdid = h.services.accounts.devices_of(user_id(h))[0].id
    assert set(query(f"mobile_device_id={mdid}")) == {
        "device.signed_in",
        "flow.scanned",
        "flow.approved",
        "flow.redeemed",
        "token.issued",
        "token.revoked",
    }
    assert "admin.created" not in query(f"user_id={user_id(h)}")
    assert set(query(f"client_id={h.client_id}&event=flow.scanned")) == {"flow.scanned"}
    assert query("event=no.such.event") == []


def test_the_audit_trail_never_holds_a_secret(harness: Harness) -> None:
    """Drive every kind of event, then look for each secret in every column of every row."""
    h = harness
    secrets: dict[str, str] = {
        "user password": PASSWORD,
        "admin password": ADMIN_PASSWORD,
        "wrong admin password": "Wrong-Admin-Password-7731",
        "wrong user password": "Wrong-User-Password-9923",
    }
    conf_id, conf_secret = h.create_client(confidential=True)
    rs_id, rs_secret = resource_server(h)
    secrets |= {"client secret": conf_secret, "resource server secret": rs_secret}

    def remember(kind: str, value: str) -> None:
        secrets[f"{kind} #{len(secrets)}"] = value

    def remember_flow(started: dict[str, Any]) -> None:
        remember("device code", started["device_code"])
        remember("user code", started["user_code"])
        remember("user code (normalised)", normalize_user_code(started["user_code"]) or "")

    def remember_login(session: Any) -> None:
        remember("access token", session.access_token)
        remember("refresh token", session.refresh_token)
        remember("device code", session.device_code)

    with freeze_time("2030-01-01 12:00:00") as frozen:
        phone = h.sign_in("phone-1")
        remember("device token", phone.token)
        wrong_login = h.http.post(
            "/mobile/v1/sessions",
            json={
                "username": h.username,
                "password": secrets["wrong user password"],
                "device": {"id": "phone-9", "name": "x", "platform": "ios"},
            },
        )
        assert wrong_login.status_code == 401

        # Issued, refreshed, revoked by the client; a single access token revoked.
        started = h.authorize(conf_id, client_secret=conf_secret)
        remember_flow(started)
        screen = h.scan(phone, qr=started["verification_uri_complete"]).get_json()
        remember("confirm token", screen["confirm_token"])
        assert h.decide(phone, screen["confirm_token"]).status_code == 200
        issued = h.http.post(
            "/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": started["device_code"],
            },
            headers=basic(conf_id, conf_secret),
        ).get_json()
        remember("access token", issued["access_token"])
        remember("refresh token", issued["refresh_token"])
        again = refresh(h, issued["refresh_token"], conf_id, conf_secret).get_json()
        remember("access token", again["access_token"])
        remember("refresh token", again["refresh_token"])
        h.http.post(
            "/oauth/introspect",
            data={"token": again["access_token"]},
            headers=basic(rs_id, rs_secret),
        )
        revoke(h, again["access_token"], conf_id, conf_secret)
        revoke(h, again["refresh_token"], conf_id, conf_secret, use_basic=True)

        # Denied; cancelled; replays of a device code and of a refresh token.
        denied = h.authorize()
        remember_flow(denied)
        deny_screen = h.scan(phone, user_code=denied["user_code"]).get_json()
        remember("confirm token", deny_screen["confirm_token"])
        h.decide(phone, deny_screen["confirm_token"], "deny")
        replayed = login(h, phone=phone)
        remember_login(replayed)
        h.poll(replayed.device_code)
        rotated = login(h, phone=phone)
        remember_login(rotated)
        newer = refresh_login(h, rotated)
        remember_login(newer)
        refresh(h, rotated.refresh_token)

        # Admin: sign-in (and a failed one), revocations, disable/enable, cancel, unbind.
        h.http.post(
            "/admin/v1/auth/token",
            json={"username": "root", "password": secrets["wrong admin password"]},
        )
        remember("admin token", admin_headers(h)["Authorization"].removeprefix("Bearer "))
        h.http.post(
            "/admin/v1/auth/token",
            json={"username": "root", "password": secrets["wrong admin password"]},
        )
        kept = login(h, phone=phone)
        remember_login(kept)
        admin_post(h, f"/sessions/{session_id(h, kept)}/revoke")
        cancelled = h.authorize()
        remember_flow(cancelled)
        admin_post(h, "/flows/cancel", json={"user_code": cancelled["user_code"]})
        admin_post(h, f"/clients/{conf_id}/disable")
        admin_post(h, f"/clients/{conf_id}/enable")
        other_phone = h.sign_in("phone-2")
        remember("device token", other_phone.token)
        mdid = next(
            d.id for d in h.services.accounts.devices_of(user_id(h)) if d.device_id == "phone-2"
        )
        h.http.delete(
            f"/admin/v1/users/{user_id(h)}/mobile-devices/{mdid}", headers=admin_headers(h)
        )
        admin_post(h, f"/users/{user_id(h)}/sessions/revoke")
        expiring = h.authorize()
        remember_flow(expiring)
        frozen.tick(h.services.config.device_code_ttl)
        h.poll(expiring["device_code"])
        h.http.delete("/admin/v1/auth/token", headers=admin_headers(h))
        assert h.http.delete("/mobile/v1/sessions", headers=phone.headers()).status_code == 204

    seen = set(names(h))
    assert seen >= {
        "flow.created",
        "flow.scanned",
        "flow.approved",
        "flow.denied",
        "flow.expired",
        "flow.redeemed",
        "flow.replay_detected",
        "flow.cancelled",
        "token.issued",
        "token.refreshed",
        "token.revoked",
        "token.access_revoked",
        "device.signed_in",
        "device.signed_out",
        "device.unbound",
        "client.disabled",
        "client.enabled",
        "admin.created",
        "admin.signed_in",
        "admin.sign_in_failed",
        "admin.signed_out",
    }, seen

    with h.services.database.engine.connect() as conn:
        result = conn.execute(sa.text("SELECT * FROM audit_events"))
        columns = list(result.keys())
        rows = [dict(zip(columns, row, strict=True)) for row in result]
    assert len(rows) > 40
    leaks = []
    for row in rows:
        for column, value in row.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            for kind, secret in secrets.items():
                assert len(secret) >= 8, kind
                if secret in text or hash_secret(secret) in text:
                    leaks.append((row["event"], column, kind))
    assert leaks == []


def test_expiry_seen_on_the_status_channel_or_by_a_phone_is_audited_once(
    harness: Harness,
) -> None:
    with freeze_time("2026-03-01 12:00:00") as frozen:
        watched, scanned = harness.authorize(), harness.authorize()
        phone = harness.sign_in()
        frozen.tick(harness.services.config.device_code_ttl + 1)
        for _ in range(2):
            assert harness.status(watched["device_code"]).get_json()["status"] == "expired"
            assert harness.scan(phone, user_code=scanned["user_code"]).status_code == 400
    events = harness.services.auditor.query(AuditFilter(client_id=harness.client_id))
    expired = [e for e in events if e.event == "flow.expired"]
    assert len(expired) == 2  # one per flow, however often it was seen expired
    assert {e.actor.kind for e in expired} == {"client", "user"}
    assert {e.flow_ref for e in expired} == {
        e.flow_ref for e in events if e.event == "flow.created"
    }
