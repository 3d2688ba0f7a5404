"""Every way a grant is revoked, end to end over HTTP, on both backends.

For each path: the refresh token fails, introspection (as a resource server) reads exactly
{"active": false}, /api/v1/me refuses the access token, and what was not targeted still works.
"""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from freezegun import freeze_time

from tests.functional.harness import Harness
from tests.functional.lifecycle import (
    access_alive,
    admin_post,
    assert_alive,
    assert_dead,
    introspection,
    login,
    me,
    refresh,
    refresh_login,
    resource_server,
    revoke,
    revoked_ok,
    session_id,
    user_id,
)


# --- RFC 7009: the client revokes ------------------------------------------------------------
def test_client_revokes_its_refresh_token_and_the_whole_grant_dies(harness: Harness) -> None:
    h = harness
    first = login(h)
    target = refresh_login(h, first)  # the family now has two live access tokens
    other_user = login(h, phone=h.sign_in("phone-b", username=h.create_user()))
    other_client_id, secret = h.create_client(confidential=True)
    other_client = login(h, client_id=other_client_id, secret=secret, phone=first.phone)

    # Checked before: a resource server has them in its view, deny-list included.
    assert_alive(h, target)
    assert access_alive(h, first.access_token)

    revoked_ok(revoke(h, target.refresh_token))

    assert_dead(h, target)
    assert not access_alive(h, first.access_token)  # the family's earlier access token too
    assert_alive(h, other_user)
    assert_alive(h, other_client)
    # Revoking again, or revoking a spent token of the family, is still a plain 200.
    revoked_ok(revoke(h, target.refresh_token))
    revoked_ok(revoke(h, first.refresh_token))


def test_client_revokes_an_access_token_and_only_that_token_dies(harness: Harness) -> None:
    h = harness
    first = login(h)
    second = refresh_login(h, first)
    sibling = login(h, phone=first.phone)

    assert access_alive(h, second.access_token)

    revoked_ok(revoke(h, second.access_token, hint="access_token"))

    assert not access_alive(h, second.access_token)
    assert access_alive(h, first.access_token)  # the same family's other access token
    assert_alive(h, sibling)
    # The grant itself lives on: its refresh token works and the new access token is good.
    third = refresh_login(h, second)
    assert access_alive(h, third.access_token)
    assert not access_alive(h, second.access_token)  # and the revoked one stays revoked


def test_admin_revokes_one_session(harness: Harness) -> None:
    h = harness
    target = login(h)
    same_user = login(h, phone=target.phone)
    sid = session_id(h, target)
    assert_alive(h, target)

    revoked = admin_post(h, f"/sessions/{sid}/revoke")
    assert revoked.status_code == 200 and revoked.get_json() == {"revoked": [sid]}

    assert_dead(h, target)
    assert_alive(h, same_user)
    assert admin_post(h, f"/sessions/{sid}/revoke").get_json() == {"revoked": []}


def test_admin_revokes_all_of_a_users_sessions(harness: Harness) -> None:
    h = harness
    other_client_id, secret = h.create_client(confidential=True)
    first = login(h)
    second = login(h, client_id=other_client_id, secret=secret, phone=first.phone)
    bob = h.create_user()
    bystander = login(h, phone=h.sign_in("phone-b", username=bob))
    assert_alive(h, first)
    assert_alive(h, second)

    revoked = admin_post(h, f"/users/{user_id(h)}/sessions/revoke")
    assert revoked.status_code == 200
    assert sorted(revoked.get_json()["revoked"]) == sorted(
        [session_id(h, first), session_id(h, second)]
    )

    assert_dead(h, first)
    assert_dead(h, second)
    assert_alive(h, bystander)
    # The user can log in again: revocation ends sessions, not the account.
    assert_alive(h, login(h, phone=first.phone))


def test_admin_revokes_all_of_a_clients_sessions(harness: Harness) -> None:
    h = harness
    other_client_id, secret = h.create_client(confidential=True)
    alice = login(h)
    bob = login(h, phone=h.sign_in("phone-b", username=h.create_user()))
    elsewhere = login(h, client_id=other_client_id, secret=secret, phone=alice.phone)
    assert_alive(h, alice)
    assert_alive(h, bob)

    revoked = admin_post(h, f"/clients/{h.client_id}/sessions/revoke")
    assert sorted(revoked.get_json()["revoked"]) == sorted(
        [session_id(h, alice), session_id(h, bob)]
    )

    assert_dead(h, alice)
    assert_dead(h, bob)
    assert_alive(h, elsewhere)
    # The client itself stays enabled: new logins work.
    assert_alive(h, login(h, phone=alice.phone))


def test_admin_revokes_everything_approved_from_one_phone(harness: Harness) -> None:
    h = harness
    first_sign_in = h.sign_in("phone-1")
    from_first = login(h, phone=first_sign_in)
    # The same phone signs in again (a new mobile-device record) and approves another login.
    again = h.sign_in("phone-1")
    from_again = login(h, phone=again)
    other_phone = h.sign_in("phone-2")
    from_other_phone = login(h, phone=other_phone)
    bob_phone = h.sign_in("phone-1", username=h.create_user())  # another user, same device id
    from_bob = login(h, phone=bob_phone)

    devices = h.services.accounts.devices_of(user_id(h))
    first_record = next(d.id for d in devices if d.revoked_at is not None)
    assert_alive(h, from_first)
    assert_alive(h, from_again)
    revoked = admin_post(h, f"/mobile-devices/{first_record}/sessions/revoke")
    assert revoked.status_code == 200
    assert sorted(revoked.get_json()["revoked"]) == sorted(
        [session_id(h, from_first), session_id(h, from_again)]
    )

    assert_dead(h, from_first)
    assert_dead(h, from_again)
    assert_alive(h, from_other_phone)
    assert_alive(h, from_bob)
    # The phone is signed out: its device token no longer scans.
    started = h.authorize()
    refused = h.scan(again, qr=started["verification_uri_complete"])
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_token"
    assert h.scan(other_phone, qr=started["verification_uri_complete"]).status_code == 200
    assert h.scan(bob_phone, user_code=h.authorize()["user_code"]).status_code == 200


def test_disabling_a_client_revokes_everything_it_holds(harness: Harness) -> None:
    h = harness
    other_client_id, secret = h.create_client(confidential=True)
    target = login(h, client_id=other_client_id, secret=secret)
    target_bob = login(
        h,
        client_id=other_client_id,
        secret=secret,
        phone=h.sign_in("phone-b", username=h.create_user()),
    )
    bystander = login(h, phone=target.phone)
    assert_alive(h, target)
    assert_alive(h, target_bob)

    disabled = admin_post(h, f"/clients/{other_client_id}/disable")
    assert disabled.status_code == 200 and disabled.get_json()["disabled_at"]

    # The disabled client cannot authenticate at all, so its refresh is invalid_client.
    assert_dead(h, target, refresh_error="invalid_client")
    assert_dead(h, target_bob, refresh_error="invalid_client")
    assert_alive(h, bystander)

    # Re-enabled, the client works again, but what it held stays revoked.
    assert admin_post(h, f"/clients/{other_client_id}/enable").status_code == 200
    assert_dead(h, target)
    assert_dead(h, target_bob)


def test_refresh_token_replay_revokes_the_family(harness: Harness) -> None:
    h = harness
    first = login(h)
    second = refresh_login(h, first)
    bystander = login(h, phone=first.phone)

    assert_alive(h, second)

    replayed = refresh(h, first.refresh_token)
    assert replayed.status_code == 400 and replayed.get_json()["error"] == "invalid_grant"

    assert_dead(h, second)
    assert not access_alive(h, first.access_token)
    assert_alive(h, bystander)


def test_device_code_replay_revokes_the_family(harness: Harness) -> None:
    h = harness
    target = login(h)
    bystander = login(h, phone=target.phone)
    assert_alive(h, target)

    replayed = h.poll(target.device_code)
    assert replayed.status_code == 400 and replayed.get_json()["error"] == "invalid_grant"

    assert_dead(h, target)
    assert_alive(h, bystander)


# --- RFC 7009 details --------------------------------------------------------------------
def test_any_hint_finds_either_kind_of_token(harness: Harness) -> None:
    """§2.1: the hint only speeds the search; a wrong or unknown hint still finds the token."""
    h = harness
    phone = h.sign_in()
    for hint in (None, "refresh_token", "access_token", "something_else"):
        by_refresh = login(h, phone=phone)
        by_access = login(h, phone=phone)
        assert_alive(h, by_refresh)
        assert access_alive(h, by_access.access_token)

        revoked_ok(revoke(h, by_refresh.refresh_token, hint=hint))
        revoked_ok(revoke(h, by_access.access_token, hint=hint))

        assert_dead(h, by_refresh)
        assert not access_alive(h, by_access.access_token), hint
        assert introspection(h, by_access.refresh_token)["active"]  # only the access token went


def test_unknown_garbage_and_expired_tokens_get_200(harness: Harness) -> None:
    h = harness
    with freeze_time("2030-01-01 12:00:00") as frozen:
        session = login(h)
        # The same claims and kid, signed with another key: not this server's token.
        forged = jwt.encode(
            jwt.decode(session.access_token, options={"verify_signature": False}),
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers=jwt.get_unverified_header(session.access_token),
        )
        for token in ("nope", "a.b.c", "x" * 4000, "ünïcode", forged, session.access_token + "x"):
            for hint in (None, "access_token", "refresh_token"):
                revoked_ok(revoke(h, token, hint=hint))
        assert_alive(h, session)
        frozen.tick(601)  # the access token has expired: revoking it is a no-op, still 200
        revoked_ok(revoke(h, session.access_token))
        assert refresh(h, session.refresh_token).status_code == 200


def test_another_clients_tokens_are_left_untouched(harness: Harness) -> None:
    h = harness
    victim = login(h)
    other_id, secret = h.create_client(confidential=True)
    public_other, _ = h.create_client(confidential=False)

    for caller, caller_secret in ((other_id, secret), (public_other, None)):
        for token in (victim.access_token, victim.refresh_token):
            for hint in (None, "access_token", "refresh_token"):
                revoked_ok(revoke(h, token, caller, caller_secret, hint=hint))

    assert_alive(h, victim)
    assert refresh(h, victim.refresh_token).status_code == 200


@pytest.mark.parametrize("use_basic", [True, False], ids=["basic", "post"])
def test_confidential_client_authenticates_to_revoke(harness: Harness, use_basic: bool) -> None:
    h = harness
    client_id, secret = h.create_client(confidential=True)
    session = login(h, client_id=client_id, secret=secret)

    wrong = revoke(h, session.refresh_token, client_id, "wrong", use_basic=use_basic)
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    no_secret = h.http.post(
        "/oauth/revoke", data={"token": session.refresh_token, "client_id": client_id}
    )
    assert no_secret.status_code == 401 and no_secret.get_json()["error"] == "invalid_client"
    assert_alive(h, session)  # nothing happened on the refused calls (and it is in view)

    revoked_ok(revoke(h, session.refresh_token, client_id, secret, use_basic=use_basic))
    assert_dead(h, session)


def test_revoke_request_errors(harness: Harness) -> None:
    h = harness
    session = login(h)

    missing = h.http.post("/oauth/revoke", data={"client_id": h.client_id})
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"
    empty = h.http.post("/oauth/revoke", data={"client_id": h.client_id, "token": ""})
    assert empty.status_code == 400 and empty.get_json()["error"] == "invalid_request"
    no_client = h.http.post("/oauth/revoke", data={"token": session.refresh_token})
    assert no_client.status_code == 401 and no_client.get_json()["error"] == "invalid_client"
    unknown = revoke(h, session.refresh_token, "no-such-client")
    assert unknown.status_code == 401 and unknown.get_json()["error"] == "invalid_client"
    # A public client has no secret to present.
    public_with_secret = revoke(h, session.refresh_token, h.client_id, "made-up")
    assert public_with_secret.status_code == 401

    # A resource server may introspect but not revoke.
    rs_id, rs_secret = resource_server(h)
    for use_basic in (True, False):
        refused = revoke(h, session.refresh_token, rs_id, rs_secret, use_basic=use_basic)
        assert refused.status_code == 400, refused.get_json()
        assert refused.get_json()["error"] == "unauthorized_client"
    wrong_rs = revoke(h, session.refresh_token, rs_id, "wrong", use_basic=True)
    assert wrong_rs.status_code == 401 and wrong_rs.get_json()["error"] == "invalid_client"

    assert_alive(h, session)
    assert me(h, session.access_token).get_json()["client_id"] == h.client_id
