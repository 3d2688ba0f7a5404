"""The QR login flow end to end over HTTP, on the embedded store + SQLite and Redis + PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import threading

import jwt
import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from authserver.domain.codes import hash_secret
from tests.functional.harness import ISSUER, Harness, basic


def test_full_flow_qr_scan_confirm_token_refresh_and_replays(harness: Harness) -> None:
    started = harness.authorize(scope="profile")
    assert started["verification_uri"] == f"{ISSUER}/device"
    assert started["verification_uri_complete"].endswith(f"user_code={started['user_code']}")
    assert started["interval"] == 5 and started["expires_in"] == 600

    pending = harness.poll(started["device_code"])
    assert pending.status_code == 400
    assert pending.get_json()["error"] == "authorization_pending"
    assert pending.headers["Cache-Control"] == "no-store"
    assert harness.status(started["device_code"]).get_json()["status"] == "pending"

    phone = harness.sign_in()
    scanned = harness.scan(phone, qr=started["verification_uri_complete"])
    assert scanned.status_code == 200
    screen = scanned.get_json()
    assert screen["client"] == {"client_id": harness.client_id, "name": "Test PC app"}
    assert screen["scopes"] == ["profile"]
    assert screen["user_code"] == started["user_code"]
    assert screen["requesting_device"]["ip"] == "203.0.113.7"
    # What the PC says it is, parsed (its raw text is never shown): TestPC is no known family.
    assert screen["requesting_device"]["device_says"] == "an unknown device"

    status = harness.status(started["device_code"]).get_json()
    assert status["status"] == "scanned"
    assert status["scanner"]["name"] == "A*** L***"  # masked, never the full name

    confirmed = harness.decide(phone, screen["confirm_token"])
    assert confirmed.get_json() == {"status": "approved"}
    assert harness.decide(phone, screen["confirm_token"]).status_code == 400  # used once

    issued = harness.poll(started["device_code"])
    assert issued.status_code == 200, issued.get_json()
    tokens = issued.get_json()
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "profile"
    assert issued.headers["Cache-Control"] == "no-store"

    # RFC 9068 access token, verifiable with the published JWKS.
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    jwks = harness.http.get("/oauth/jwks").get_json()
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    claims = jwt.decode(tokens["access_token"], key, algorithms=["ES256"], audience=ISSUER)
    assert claims["iss"] == ISSUER and claims["client_id"] == harness.client_id
    assert claims["scope"] == "profile" and claims["jti"]
    assert claims["exp"] - claims["iat"] == tokens["expires_in"]

    refreshed = harness.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200
    new_refresh = refreshed.get_json()["refresh_token"]
    assert new_refresh != tokens["refresh_token"]

    # RFC 9700 §4.14.2: the old refresh token replayed revokes the whole family.
    replay = harness.refresh(tokens["refresh_token"])
    assert replay.get_json()["error"] == "invalid_grant"
    assert harness.refresh(new_refresh).get_json()["error"] == "invalid_grant"

    # A redeemed device code is invalid_grant.
    assert harness.poll(started["device_code"]).get_json()["error"] == "invalid_grant"


def test_deny_from_the_phone_gives_access_denied(harness: Harness) -> None:
    started = harness.authorize()
    phone = harness.sign_in()
    screen = harness.scan(phone, user_code=started["user_code"].lower().replace("-", " "))
    assert screen.status_code == 200  # typed code: case and punctuation normalised
    denied = harness.decide(phone, screen.get_json()["confirm_token"], "deny")
    assert denied.get_json() == {"status": "denied"}
    assert harness.poll(started["device_code"]).get_json()["error"] == "access_denied"
    assert harness.status(started["device_code"]).get_json()["status"] == "denied"
    # A denied flow cannot be scanned again.
    assert harness.scan(phone, user_code=started["user_code"]).status_code == 409


def test_expiry_is_decided_by_the_clock_at_every_step(harness: Harness) -> None:
    with freeze_time("2026-01-01 12:00:00") as frozen:
        started = harness.authorize()
        phone = harness.sign_in()
        screen = harness.scan(phone, qr=started["verification_uri_complete"]).get_json()
        frozen.tick(121)  # the confirm token (120 s) expires before the flow does
        late = harness.decide(phone, screen["confirm_token"])
        assert late.get_json()["error"] == "invalid_confirm_token"
        frozen.tick(600)
        assert harness.poll(started["device_code"]).get_json()["error"] == "expired_token"
        assert harness.status(started["device_code"]).get_json()["status"] == "expired"
        rescan = harness.scan(phone, qr=started["verification_uri_complete"])
        assert rescan.get_json()["error"] == "expired_token"


def test_approved_but_expired_flow_issues_nothing(harness: Harness) -> None:
    with freeze_time("2026-01-01 12:00:00") as frozen:
        started = harness.authorize()
        harness.approve(started)
        frozen.tick(600)
        assert harness.poll(started["device_code"]).get_json()["error"] == "expired_token"


def test_slow_down_is_per_code_grows_by_five_and_counts_from_the_last_accepted_poll(
    harness: Harness,
) -> None:
    with freeze_time("2026-01-01 12:00:00") as frozen:
        started = harness.authorize()
        other = harness.authorize()
        code = started["device_code"]
        assert harness.poll(code).get_json()["error"] == "authorization_pending"  # first: never
        frozen.tick(2)
        assert harness.poll(code).get_json()["error"] == "slow_down"  # interval now 10
        # Another code is not affected by this one's pace.
        assert harness.poll(other["device_code"]).get_json()["error"] == "authorization_pending"
        frozen.tick(6)  # 8 s after the last accepted poll: < 10
        assert harness.poll(code).get_json()["error"] == "slow_down"  # interval now 15
        frozen.tick(7)  # 15 s after the last accepted poll
        assert harness.poll(code).get_json()["error"] == "authorization_pending"
        frozen.tick(15)
        assert harness.poll(code).get_json()["error"] == "authorization_pending"


def test_concurrent_redemption_has_exactly_one_winner(harness: Harness) -> None:
    started = harness.authorize()
    harness.approve(started)
    barrier = threading.Barrier(8)

    def redeem(_: int) -> tuple[int, dict[str, str]]:
        http = harness.http.application.test_client()
        barrier.wait()
        response = http.post(
            "/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": started["device_code"],
                "client_id": harness.client_id,
            },
        )
        return response.status_code, response.get_json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(redeem, range(8)))
    winners = [body for status, body in results if status == 200]
    assert len(winners) == 1
    # A loser that arrives while the winner holds its claim is told to keep polling; one that
    # arrives after the winner committed is a replay and revokes (DESIGN): the store contract
    # tests pin both.
    losers = {body["error"] for status, body in results if status != 200}
    assert losers <= {"authorization_pending", "invalid_grant"}


def test_replayed_device_code_after_issuance_revokes_the_grant(harness: Harness) -> None:
    started = harness.authorize()
    harness.approve(started)
    tokens = harness.poll(started["device_code"]).get_json()
    assert harness.poll(started["device_code"]).get_json()["error"] == "invalid_grant"
    assert harness.refresh(tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_a_code_is_bound_to_its_client(harness: Harness) -> None:
    started = harness.authorize()
    other_client, _ = harness.create_client(confidential=False)
    stolen = harness.poll(started["device_code"], client_id=other_client)
    assert stolen.status_code == 400 and stolen.get_json()["error"] == "invalid_grant"
    unknown = harness.poll(started["device_code"], client_id="no-such-client")
    assert unknown.status_code == 401 and unknown.get_json()["error"] == "invalid_client"
    # The owner is unaffected: its first poll is still not throttled, and it can finish.
    assert harness.poll(started["device_code"]).get_json()["error"] == "authorization_pending"
    harness.approve(started)
    assert harness.poll(started["device_code"]).status_code == 200


def test_refresh_token_is_bound_to_its_client(harness: Harness) -> None:
    started = harness.authorize()
    harness.approve(started)
    tokens = harness.poll(started["device_code"]).get_json()
    other_client, _ = harness.create_client(confidential=False)
    assert harness.refresh(tokens["refresh_token"], other_client).get_json()["error"] == (
        "invalid_grant"
    )
    assert harness.refresh(tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize("method", ["basic", "post"])
def test_confidential_client_authenticates_on_every_call(harness: Harness, method: str) -> None:
    client_id, secret = harness.create_client(confidential=True)
    auth = basic(client_id, secret) if method == "basic" else {}
    body = {} if method == "basic" else {"client_id": client_id, "client_secret": secret}
    started = harness.http.post("/oauth/device_authorization", data=body, headers=auth)
    assert started.status_code == 200
    device_code = started.get_json()["device_code"]
    token_body = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": device_code,
        **body,
    }
    pending = harness.http.post("/oauth/token", data=token_body, headers=auth)
    assert pending.get_json()["error"] == "authorization_pending"

    wrong = (
        {"headers": basic(client_id, "wrong")}
        if method == "basic"
        else {"data": {**token_body, "client_secret": "wrong"}}
    )
    bad = harness.http.post("/oauth/token", **{"data": token_body, **wrong})
    assert bad.status_code == 401 and bad.get_json()["error"] == "invalid_client"
    if method == "basic":
        assert bad.headers["WWW-Authenticate"].startswith("Basic")
    no_secret = harness.poll(device_code, client_id=client_id)
    assert no_secret.status_code == 401

    harness.approve(started.get_json())
    issued = harness.http.post("/oauth/token", data=token_body, headers=auth)
    assert issued.status_code == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": issued.get_json()["refresh_token"]}
    refreshed = harness.http.post("/oauth/token", data={**refresh, **body}, headers=auth)
    assert refreshed.status_code == 200


def test_one_phone_per_flow_and_device_bound_tokens(harness: Harness) -> None:
    started = harness.authorize()
    phone = harness.sign_in("phone-1")
    intruder = harness.sign_in("phone-2", username=harness.create_user())
    first = harness.scan(phone, qr=started["verification_uri_complete"])
    assert first.status_code == 200
    second = harness.scan(intruder, qr=started["verification_uri_complete"])
    assert second.status_code == 409 and second.get_json()["error"] == "already_scanned"
    confirm_token = first.get_json()["confirm_token"]
    # Another phone cannot use the first phone's confirm token...
    assert harness.decide(intruder, confirm_token).get_json()["error"] == "invalid_confirm_token"
    # ...nor can the first phone's token be used from another device id.
    stolen = harness.http.post(
        "/mobile/v1/confirm",
        json={"confirm_token": confirm_token},
        headers=phone.headers(device_id="phone-2"),
    )
    assert stolen.status_code == 401 and stolen.get_json()["error"] == "invalid_token"
    assert stolen.headers["WWW-Authenticate"].startswith("Bearer")
    # The same phone may scan again (its app retried); the old confirm token then stops working.
    rescan = harness.scan(phone, qr=started["verification_uri_complete"])
    assert rescan.status_code == 200
    assert harness.decide(phone, confirm_token).get_json()["error"] == "invalid_confirm_token"
    assert harness.decide(phone, rescan.get_json()["confirm_token"]).status_code == 200


def test_signed_out_phone_is_refused(harness: Harness) -> None:
    phone = harness.sign_in()
    assert harness.http.delete("/mobile/v1/sessions", headers=phone.headers()).status_code == 204
    started = harness.authorize()
    refused = harness.scan(phone, user_code=started["user_code"])
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_token"


def test_status_channel_long_poll_wakes_on_scan(harness: Harness) -> None:
    started = harness.authorize()
    phone = harness.sign_in()
    timer = threading.Timer(
        0.3, lambda: harness.scan(phone, qr=started["verification_uri_complete"])
    )
    timer.start()
    waited = harness.status(started["device_code"], status="pending", wait="10")
    timer.join()
    assert waited.get_json()["status"] == "scanned"
    # Nothing changes: the wait ends at its bound with the same status.
    quiet = harness.status(started["device_code"], status="scanned", wait="0.2")
    assert quiet.get_json()["status"] == "scanned"
    # The device code is never accepted in the URL of the status channel's owner check.
    other_client, _ = harness.create_client(confidential=False)
    foreign = harness.http.post(
        "/oauth/device_status",
        data={"device_code": started["device_code"], "client_id": other_client},
    )
    assert foreign.get_json()["error"] == "invalid_grant"


def test_qr_images_encode_verification_uri_complete(harness: Harness) -> None:
    started = harness.authorize()
    png = harness.http.get(started["qr_code_png"].removeprefix(ISSUER))
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    svg = harness.http.get(started["qr_code_svg"].removeprefix(ISSUER))
    assert svg.status_code == 200 and b"<svg" in svg.data
    assert harness.http.get("/qr/AEIO-UAEI.png").status_code == 404


def test_metadata_documents(harness: Harness) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        meta = harness.http.get(path).get_json()
        assert meta["issuer"] == ISSUER
        assert meta["device_authorization_endpoint"] == f"{ISSUER}/oauth/device_authorization"
        assert meta["token_endpoint"] == f"{ISSUER}/oauth/token"
        assert meta["jwks_uri"] == f"{ISSUER}/oauth/jwks"
        assert "urn:ietf:params:oauth:grant-type:device_code" in meta["grant_types_supported"]
        assert "refresh_token" in meta["grant_types_supported"]
        assert "none" in meta["token_endpoint_auth_methods_supported"]
        assert meta["response_types_supported"] == ["code"]
        assert meta["scopes_supported"] == ["openid", "profile", "email", "offline_access"]


def test_replay_after_the_flow_left_the_store_still_revokes(harness: Harness) -> None:
    started = harness.authorize()
    harness.approve(started)
    tokens = harness.poll(started["device_code"]).get_json()
    forget_flow(harness, hash_secret(started["device_code"]))  # as the TTL clean-up would
    replay = harness.poll(started["device_code"])
    assert replay.get_json()["error"] == "invalid_grant"
    assert harness.refresh(tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_concurrent_refreshes_of_one_token_have_one_winner_then_revoke(harness: Harness) -> None:
    started = harness.authorize()
    harness.approve(started)
    refresh_token = harness.poll(started["device_code"]).get_json()["refresh_token"]
    barrier = threading.Barrier(6)

    def refresh(_: int) -> int:
        http = harness.http.application.test_client()
        barrier.wait()
        return http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": harness.client_id,
            },
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(refresh, range(6)))
    assert statuses.count(200) == 1 and statuses.count(400) == 5
    # The losers presented a spent token: replays, so the whole family is revoked.
    with harness.services.database.engine.connect() as conn:
        revoked = conn.execute(sa.text("SELECT revoked_reason FROM token_families")).scalar_one()
    assert revoked == "refresh_token_replay"


def forget_flow(harness: Harness, device_code_hash: str) -> None:
    """Remove a flow the way its store's clean-up eventually does."""
    store = harness.services.flow_store
    if harness.services.redis is not None:
        harness.services.redis.delete(
            f"{harness.services.config.redis_prefix}flow:{device_code_hash}"
        )
    else:
        store._flows.pop(device_code_hash)  # type: ignore[attr-defined]
    assert store.get(device_code_hash) is None
