"""Microsoft's MSAL for Python signs in through the device flow, behind a TLS reverse proxy.

As an operator runs it: `authserver serve` on plain HTTP behind an HTTPS proxy
(AUTHSERVER_ISSUER=https://127.0.0.1:<proxy port>, AUTHSERVER_TRUSTED_PROXIES=1), a client and a
user with an email made with the CLI. MSAL discovers the server (OIDC Discovery), starts a device
flow, polls while the phone simulator (qrlogin_client.phone) scans and approves, caches the tokens
and an account from the ID token, answers acquire_token_silent from its cache, and refreshes
once the cached access token has expired. Every request MSAL sends goes to this issuer.
"""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import requests

from authserver.bootstrap import build_services
from authserver.config import Config
from qrlogin_client.phone import MobileApp
from tests.e2e.conftest import _free_port, _server_env, _spawn, _stop, _wait_ready
from tests.e2e.tls_proxy import ProxyCertificates, make_certificates, tls_proxy

EMAIL = "mia@example.com"


@dataclass(frozen=True)
class ProxiedServer:
    issuer: str
    ca: Path
    client_id: str
    username: str
    password: str


@pytest.fixture(scope="module", params=["embedded+sqlite", "redis+postgres"])
def proxied(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxiedServer]:
    """`authserver serve` behind the TLS proxy, on each backend pair."""
    workdir = tmp_path_factory.mktemp("msal")
    certificates: ProxyCertificates = make_certificates(workdir)
    backend_port = _free_port()
    settings = {
        "AUTHSERVER_TRUSTED_PROXIES": "1",
        "AUTHSERVER_DATABASE_URL": f"sqlite:///{workdir}/authserver.db",
    }
    workers = "1"
    if request.param == "redis+postgres":
        redis_url: str = request.getfixturevalue("redis_url")
        settings.update(
            AUTHSERVER_DATABASE_URL=request.getfixturevalue("module_postgres_url"),
            AUTHSERVER_REDIS_URL=redis_url.rsplit("/", 1)[0] + "/14",
            AUTHSERVER_REDIS_PREFIX=f"e2e:{uuid.uuid4().hex}:",
        )
        workers = "2"
    with tls_proxy(certificates, backend_port) as proxy_port:
        issuer = f"https://127.0.0.1:{proxy_port}"
        env = _server_env(workdir, AUTHSERVER_ISSUER=issuer, **settings)
        # The schema, a client and a user, as `db upgrade`, `clients create` and `users create
        # --email ... --email-verified` make them, in this process: three commands would cost
        # seconds of imports each (tests/functional/test_cli.py runs those commands).
        username, password = f"mia-{uuid.uuid4().hex[:6]}", "correct horse battery"
        services = build_services(Config.from_env(env, scrypt_p=1))
        try:
            services.database.upgrade()
            client, _ = services.clients.create("MSAL app", confidential=False, scope=None)
            services.accounts.create_user(
                username, password, "Mia", email=EMAIL, email_verified=True
            )
        finally:
            services.close()
        process = _spawn(["serve", "--port", str(backend_port), "--workers", workers], env, workdir)
        try:
            _wait_ready(
                process,
                issuer,
                workdir,
                path="/.well-known/openid-configuration",
                verify=str(certificates.ca),
            )
            yield ProxiedServer(issuer, certificates.ca, client.client_id, username, password)
        finally:
            _stop(process)
            if "AUTHSERVER_REDIS_URL" in settings:
                _forget_keys(settings["AUTHSERVER_REDIS_URL"], settings["AUTHSERVER_REDIS_PREFIX"])


def _forget_keys(url: str, prefix: str) -> None:
    import redis

    flows = redis.Redis.from_url(url)
    for key in flows.scan_iter(match=prefix + "*"):
        flows.delete(key)
    flows.close()


class RecordingSession(requests.Session):
    """MSAL's HTTP client (its documented `http_client`): trusts the test CA, records URLs."""

    def __init__(self, ca: Path) -> None:
        super().__init__()
        self.verify = str(ca)
        self.urls: list[str] = []
        self._lock = threading.Lock()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.urls.append(str(url))
        return super().request(method, url, *args, **kwargs)


def verified_id_token(server: ProxiedServer, token: str) -> dict[str, Any]:
    """MSAL does not validate ID tokens (its issue #911); an application does, like this."""
    jwks = jwt.PyJWKClient(
        f"{server.issuer}/oauth/jwks",
        ssl_context=ssl.create_default_context(cafile=str(server.ca)),
    )
    claims: dict[str, Any] = jwt.decode(
        token,
        jwks.get_signing_key_from_jwt(token),
        algorithms=["ES256"],
        audience=server.client_id,
        issuer=server.issuer,
    )
    return claims


def test_msal_device_flow_then_silent_from_cache_and_by_refresh(
    proxied: ProxiedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(proxied.ca))  # the phone simulator's requests
    http = RecordingSession(proxied.ca)
    # MSAL insists on a path segment in an authority (Entra's tenant). An issuer without one
    # is given as ISSUER + "/.": the dot segment is removed (RFC 3986 §5.2.4), so discovery
    # goes to ISSUER/.well-known/openid-configuration, and MSAL's issuer check (same scheme
    # and host) passes. README "Use it with MSAL".
    app = msal.PublicClientApplication(
        proxied.client_id, oidc_authority=f"{proxied.issuer}/.", http_client=http
    )

    flow = app.initiate_device_flow(scopes=["email"])
    assert "user_code" in flow, flow
    assert flow["user_code"] in flow["message"] and f"{proxied.issuer}/device" in flow["message"]

    phone = MobileApp(proxied.issuer, f"phone-{uuid.uuid4().hex[:8]}")
    phone.sign_in(proxied.username, proxied.password, "E2E phone", "android")
    with ThreadPoolExecutor(1) as pool:
        # MSAL polls (every `interval` s, 1 here) while the phone scans the QR and approves.
        polling = pool.submit(app.acquire_token_by_device_flow, flow)
        screen = phone.scan(qr=flow["verification_uri_complete"])
        assert set(screen.scopes) == {"openid", "profile", "email", "offline_access"}
        assert phone.confirm(screen) == "approved"
        result = polling.result(timeout=30)
    assert "access_token" in result, result
    assert result["refresh_token"] and result["token_source"] == "identity_provider"
    claims = verified_id_token(proxied, result["id_token"])
    assert claims["preferred_username"] == proxied.username and claims["name"] == "Mia"
    assert claims["email"] == EMAIL and claims["email_verified"] is True
    assert claims["amr"] == ["mca", "user"] and claims["acr"] == "phone"
    assert result["id_token_claims"]["sub"] == claims["sub"]

    # The ID token made an account; silent acquisition answers from the cache.
    accounts = app.get_accounts()
    assert [account["username"] for account in accounts] == [proxied.username]
    cached = app.acquire_token_silent(["email"], account=accounts[0])
    assert cached is not None and cached["token_source"] == "cache"
    assert cached["access_token"] == result["access_token"]

    # Once the cached access token has expired, it refreshes with the refresh token.
    access_tokens = list(app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN))
    assert len(access_tokens) == 1
    app.token_cache.modify(
        msal.TokenCache.CredentialType.ACCESS_TOKEN,
        access_tokens[0],
        {"expires_on": str(int(time.time()) - 1)},
    )
    refreshed = app.acquire_token_silent(["email"], account=accounts[0])
    assert refreshed is not None and refreshed["token_source"] == "identity_provider", refreshed
    assert refreshed["access_token"] != result["access_token"]
    again = verified_id_token(proxied, refreshed["id_token"])
    assert again["sub"] == claims["sub"] and again["auth_time"] == claims["auth_time"]

    userinfo = requests.get(
        f"{proxied.issuer}/userinfo",
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        verify=str(proxied.ca),
        timeout=10,
    )
    assert userinfo.json() == {
        "sub": claims["sub"],
        "name": "Mia",
        "preferred_username": proxied.username,
        "email": EMAIL,
        "email_verified": True,
    }
    assert http.urls and all(url.startswith(f"{proxied.issuer}/") for url in http.urls), http.urls
