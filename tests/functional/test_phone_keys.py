"""A key-bound phone (RFC 9449 applied to the mobile API): a copied device token and device id
are worthless without the app's private key."""

from __future__ import annotations

from typing import Any

import pytest

from qrlogin_client.dpop import DpopKey
from tests.functional.harness import ISSUER, PASSWORD, Harness


def sign_in(h: Harness, key: DpopKey, device_id: str = "phone-k") -> str:
    url = f"{ISSUER}/mobile/v1/sessions"
    response = h.http.post(
        "/mobile/v1/sessions",
        json={
            "username": h.username,
            "password": PASSWORD,
            "device": {"id": device_id, "name": "Key phone", "platform": "android"},
        },
        headers={"DPoP": key.proof("POST", url)},
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["token_type"] == "DPoP"
    return str(response.get_json()["device_token"])


def call(
    h: Harness,
    path: str,
    token: str,
    key: DpopKey | None,
    body: dict[str, Any],
    *,
    scheme: str = "DPoP",
    proof: str | None = None,
) -> Any:
    headers = {"Authorization": f"{scheme} {token}", "X-Device-Id": "phone-k"}
    if key is not None:
        headers["DPoP"] = proof or key.proof("POST", f"{ISSUER}{path}", access_token=token)
    return h.http.post(path, json=body, headers=headers)


def test_a_key_bound_phone_scans_and_confirms_with_proofs(harness: Harness) -> None:
    key = DpopKey()
    token = sign_in(harness, key)
    started = harness.authorize()
    qr = {"qr": started["verification_uri_complete"]}
    scanned = call(harness, "/mobile/v1/scan", token, key, qr)
    assert scanned.status_code == 200, scanned.get_json()
    body = {"confirm_token": scanned.get_json()["confirm_token"]}
    confirmed = call(harness, "/mobile/v1/confirm", token, key, body)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert harness.poll(started["device_code"]).status_code == 200


def test_a_stolen_device_token_is_refused_without_the_key(harness: Harness) -> None:
    key = DpopKey()
    token = sign_in(harness, key)
    qr = {"qr": harness.authorize()["verification_uri_complete"]}
    as_bearer = call(harness, "/mobile/v1/scan", token, None, qr, scheme="Bearer")
    assert as_bearer.status_code == 401
    assert as_bearer.get_json()["error"] == "invalid_token"
    other_key = call(harness, "/mobile/v1/scan", token, DpopKey(), qr)
    assert other_key.status_code == 401
    assert other_key.get_json()["error"] == "invalid_token"
    no_proof = call(harness, "/mobile/v1/scan", token, None, qr)
    assert no_proof.status_code == 400
    assert no_proof.get_json()["error"] == "invalid_dpop_proof"
    # None of these scanned the flow: the owner still can.
    assert call(harness, "/mobile/v1/scan", token, key, qr).status_code == 200


def test_a_proof_seen_on_the_wire_cannot_be_replayed(harness: Harness) -> None:
    key = DpopKey()
    token = sign_in(harness, key)
    proof = key.proof("POST", f"{ISSUER}/mobile/v1/scan", access_token=token)
    qr = {"qr": harness.authorize()["verification_uri_complete"]}
    assert call(harness, "/mobile/v1/scan", token, key, qr, proof=proof).status_code == 200
    replayed = call(harness, "/mobile/v1/scan", token, key, qr, proof=proof)
    assert replayed.status_code == 400
    assert replayed.get_json()["error"] == "invalid_dpop_proof"
    # A proof made for scan does not open confirm either (htu).
    confirm_proof = key.proof("POST", f"{ISSUER}/mobile/v1/scan", access_token=token)
    confirmed = call(
        harness, "/mobile/v1/confirm", token, key, {"confirm_token": "x"}, proof=confirm_proof
    )
    assert confirmed.get_json()["error"] == "invalid_dpop_proof"


def test_a_phone_without_a_key_stays_a_bearer_phone(harness: Harness) -> None:
    phone = harness.sign_in()
    started = harness.authorize()
    harness.approve(started, phone)
    key = DpopKey()
    headers = {
        "Authorization": f"DPoP {phone.token}",
        "X-Device-Id": phone.device_id,
        "DPoP": key.proof("DELETE", f"{ISSUER}/mobile/v1/sessions", access_token=phone.token),
    }
    # It cannot claim a key after the fact: its token was never bound to one.
    assert harness.http.delete("/mobile/v1/sessions", headers=headers).status_code == 401


class TestKeysRequired:
    @pytest.fixture
    def settings(self) -> dict[str, Any]:
        return {"phone_keys": "required"}

    def test_a_sign_in_without_a_key_is_refused(self, harness: Harness) -> None:
        response = harness.http.post(
            "/mobile/v1/sessions",
            json={
                "username": harness.username,
                "password": PASSWORD,
                "device": {"id": "phone-b", "name": "Bearer phone", "platform": "web"},
            },
        )
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_dpop_proof"

    def test_only_proved_calls_pass(self, harness: Harness) -> None:
        key = DpopKey()
        token = sign_in(harness, key)
        qr = {"qr": harness.authorize()["verification_uri_complete"]}
        as_bearer = call(harness, "/mobile/v1/scan", token, None, qr, scheme="Bearer")
        assert as_bearer.status_code == 401
        assert call(harness, "/mobile/v1/scan", token, key, qr).status_code == 200
