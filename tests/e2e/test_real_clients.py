"""Third-party OAuth client libraries against a real `authserver` process over real HTTP.

The PC side is played by widely used libraries exactly as an integrator would use them:
Authlib's requests client, requests-oauthlib with oauthlib's DeviceClient, and PyJWT's
PyJWKClient to verify the RFC 9068 access tokens. The phone is plain `requests` on the
mobile API. Nothing here imports the server's code.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import DeviceClient
from oauthlib.oauth2.rfc6749.errors import OAuth2Error as OAuthlibError
from requests_oauthlib import OAuth2Session as RequestsOAuthlibSession

from tests.e2e.conftest import LiveServer

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TIMEOUT = 10  # seconds, for every single HTTP request


# --- the phone: plain requests on the mobile API ----------------------------------------------
@dataclass
class Phone:
    """A signed-in mobile app. Each call is a fresh connection, so any worker may answer."""

    base_url: str
    token: str
    device_id: str

    @classmethod
    def sign_in(cls, server: LiveServer, name: str = "E2E phone") -> Phone:
        device_id = f"phone-{uuid.uuid4().hex[:8]}"
        response = requests.post(
            f"{server.base_url}/mobile/v1/sessions",
            json={
                "username": server.username,
                "password": server.password,
                "device": {"id": device_id, "name": name, "platform": "android"},
            },
            timeout=TIMEOUT,
        )
        assert response.status_code == 201, response.text
        return cls(server.base_url, response.json()["device_token"], device_id)

    def _post(self, path: str, body: dict[str, str]) -> requests.Response:
        return requests.post(
            f"{self.base_url}/mobile/v1/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}", "X-Device-Id": self.device_id},
            timeout=TIMEOUT,
        )

    def scan(self, verification_uri_complete: str) -> dict[str, Any]:
        """Scan the QR code: what it encodes is verification_uri_complete (RFC 8628 §3.3.1)."""
        response = self._post("scan", {"qr": verification_uri_complete})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def decide(self, confirm_token: str, action: str) -> str:
        response = self._post(action, {"confirm_token": confirm_token})
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    def approve(self, started: dict[str, Any]) -> dict[str, Any]:
        screen = self.scan(started["verification_uri_complete"])
        assert self.decide(screen["confirm_token"], "confirm") == "approved"
        return screen


# --- the PC: Authlib, as an integrator would write it ------------------------------------------
@dataclass
class PollLog:
    """When each token poll was sent and what it got back."""

    entries: list[tuple[float, str]] = field(default_factory=list)

    def gaps(self) -> list[float]:
        times = [at for at, _ in self.entries]
        return [later - earlier for earlier, later in itertools.pairwise(times)]


def discover(base_url: str) -> dict[str, Any]:
    """RFC 8414 discovery, checked the way a client library relies on it."""
    response = requests.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    assert response.status_code == 200
    metadata = dict(response.json())
    assert metadata["issuer"] == base_url  # RFC 8414 §3.3: must match where we fetched it
    assert DEVICE_CODE_GRANT in metadata["grant_types_supported"]
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    return metadata


def authlib_client(server: LiveServer, scope: str = "profile email") -> AuthlibSession:
    # A public client (RFC 8628 §5.6): "none" sends client_id in the body, no secret.
    return AuthlibSession(
        client_id=server.client_id, token_endpoint_auth_method="none", scope=scope
    )


def device_authorization(
    session: requests.Session, metadata: dict[str, Any], client_id: str, scope: str
) -> dict[str, Any]:
    """RFC 8628 §3.1: neither library has a helper for it, so a form POST, as integrators do."""
    kwargs: dict[str, Any] = {"withhold_token": True} if isinstance(session, AuthlibSession) else {}
    response = session.post(
        metadata["device_authorization_endpoint"],
        data={"client_id": client_id, "scope": scope},
        timeout=TIMEOUT,
        **kwargs,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    started = dict(response.json())
    for name in ("device_code", "user_code", "verification_uri", "expires_in", "interval"):
        assert name in started, name
    assert started["verification_uri_complete"].startswith(started["verification_uri"])
    assert started["interval"] == 1  # AUTHSERVER_POLL_INTERVAL of the test servers
    return started


def poll_for_token(
    session: AuthlibSession,
    metadata: dict[str, Any],
    started: dict[str, Any],
    *,
    on_pending: Any = None,
    log: PollLog | None = None,
    max_polls: int = 10,
) -> dict[str, Any]:
    """An RFC 8628 §3.5 polling loop: wait `interval` between polls, +5 s after slow_down.

    `on_pending` runs once, after the first authorization_pending (the user acts meanwhile).
    """
    log = log if log is not None else PollLog()
    interval = started["interval"]
    for _ in range(max_polls):
        sent = time.monotonic()
        try:
            token = session.fetch_token(
                metadata["token_endpoint"],
                grant_type=DEVICE_CODE_GRANT,
                device_code=started["device_code"],
                timeout=TIMEOUT,
            )
        except OAuthError as error:
            log.entries.append((sent, error.error))
            if error.error == "slow_down":
                interval += 5  # RFC 8628 §3.5, for this and all subsequent requests
            elif error.error != "authorization_pending":
                raise
        else:
            log.entries.append((sent, "token"))
            return dict(token)
        if on_pending is not None:
            on_pending()
            on_pending = None
        time.sleep(interval)
    pytest.fail(f"no token after {max_polls} polls: {log.entries}")


def verify_access_token(
    token: str, metadata: dict[str, Any], client_id: str, scope: str
) -> dict[str, Any]:
    """Check an access token as a resource server would: RFC 9068 with keys from jwks_uri."""
    assert jwt.get_unverified_header(token)["typ"].lower() in ("at+jwt", "application/at+jwt")
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        signing_key.key,
        algorithms=[signing_key.algorithm_name],
        audience=metadata["issuer"],  # RFC 9068 §3: no resource indicator, the issuer's default
        issuer=metadata["issuer"],
        options={"require": ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]},
    )
    assert claims["client_id"] == client_id
    assert set(claims["scope"].split()) == set(scope.split())
    assert claims["sub"]
    return claims


def token_request(base_url: str, **data: str) -> requests.Response:
    return requests.post(f"{base_url}/oauth/token", data=data, timeout=TIMEOUT)


# --- the whole flow with Authlib, on both deployments --------------------------------------------
def test_full_flow_with_authlib(any_live_server: LiveServer) -> None:
    server = any_live_server
    metadata = discover(server.base_url)
    pc = authlib_client(server)
    started = device_authorization(pc, metadata, server.client_id, "profile email")

    # The QR image the PC shows; the phone would decode verification_uri_complete from it.
    png = requests.get(started["qr_code_png"], timeout=TIMEOUT)
    assert png.status_code == 200
    assert png.headers["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")

    phone = Phone.sign_in(server)
    screens: list[dict[str, Any]] = []
    log = PollLog()
    token = poll_for_token(
        pc, metadata, started, on_pending=lambda: screens.append(phone.approve(started)), log=log
    )

    # The phone was shown who asks, for what, and the code to match (RFC 8628 §5.4).
    (screen,) = screens
    assert screen["client"]["client_id"] == server.client_id
    assert screen["user_code"] == started["user_code"]
    assert sorted(screen["scopes"]) == ["email", "profile"]

    assert [outcome for _, outcome in log.entries] == ["authorization_pending", "token"]
    assert all(gap >= started["interval"] for gap in log.gaps())
    assert token["token_type"] == "Bearer"
    claims = verify_access_token(token["access_token"], metadata, server.client_id, "profile email")
    assert claims["exp"] - claims["iat"] == token["expires_in"]

    # Refresh with the library; the new access token is a fresh, valid token of the same grant.
    refreshed = pc.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    again = verify_access_token(
        refreshed["access_token"], metadata, server.client_id, "profile email"
    )
    assert again["sub"] == claims["sub"]
    assert again["jti"] != claims["jti"]

    # The device code is spent: a second redemption is invalid_grant (RFC 8628 §3.5).
    with pytest.raises(OAuthError) as replay:
        pc.fetch_token(
            metadata["token_endpoint"],
            grant_type=DEVICE_CODE_GRANT,
            device_code=started["device_code"],
        )
    assert replay.value.error == "invalid_grant"


def test_requests_oauthlib_device_client(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oauthlib's DeviceClient inside requests-oauthlib's OAuth2Session, defaults untouched."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test server is plain http
    server = live_server
    metadata = discover(server.base_url)
    session = RequestsOAuthlibSession(client=DeviceClient(server.client_id), scope=["profile"])
    started = device_authorization(session, metadata, server.client_id, "profile")

    def redeem() -> dict[str, Any]:
        # requests-oauthlib's default for a client without a secret: HTTP Basic "client_id:"
        # (RFC 6749 §2.3.1); the server must take that as the public client it is.
        return dict(
            session.fetch_token(metadata["token_endpoint"], device_code=started["device_code"])
        )

    with pytest.raises(OAuthlibError) as pending:
        redeem()
    assert pending.value.error == "authorization_pending"
    Phone.sign_in(server).approve(started)
    time.sleep(started["interval"])
    token = redeem()
    assert token["scope"] == ["profile"]  # oauthlib parses the scope string into a list
    verify_access_token(token["access_token"], metadata, server.client_id, "profile")
    # The session now carries the bearer token, as requests-oauthlib users rely on.
    assert session.authorized


def test_deny_gives_access_denied(live_server: LiveServer) -> None:
    server = live_server
    metadata = discover(server.base_url)
    pc = authlib_client(server)
    started = device_authorization(pc, metadata, server.client_id, "profile")
    phone = Phone.sign_in(server)
    screen = phone.scan(started["verification_uri_complete"])
    assert phone.decide(screen["confirm_token"], "deny") == "denied"
    with pytest.raises(OAuthError) as denied:
        poll_for_token(pc, metadata, started)
    assert denied.value.error == "access_denied"  # RFC 8628 §3.5: the client stops polling


def test_polling_honours_interval_and_slow_down(live_server: LiveServer) -> None:
    """slow_down adds 5 s, measured from the last accepted poll (RFC 8628 §3.5).

    Three flows, each polled once (accepted), then, within one 6 s window:
    the library-driven loop polls one again at once, gets slow_down, waits 1 + 5 s and then
    gets its tokens; raw probes show the new interval is 6 s: a poll 2 s after the accepted
    one is still too fast, a poll 6 s after it is not.
    """
    server = live_server
    metadata = discover(server.base_url)
    pc = authlib_client(server)
    looped, probe_fast, probe_honest = (
        device_authorization(pc, metadata, server.client_id, "profile") for _ in range(3)
    )

    def poll(started: dict[str, Any]) -> str:
        response = token_request(
            server.base_url,
            grant_type=DEVICE_CODE_GRANT,
            device_code=started["device_code"],
            client_id=server.client_id,
        )
        return str(response.json().get("error", "token"))

    for started in (looped, probe_fast, probe_honest):
        assert poll(started) == "authorization_pending"  # the first poll is never throttled
    accepted = time.monotonic()

    log = PollLog()
    tokens: dict[str, Any] = {}
    loop = threading.Thread(
        target=lambda: tokens.update(poll_for_token(pc, metadata, looped, log=log))
    )
    loop.start()
    assert poll(probe_fast) == "slow_down"
    assert poll(probe_honest) == "slow_down"
    deadline = time.monotonic() + TIMEOUT
    while not log.entries and time.monotonic() < deadline:
        time.sleep(0.01)  # the loop's too-early poll must come before the approval
    Phone.sign_in(server).approve(looped)

    time.sleep(max(0.0, accepted + 2.0 - time.monotonic()))
    assert poll(probe_fast) == "slow_down"  # 2 s: fine for the old interval, not the new one
    time.sleep(max(0.0, accepted + 6.1 - time.monotonic()))
    assert poll(probe_honest) == "authorization_pending"  # 6 s: the interval grew by 5, no more

    loop.join(timeout=2 * TIMEOUT)
    assert [outcome for _, outcome in log.entries] == ["slow_down", "token"]
    assert log.gaps()[0] >= looped["interval"] + 5
    verify_access_token(tokens["access_token"], metadata, server.client_id, "profile")


def test_concurrent_redemption_issues_tokens_once(any_live_server: LiveServer) -> None:
    """8 polls of an approved code at once (threads, connections, workers): one gets tokens."""
    server = any_live_server
    metadata = discover(server.base_url)
    started = device_authorization(requests.Session(), metadata, server.client_id, "profile")
    Phone.sign_in(server).approve(started)

    threads = 8
    barrier = threading.Barrier(threads)
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def redeem() -> None:
        with requests.Session() as http:
            http.get(server.base_url + "/.well-known/oauth-authorization-server", timeout=TIMEOUT)
            barrier.wait(timeout=TIMEOUT)  # every thread connected: fire together
            response = http.post(
                metadata["token_endpoint"],
                data={
                    "grant_type": DEVICE_CODE_GRANT,
                    "device_code": started["device_code"],
                    "client_id": server.client_id,
                },
                timeout=TIMEOUT,
            )
        with lock:
            results.append((response.status_code, response.json()))

    workers = [threading.Thread(target=redeem) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=2 * TIMEOUT)
    assert len(results) == threads
    winners = [body for status, body in results if status == 200]
    losers = [body["error"] for status, body in results if status != 200]
    assert len(winners) == 1, results
    # During the winner's claim the others are told to keep polling; after it, a replay.
    assert set(losers) <= {"authorization_pending", "invalid_grant"}, results
    assert len(losers) == threads - 1
    assert "access_token" in winners[0]


def test_refresh_rotation_and_replay_revokes_family(live_server: LiveServer) -> None:
    """RFC 9700 §4.14.2: refresh tokens rotate; replaying a used one revokes the grant."""
    server = live_server
    metadata = discover(server.base_url)
    pc = authlib_client(server)
    started = device_authorization(pc, metadata, server.client_id, "profile email")
    Phone.sign_in(server).approve(started)
    first = poll_for_token(pc, metadata, started)

    second = pc.refresh_token(metadata["token_endpoint"], refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]

    # Narrowing the scope on refresh is allowed (RFC 6749 §6); widening it is not.
    third = pc.refresh_token(
        metadata["token_endpoint"], refresh_token=second["refresh_token"], scope="profile"
    )
    verify_access_token(third["access_token"], metadata, server.client_id, "profile")

    # Replay the first, already rotated, refresh token: refused, and the family is revoked...
    with pytest.raises(OAuthError) as replay:
        pc.refresh_token(metadata["token_endpoint"], refresh_token=first["refresh_token"])
    assert replay.value.error == "invalid_grant"
    # ...so the newest, never used refresh token is dead too.
    with pytest.raises(OAuthError) as revoked:
        pc.refresh_token(metadata["token_endpoint"], refresh_token=third["refresh_token"])
    assert revoked.value.error == "invalid_grant"


# --- the non-standard status channel -----------------------------------------------------------
def test_status_channel_long_poll(any_live_server: LiveServer) -> None:
    """POST /oauth/device_status with status+wait returns as soon as the flow changes."""
    server = any_live_server
    metadata = discover(server.base_url)
    status_url = metadata["device_status_endpoint"]
    started = device_authorization(requests.Session(), metadata, server.client_id, "profile")
    form = {"device_code": started["device_code"], "client_id": server.client_id}

    quiet = time.monotonic()
    unchanged = requests.post(
        status_url, data={**form, "status": "pending", "wait": "0.5"}, timeout=TIMEOUT
    )
    assert unchanged.json()["status"] == "pending"
    assert 0.4 <= time.monotonic() - quiet < 3  # it did wait, then gave up

    def long_poll(known: str, out: list[tuple[float, dict[str, Any]]]) -> threading.Thread:
        def run() -> None:
            sent = time.monotonic()
            response = requests.post(
                status_url, data={**form, "status": known, "wait": "5"}, timeout=TIMEOUT
            )
            assert response.status_code == 200, response.text
            out.append((time.monotonic() - sent, response.json()))

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)  # let the request get to the server and start waiting
        return thread

    phone = Phone.sign_in(server)
    scanned: list[tuple[float, dict[str, Any]]] = []
    waiter = long_poll("pending", scanned)
    screen = phone.scan(started["verification_uri_complete"])
    waiter.join(timeout=TIMEOUT)
    ((elapsed, body),) = scanned
    assert body["status"] == "scanned"
    assert 0.2 <= elapsed < 3, elapsed  # woken by the scan, long before wait=5 ran out
    # Masked: a phishing PC must not learn who scanned its code.
    assert body["scanner"]["name"].endswith("***")
    assert "Example" not in body["scanner"]["name"] and "Demo" not in body["scanner"]["name"]

    approved: list[tuple[float, dict[str, Any]]] = []
    waiter = long_poll("scanned", approved)
    phone.decide(screen["confirm_token"], "confirm")
    waiter.join(timeout=TIMEOUT)
    ((elapsed, body),) = approved
    assert body["status"] == "approved" and elapsed < 3

    # The status channel never stands in for the token endpoint: tokens still come from there.
    token = poll_for_token(authlib_client(server), metadata, started)
    verify_access_token(token["access_token"], metadata, server.client_id, "profile")


# --- hostile requests over real HTTP -----------------------------------------------------------
def assert_oauth_error(response: requests.Response, status: int, error: str) -> dict[str, Any]:
    """RFC 6749 §5.2: a JSON error body with the code; no HTML, no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = dict(response.json())
    assert body["error"] == error, body
    return body


def test_get_on_token_endpoint_is_405_json(live_server: LiveServer) -> None:
    response = requests.get(f"{live_server.base_url}/oauth/token", timeout=TIMEOUT)
    assert_oauth_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_garbage_bodies_are_invalid_request(live_server: LiveServer) -> None:
    url = f"{live_server.base_url}/oauth/token"
    garbage = requests.post(
        url, data=b"\xff\xfe\x00&&==%zz%%\x01garbage", headers=FORM, timeout=TIMEOUT
    )
    body = assert_oauth_error(garbage, 400, "invalid_request")
    assert garbage.headers["Cache-Control"] == "no-store"
    assert body["error_description"]
    as_json = requests.post(url, json={"grant_type": DEVICE_CODE_GRANT}, timeout=TIMEOUT)
    assert_oauth_error(as_json, 400, "invalid_request")
    repeated = requests.post(
        url,
        data=[("grant_type", DEVICE_CODE_GRANT), ("grant_type", "refresh_token")],
        timeout=TIMEOUT,
    )
    assert_oauth_error(repeated, 400, "invalid_request")  # RFC 8628 §3.1: at most once


def test_device_code_in_query_string_is_ignored(live_server: LiveServer) -> None:
    """Only the form body counts (RFC 6749 §3.2): a secret in the URL ends up in logs."""
    started = device_authorization(
        requests.Session(), discover(live_server.base_url), live_server.client_id, "profile"
    )
    response = requests.post(
        f"{live_server.base_url}/oauth/token",
        params={"device_code": started["device_code"]},
        data={"grant_type": DEVICE_CODE_GRANT, "client_id": live_server.client_id},
        timeout=TIMEOUT,
    )
    body = assert_oauth_error(response, 400, "invalid_request")
    assert "device_code" in body["error_description"]


def test_huge_body_is_413(live_server: LiveServer) -> None:
    response = requests.post(
        f"{live_server.base_url}/oauth/token",
        data=b"device_code=" + b"A" * 2_000_000,
        headers=FORM,
        timeout=TIMEOUT,
    )
    assert_oauth_error(response, 413, "invalid_request")  # RFC 6749 §5.2 has no other


def test_unknown_client_is_401_with_www_authenticate(live_server: LiveServer) -> None:
    url = f"{live_server.base_url}/oauth/token"
    data = {"grant_type": DEVICE_CODE_GRANT, "device_code": "whatever"}
    # RFC 6749 §5.2: 401 and WWW-Authenticate for a client that authenticated with Basic.
    basic = requests.post(url, data=data, auth=("no-such-client", "secret"), timeout=TIMEOUT)
    assert_oauth_error(basic, 401, "invalid_client")
    assert basic.headers["WWW-Authenticate"].startswith("Basic")
    in_body = requests.post(url, data={**data, "client_id": "no-such-client"}, timeout=TIMEOUT)
    assert_oauth_error(in_body, 401, "invalid_client")
    started = requests.post(
        f"{live_server.base_url}/oauth/device_authorization",
        data={"client_id": "no-such-client"},
        timeout=TIMEOUT,
    )
    assert_oauth_error(started, 401, "invalid_client")


def test_a_500_never_leaks_internals(live_server: LiveServer) -> None:
    """Inject a database fault into the real server; the wire says server_error, nothing more.

    A SQLite trigger (in the server's own database file) fails one insert with a message we
    can look for: it must reach the server's log and never the client.
    """
    secret = f"e2e-internal-detail-{uuid.uuid4().hex}"
    db = sqlite3.connect(live_server.workdir / "authserver.db")
    with db:
        db.execute(
            "CREATE TRIGGER IF NOT EXISTS e2e_fault BEFORE INSERT ON mobile_devices "
            f"WHEN NEW.name = 'e2e-fault' BEGIN SELECT RAISE(ABORT, '{secret}'); END"
        )
    db.close()
    try:
        response = requests.post(
            f"{live_server.base_url}/mobile/v1/sessions",
            json={
                "username": live_server.username,
                "password": live_server.password,
                "device": {"id": "fault-1", "name": "e2e-fault", "platform": "ios"},
            },
            timeout=TIMEOUT,
        )
    finally:
        db = sqlite3.connect(live_server.workdir / "authserver.db")
        with db:
            db.execute("DROP TRIGGER IF EXISTS e2e_fault")
        db.close()
    body = assert_oauth_error(response, 500, "server_error")
    assert set(body) == {"error", "error_description"}
    for leak in (secret, "sqlite", "IntegrityError", "sqlalchemy", "authserver/"):
        assert leak not in response.text
    assert secret in live_server.log_text  # logged for the operator, with its trace


def test_unsupported_grant_type(live_server: LiveServer) -> None:
    """RFC 6749 §5.2: a grant type this server does not run is unsupported_grant_type; one it
    runs and this (device) client is not registered for is unauthorized_client."""
    for grant in ("client_credentials", "password"):
        response = token_request(
            live_server.base_url, grant_type=grant, client_id=live_server.client_id
        )
        assert_oauth_error(response, 400, "unsupported_grant_type")
    response = token_request(
        live_server.base_url, grant_type="authorization_code", client_id=live_server.client_id
    )
    assert_oauth_error(response, 400, "unauthorized_client")


def test_deeply_nested_json_is_invalid_request(live_server: LiveServer) -> None:
    response = requests.post(
        f"{live_server.base_url}/mobile/v1/sessions",
        data=b"[" * 30_000 + b"]" * 30_000,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT,
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_verification_uri_page_renders(live_server: LiveServer) -> None:
    """RFC 8628 §3.3: verification_uri (and the _complete one in the QR) is a page for people."""
    started = device_authorization(
        requests.Session(), discover(live_server.base_url), live_server.client_id, "profile"
    )
    for url in (started["verification_uri"], started["verification_uri_complete"]):
        page = requests.get(url, timeout=TIMEOUT)
        assert page.status_code == 200, page.text
        assert page.headers["Content-Type"].startswith("text/html")
    assert started["user_code"] in page.text


def test_nul_bytes_are_never_a_500(any_live_server: LiveServer) -> None:
    """PostgreSQL text cannot hold NUL: such input must be refused as a client error."""
    base, client_id = any_live_server.base_url, any_live_server.client_id
    sign_in = {"username": any_live_server.username, "password": any_live_server.password}
    device = {"id": "nul-phone", "name": "Phone", "platform": "ios"}
    token_url = f"{base}/oauth/token"
    # One session, closed even when an assertion fails: its traceback would otherwise keep
    # idle keep-alive connections open, and the server's graceful stop waits for them.
    with requests.Session() as http:
        responses = [
            http.post(f"{base}/oauth/device_authorization", data={"client_id": "pc\x00"}),
            http.post(
                token_url,
                data={"grant_type": DEVICE_CODE_GRANT, "device_code": "x", "client_id": "pc\x00"},
            ),
            http.post(
                token_url,
                data={"grant_type": DEVICE_CODE_GRANT, "device_code": "x"},
                auth=("pc\x00", ""),
            ),
            http.post(
                token_url,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": "\x00",
                    "client_id": client_id,
                },
            ),
            http.post(
                f"{base}/mobile/v1/sessions",
                json={**sign_in, "username": "demo\x00", "device": device},
            ),
            http.post(
                f"{base}/mobile/v1/sessions",
                json={**sign_in, "device": {**device, "id": "nul\x00phone"}},
            ),
        ]
        for response in responses:
            assert response.status_code < 500, (response.request.url, response.text)
            assert response.headers["Content-Type"].startswith("application/json")
