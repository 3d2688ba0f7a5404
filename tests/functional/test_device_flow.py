"""The QR login flow end to end over HTTP, on the embedded store + SQLite and Redis + PostgreSQL."""

from __future__ import annotations

import jwt

from tests.functional.harness import ISSUER, Harness


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
    assert screen["requesting_device"]["user_agent"] == "TestPC/1.0"

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
