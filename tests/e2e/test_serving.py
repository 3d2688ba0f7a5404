"""The HTTP server against slow clients, and its access log against whole flows, on real servers.

`authserver demo` (embedded, one process) and `authserver serve --workers 2` (Redis +
PostgreSQL) each hold 200 half-sent requests open while a PC polls; then whole logins run and
the server's stdout and stderr are searched for every secret that crossed the wire.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from tests.e2e.conftest import LiveServer, demo_server

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 10
HELD = 200  # the number: half-sent requests held open at once


def _start(server: LiveServer) -> dict[str, Any]:
    response = requests.post(
        f"{server.base_url}/oauth/device_authorization",
        data={"client_id": server.client_id},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _half_request(kind: str, host: str) -> bytes:
    """The first half of a token request: cut inside the headers, or inside the body."""
    head = f"POST /oauth/token HTTP/1.1\r\nHost: {host}\r\n"
    if kind == "half-header":
        return (head + "Content-Type: application/x-www-form-urle").encode()
    return (
        head + "Content-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 300\r\n\r\ngrant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-"
    ).encode()


@contextmanager
def held_open(server: LiveServer, kind: str, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that each sent half a request and then nothing."""
    host = server.base_url.removeprefix("http://")
    address, port = host.rsplit(":", 1)
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            conn = socket.create_connection((address, int(port)), timeout=TIMEOUT)
            conn.sendall(_half_request(kind, host))
            held.append(conn)
        yield held
    finally:
        for conn in held:
            conn.close()


def _still_waiting(conn: socket.socket) -> bool:
    """True if the server neither answered nor closed this connection."""
    conn.setblocking(False)
    try:
        return conn.recv(1) == b"" and False
    except BlockingIOError:
        return True
    except OSError:
        return False


@pytest.mark.parametrize("kind", ["half-header", "half-body"])
def test_half_sent_requests_do_not_delay_a_token_poll(
    any_live_server: LiveServer, kind: str
) -> None:
    """200 connections stuck mid-request, more than the 32 app threads per process: a pending
    poll on a new connection still answers within a second (issue 9: gunicorn did not)."""
    server = any_live_server
    device_code = _start(server)["device_code"]
    with held_open(server, kind, HELD) as held:
        time.sleep(0.5)  # let the server accept all of them before the polls arrive
        timings = []
        for _ in range(5):  # fresh connections: with 2 workers, both answer some
            began = time.monotonic()
            response = requests.post(
                f"{server.base_url}/oauth/token",
                data={
                    "grant_type": DEVICE_CODE_GRANT,
                    "device_code": device_code,
                    "client_id": server.client_id,
                },
                headers={"Connection": "close"},
                timeout=TIMEOUT,
            )
            timings.append(time.monotonic() - began)
            assert response.status_code == 400
            assert response.json()["error"] in ("authorization_pending", "slow_down")
        # The attack was really on: every half request is still held, unanswered.
        assert sum(_still_waiting(conn) for conn in held) == HELD
    assert max(timings) < 1.0, timings


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`authserver demo` whose header and body read timeouts are short (--server-option)."""
    with demo_server(
        tmp_path_factory.mktemp("strict"),
        "--server-option",
        "http1_header_read_timeout=300",
        "--server-option",
        "body_read_timeout=0.3",
    ) as server:
        yield server


def _read_all(conn: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    began = time.monotonic()
    conn.settimeout(within)
    received = b""
    while chunk := conn.recv(4096):
        received += chunk
    return received, time.monotonic() - began


def test_slow_clients_are_cut_off_at_the_read_timeouts(strict_server: LiveServer) -> None:
    with held_open(strict_server, "half-header", 1) as [half_header]:
        answer, after = _read_all(half_header, 5)
    assert after < 3  # closed at the header read timeout (300 ms here), no thread involved
    assert not answer or answer.startswith(b"HTTP/1.1 408")

    with held_open(strict_server, "half-body", 1) as [half_body]:
        answer, after = _read_all(half_body, 5)
    assert after < 3
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"] == "invalid_request"


def test_oversized_requests_are_refused_before_the_app(strict_server: LiveServer) -> None:
    too_big = requests.post(
        f"{strict_server.base_url}/oauth/token",
        data={"grant_type": "x" * (70 * 1024)},
        timeout=TIMEOUT,
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "invalid_request"
    huge_header = requests.get(
        f"{strict_server.base_url}/oauth/jwks",
        headers={"X-Padding": "x" * (20 * 1024)},
        timeout=TIMEOUT,
    )
    assert huge_header.status_code == 431  # RFC 6585 §5: request header fields too large


# --- the access log -------------------------------------------------------------------------
class Recorder:
    """Sends requests and keeps the request id each response carried, and every secret seen."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.request_ids: list[str] = []
        self.secrets: set[str] = set()

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = requests.request(method, self.base_url + path, timeout=TIMEOUT, **kwargs)
        self.request_ids.append(response.headers["X-Request-Id"])
        return response

    def secret(self, *values: str) -> None:
        self.secrets.update(v for v in values if v)


def test_whole_flows_leave_one_json_line_per_request_and_no_secret(
    any_live_server: LiveServer,
) -> None:
    server = any_live_server
    admin_name, admin_password = server.admin_username, server.admin_password
    call = Recorder(server.base_url)
    wrong_password = f"wrong-password-{uuid.uuid4().hex}"
    call.secret(server.password, admin_password, wrong_password)

    started = call("POST", "/oauth/device_authorization", data={"client_id": server.client_id})
    flow = started.json()
    user_code = flow["user_code"]
    call.secret(flow["device_code"], user_code, user_code.replace("-", ""))
    assert call("GET", f"/qr/{user_code}.png").status_code == 200
    assert call("GET", f"/qr/{user_code.lower()}.svg").status_code == 200
    assert call("GET", "/device", params={"user_code": user_code}).status_code == 200

    device = {"id": f"phone-{uuid.uuid4().hex[:6]}", "name": "Log phone", "platform": "ios"}
    refused = call(
        "POST",
        "/mobile/v1/sessions",
        json={"username": server.username, "password": wrong_password, "device": device},
    )
    assert refused.status_code == 401
    signed_in = call(
        "POST",
        "/mobile/v1/sessions",
        json={"username": server.username, "password": server.password, "device": device},
    )
    assert signed_in.status_code == 201, signed_in.text
    device_token = signed_in.json()["device_token"]
    call.secret(device_token)
    phone = {"Authorization": f"Bearer {device_token}", "X-Device-Id": device["id"]}
    scanned = call(
        "POST", "/mobile/v1/scan", json={"qr": flow["verification_uri_complete"]}, headers=phone
    )
    assert scanned.status_code == 200, scanned.text
    confirm_token = scanned.json()["confirm_token"]
    call.secret(confirm_token)
    status = call(
        "POST",
        "/oauth/device_status",
        data={"device_code": flow["device_code"], "client_id": server.client_id},
    )
    assert status.json()["status"] == "scanned"
    confirmed = call(
        "POST", "/mobile/v1/confirm", json={"confirm_token": confirm_token}, headers=phone
    )
    assert confirmed.json()["status"] == "approved"

    token = call(
        "POST",
        "/oauth/token",
        data={
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": flow["device_code"],
            "client_id": server.client_id,
        },
    ).json()
    call.secret(token["access_token"], token["refresh_token"])
    me = call("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200
    refreshed = call(
        "POST",
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": server.client_id,
        },
    ).json()
    call.secret(refreshed["access_token"], refreshed["refresh_token"])
    revoked = call(
        "POST",
        "/oauth/revoke",
        data={"token": refreshed["refresh_token"], "client_id": server.client_id},
    )
    assert revoked.status_code == 200

    admin = call(
        "POST",
        "/admin/v1/auth/token",
        json={"username": admin_name, "password": admin_password},
    )
    assert admin.status_code == 201, admin.text
    admin_token = admin.json()["admin_token"]
    call.secret(admin_token)
    bearer = {"Authorization": f"Bearer {admin_token}"}
    assert call("GET", "/admin/v1/sessions", headers=bearer).status_code == 200
    assert call("DELETE", "/admin/v1/auth/token", headers=bearer).status_code == 204

    access = server.access_log_text
    errors = server.log_text
    lines = [json.loads(line) for line in access.splitlines() if line.strip()]
    assert all(line["log"] == "access" for line in lines)  # every line parses, is a line
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_id.setdefault(line["request_id"], []).append(line)
    for rid in call.request_ids:
        assert len(by_id.get(rid, [])) == 1, (rid, by_id.get(rid))
    routes = {by_id[rid][0]["route"] for rid in call.request_ids}
    assert "/qr/<code>.<fmt>" in routes and "/oauth/token" in routes
    for record in (json.loads(r) for r in errors.splitlines() if r.startswith("{")):
        assert record["log"] == "app"
    for secret in call.secrets:
        assert secret not in access, "a secret in the access log"
        assert secret not in errors, "a secret in the server's stderr"
