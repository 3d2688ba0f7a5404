"""Bring your own identity, end to end: `authserver demo` trusts a locally served identity
provider (its own key pair and JWKS over HTTP); the mobile app exchanges that provider's token
for a device token (RFC 8693), approves a QR login with it, and the PC gets its tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from authserver.services.token_exchange import TOKEN_EXCHANGE_GRANT
from tests.e2e.conftest import LiveServer, _cli, _server_env, demo_server
from tests.e2e.test_clients_live import QRLOGIN_PHONE, client_env, run
from tests.identity_provider import IdentityProvider, SigningKey, serve

TIMEOUT = 10.0
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MOBILE_DEVICE_TOKEN = "urn:authserver:token-type:mobile-device-token"


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with serve(IdentityProvider()) as provider:
        yield provider


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider) -> Iterator[LiveServer]:
    settings = {"AUTHSERVER_TRUSTED_ISSUERS": idp.trusted_issuers()}
    workdir = tmp_path_factory.mktemp("byoi")
    with demo_server(workdir, **settings) as live:
        yield live


def register_mobile_app(server: LiveServer) -> str:
    """`authserver clients create --mobile-app` on the demo's database, as an operator would."""
    env = _server_env(server.workdir)
    created = _cli(
        ["clients", "create", "--name", "Our mobile app", "--mobile-app"], env, Path(server.workdir)
    )
    return str(created["client_id"])


def test_the_apps_own_sign_in_approves_a_qr_login(
    server: LiveServer, idp: IdentityProvider
) -> None:
    base = server.base_url
    metadata = requests.get(f"{base}/.well-known/openid-configuration", timeout=TIMEOUT).json()
    assert TOKEN_EXCHANGE_GRANT in metadata["grant_types_supported"]
    app_client_id = register_mobile_app(server)

    # The phone: the app holds its own provider's access token and exchanges it.
    exchanged = requests.post(
        metadata["token_endpoint"],
        data={
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "client_id": app_client_id,
            "subject_token": idp.token(
                "e2e-subject", name="Ada Lovelace", preferred_username="ada"
            ),
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "requested_token_type": MOBILE_DEVICE_TOKEN,
            "device_id": "e2e-phone",
            "device_name": "Ada's phone",
            "device_platform": "android",
        },
        timeout=TIMEOUT,
    )
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    assert body["issued_token_type"] == MOBILE_DEVICE_TOKEN
    assert idp.jwks_fetches == 1  # the server fetched the provider's keys over HTTP
    phone = {"Authorization": f"Bearer {body['access_token']}", "X-Device-Id": "e2e-phone"}

    # The PC asks for a QR login.
    started = requests.post(
        metadata["device_authorization_endpoint"],
        data={"client_id": server.client_id, "scope": "openid profile"},
        timeout=TIMEOUT,
    ).json()

    # The phone scans and confirms with its exchanged device token.
    scanned = requests.post(
        f"{base}/mobile/v1/scan",
        json={"qr": started["verification_uri_complete"]},
        headers=phone,
        timeout=TIMEOUT,
    )
    assert scanned.status_code == 200, scanned.text
    confirmed = requests.post(
        f"{base}/mobile/v1/confirm",
        json={"confirm_token": scanned.json()["confirm_token"]},
        headers=phone,
        timeout=TIMEOUT,
    )
    assert confirmed.json() == {"status": "approved"}

    # The PC gets its tokens: the provider's user, signed in here.
    polled = poll_tokens(server, started)
    assert polled.status_code == 200, polled.text
    tokens = polled.json()
    assert tokens["id_token"]
    userinfo = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=TIMEOUT,
    ).json()
    assert userinfo["name"] == "Ada Lovelace"
    assert userinfo["preferred_username"] == "ada"


def poll_tokens(server: LiveServer, started: dict[str, Any]) -> requests.Response:
    """Poll the token endpoint as the PC does, at its interval, for up to TIMEOUT seconds."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        polled = requests.post(
            f"{server.base_url}/oauth/token",
            data={
                "grant_type": DEVICE_CODE_GRANT,
                "device_code": started["device_code"],
                "client_id": server.client_id,
            },
            timeout=TIMEOUT,
        )
        if polled.status_code == 200 or time.monotonic() > deadline:
            return polled
        assert polled.json()["error"] in ("authorization_pending", "slow_down"), polled.text
        time.sleep(started["interval"])


def test_the_phone_simulator_signs_in_with_the_providers_token(
    server: LiveServer, idp: IdentityProvider, tmp_path: Path
) -> None:
    """`qrlogin-phone signin --subject-token-stdin`, then `qrlogin-phone scan --approve`."""
    app_client_id = register_mobile_app(server)
    state, env = str(tmp_path / "phone.json"), client_env(tmp_path)
    signin = [
        "signin", "--state", state, "--server", server.base_url, "--client-id", app_client_id,
        "--subject-token-stdin", "--subject-token-type", "id_token",
    ]  # fmt: skip
    token = idp.token("e2e-cli-subject", name="Katherine Johnson", preferred_username="kj")
    signed_in = run(QRLOGIN_PHONE, signin, env, stdin=token + "\n")
    assert signed_in.returncode == 0, signed_in.stderr
    started = requests.post(
        f"{server.base_url}/oauth/device_authorization",
        data={"client_id": server.client_id, "scope": "profile"},
        timeout=TIMEOUT,
    ).json()
    scan = ["scan", "--state", state, "--code", started["user_code"], "--approve"]
    scanned = run(QRLOGIN_PHONE, scan, env)
    assert scanned.returncode == 0, scanned.stderr
    polled = poll_tokens(server, started)
    assert polled.status_code == 200, polled.text
    me = requests.get(
        f"{server.base_url}/api/v1/me",
        headers={"Authorization": f"Bearer {polled.json()['access_token']}"},
        timeout=TIMEOUT,
    ).json()
    assert (me["username"], me["name"]) == ("kj", "Katherine Johnson")


def test_a_token_of_another_key_is_invalid_grant(server: LiveServer, idp: IdentityProvider) -> None:
    app_client_id = register_mobile_app(server)
    impostor = SigningKey(idp.keys[0].kid, "RS256", SigningKey.rsa().private)
    refused = requests.post(
        f"{server.base_url}/oauth/token",
        data={
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "client_id": app_client_id,
            "subject_token": idp.token("e2e-subject", key=impostor),
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "device_id": "e2e-phone-2",
            "device_name": "x",
            "device_platform": "ios",
        },
        timeout=TIMEOUT,
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
