"""DPoP (RFC 9449) for the PC: a key-bound device code, key-bound tokens, and the attacks that fail.

Each attack is made over HTTP as an attacker would: with a stolen device code, refresh token or
access token but not the PC's private key, or with a proof seen on the wire.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from qrlogin_client.dpop import DpopKey
from tests.functional.harness import ISSUER, Harness
from tests.functional.lifecycle import introspection

TOKEN_URL = f"{ISSUER}/oauth/token"
DEVICE_URL = f"{ISSUER}/oauth/device_authorization"
ME_URL = f"{ISSUER}/api/v1/me"


def start(h: Harness, key: DpopKey) -> dict[str, Any]:
    response = h.http.post(
        "/oauth/device_authorization",
        data={"client_id": h.client_id, "scope": "profile"},
        headers={"DPoP": key.proof("POST", DEVICE_URL)},
    )
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def poll(h: Harness, device_code: str, key: DpopKey | None, **extra: str) -> Any:
    headers = {"DPoP": key.proof("POST", TOKEN_URL)} if key else {}
    return h.http.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": device_code,
            "client_id": h.client_id,
            **extra,
        },
        headers=headers,
    )


def refresh(h: Harness, refresh_token: str, key: DpopKey | None) -> Any:
    headers = {"DPoP": key.proof("POST", TOKEN_URL)} if key else {}
    return h.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": h.client_id,
        },
        headers=headers,
    )


def me(h: Harness, token: str, key: DpopKey | None, scheme: str = "DPoP", **proof: Any) -> Any:
    headers = {"Authorization": f"{scheme} {token}"}
    if key is not None:
        headers["DPoP"] = key.proof("GET", ME_URL, access_token=token, **proof)
    return h.http.get("/api/v1/me", headers=headers)


def signed_in(h: Harness, key: DpopKey) -> dict[str, Any]:
    started = start(h, key)
    h.approve(started)
    response = poll(h, started["device_code"], key)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def test_metadata_advertises_the_dpop_algorithms(harness: Harness) -> None:
    metadata = harness.http.get("/.well-known/oauth-authorization-server").get_json()
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]
    assert not {"none", "HS256"} & set(metadata["dpop_signing_alg_values_supported"])


def test_a_dpop_login_issues_tokens_bound_to_the_pcs_key(harness: Harness) -> None:
    key = DpopKey()
    tokens = signed_in(harness, key)
    assert tokens["token_type"] == "DPoP"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": key.thumbprint}
    answer = me(harness, tokens["access_token"], key)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["sub"] == claims["sub"]
    # RFC 9449 §6.2: introspection tells a resource server the binding.
    introspected = introspection(harness, tokens["access_token"])
    assert introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": key.thumbprint}


def test_a_stolen_device_code_is_worthless_without_the_key(harness: Harness) -> None:
    owner, thief = DpopKey(), DpopKey()
    started = start(harness, owner)
    harness.approve(started)
    without_proof = poll(harness, started["device_code"], None)
    assert without_proof.status_code == 400
    assert without_proof.get_json()["error"] == "invalid_dpop_proof"
    other_key = poll(harness, started["device_code"], thief)
    assert other_key.status_code == 400
    assert other_key.get_json()["error"] == "invalid_grant"
    # The thief's polls changed nothing: the owner still signs in, once.
    assert poll(harness, started["device_code"], owner).status_code == 200


def test_a_dpop_bound_access_token_is_refused_as_a_bearer_token(harness: Harness) -> None:
    key = DpopKey()
    token = signed_in(harness, key)["access_token"]
    bearer = me(harness, token, None, scheme="Bearer")
    assert bearer.status_code == 401
    assert bearer.get_json()["error"] == "invalid_token"
    no_proof = me(harness, token, None)
    assert no_proof.status_code == 401
    assert no_proof.get_json()["error"] == "invalid_dpop_proof"
    assert no_proof.headers["WWW-Authenticate"].startswith("DPoP ")
    thief = me(harness, token, DpopKey())
    assert thief.status_code == 401
    assert thief.get_json()["error"] == "invalid_dpop_proof"


def test_a_replayed_proof_is_refused(harness: Harness) -> None:
    key = DpopKey()
    token = signed_in(harness, key)["access_token"]
    proof = key.proof("GET", ME_URL, access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert harness.http.get("/api/v1/me", headers=headers).status_code == 200
    replayed = harness.http.get("/api/v1/me", headers=headers)
    assert replayed.status_code == 401
    assert "already used" in replayed.get_json()["error_description"]


@pytest.mark.parametrize(
    "tamper",
    ["other_method", "other_url", "old", "future", "no_ath"],
)
def test_a_proof_for_another_request_or_time_is_refused(harness: Harness, tamper: str) -> None:
    key = DpopKey()
    token = signed_in(harness, key)["access_token"]
    method, url, ath, iat = "GET", ME_URL, token, time.time()
    if tamper == "other_method":
        method = "POST"
    elif tamper == "other_url":
        url = f"{ISSUER}/userinfo"
    elif tamper == "old":
        iat -= 3600
    elif tamper == "future":
        iat += 3600
    proof = key.proof(method, url, access_token=None if tamper == "no_ath" else ath, iat=iat)
    answer = harness.http.get(
        "/api/v1/me", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_dpop_proof"


def test_a_public_clients_refresh_token_needs_its_key(harness: Harness) -> None:
    key = DpopKey()
    tokens = signed_in(harness, key)
    assert refresh(harness, tokens["refresh_token"], None).get_json()["error"] == (
        "invalid_dpop_proof"
    )
    assert refresh(harness, tokens["refresh_token"], DpopKey()).get_json()["error"] == (
        "invalid_grant"
    )
    # Refused without revoking: the thief cannot end the owner's session either.
    refreshed = refresh(harness, tokens["refresh_token"], key)
    assert refreshed.status_code == 200, refreshed.get_json()
    assert refreshed.get_json()["token_type"] == "DPoP"
    assert me(harness, refreshed.get_json()["access_token"], key).status_code == 200


def test_bearer_clients_keep_working(harness: Harness) -> None:
    started = harness.authorize(scope="profile")
    harness.approve(started)
    tokens = harness.poll(started["device_code"]).get_json()
    assert tokens["token_type"] == "Bearer"
    assert "cnf" not in jwt.decode(tokens["access_token"], options={"verify_signature": False})
    answer = harness.http.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert answer.status_code == 200
    # A bearer token sent with the DPoP scheme is refused (it proves no key).
    assert me(harness, tokens["access_token"], DpopKey()).status_code == 401


def test_a_bad_proof_at_the_device_authorization_endpoint_is_refused(harness: Harness) -> None:
    key = DpopKey()
    response = harness.http.post(
        "/oauth/device_authorization",
        data={"client_id": harness.client_id},
        headers={"DPoP": key.proof("POST", TOKEN_URL)},  # signed for another URI
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_dpop_proof"


class TestNonces:
    @pytest.fixture
    def settings(self) -> dict[str, Any]:
        return {"dpop_nonce": "required"}

    def test_a_proof_without_the_servers_nonce_gets_one_to_use(self, harness: Harness) -> None:
        key = DpopKey()
        first = harness.http.post(
            "/oauth/device_authorization",
            data={"client_id": harness.client_id},
            headers={"DPoP": key.proof("POST", DEVICE_URL)},
        )
        assert first.status_code == 400
        assert first.get_json()["error"] == "use_dpop_nonce"
        nonce = first.headers["DPoP-Nonce"]
        second = harness.http.post(
            "/oauth/device_authorization",
            data={"client_id": harness.client_id},
            headers={"DPoP": key.proof("POST", DEVICE_URL, nonce=nonce)},
        )
        assert second.status_code == 200, second.get_json()
        started = second.get_json()
        harness.approve(started)
        made_up = harness.http.post(
            "/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": started["device_code"],
                "client_id": harness.client_id,
            },
            headers={"DPoP": key.proof("POST", TOKEN_URL, nonce="made-up")},
        )
        assert made_up.get_json()["error"] == "use_dpop_nonce"
        tokens = harness.http.post(
            "/oauth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "device_code": started["device_code"],
                "client_id": harness.client_id,
            },
            headers={"DPoP": key.proof("POST", TOKEN_URL, nonce=second.headers["DPoP-Nonce"])},
        )
        assert tokens.status_code == 200, tokens.get_json()
        token = tokens.get_json()["access_token"]
        at_resource = me(harness, token, key)
        assert at_resource.status_code == 401
        assert 'error="use_dpop_nonce"' in at_resource.headers["WWW-Authenticate"]
        nonce = at_resource.headers["DPoP-Nonce"]
        assert me(harness, token, key, nonce=nonce).status_code == 200
