"""The few plain HTTP calls the set-up makes (outside any measured window)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class Http:
    """One keep-alive connection to a local server, JSON in and out."""

    def __init__(self, port: int) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def close(self) -> None:
        self._conn.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        all_headers = dict(headers or {})
        body: str | None = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body)
            all_headers["Content-Type"] = "application/json"
        self._conn.request(method, path, body, all_headers)
        response = self._conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else {})

    def expect(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON answer of a call that must succeed."""
        status, answer = self.call(method, path, **kwargs)
        if status not in (200, 201):
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer


def wait_until_serving(port: int, alive: Callable[[], bool], timeout: float = 60.0) -> None:
    """Until the app answers (gunicorn workers load the app after binding)."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError(f"the server on port {port} exited")
        try:
            client = Http(port)
            try:
                status, _ = client.call("GET", "/oauth/jwks")
            finally:
                client.close()
            if status == 200:
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server on port {port} did not start")
        time.sleep(0.2)


def sign_in_phone(port: int, username: str, password: str, device_id: str) -> str:
    """A phone's one-time sign-in (POST /mobile/v1/sessions): its device token."""
    client = Http(port)
    try:
        answer = client.expect(
            "POST",
            "/mobile/v1/sessions",
            json_body={
                "username": username,
                "password": password,
                "device": {"id": device_id, "name": f"Bench {device_id}", "platform": "android"},
            },
        )
    finally:
        client.close()
    return str(answer["device_token"])


def approved_access_tokens(
    port: int, client_id: str, device_id: str, device_token: str, count: int, scope: str
) -> list[str]:
    """`count` whole logins done by one phone: their access tokens."""
    client = Http(port)
    phone = {"Authorization": f"Bearer {device_token}", "X-Device-Id": device_id}
    tokens = []
    try:
        for _ in range(count):
            started = client.expect(
                "POST",
                "/oauth/device_authorization",
                form={"client_id": client_id, "scope": scope},
            )
            screen = client.expect(
                "POST",
                "/mobile/v1/scan",
                json_body={"qr": started["verification_uri_complete"]},
                headers=phone,
            )
            client.expect(
                "POST",
                "/mobile/v1/confirm",
                json_body={"confirm_token": screen["confirm_token"]},
                headers=phone,
            )
            issued = client.expect(
                "POST",
                "/oauth/token",
                form={
                    "grant_type": DEVICE_GRANT,
                    "device_code": started["device_code"],
                    "client_id": client_id,
                },
            )
            tokens.append(str(issued["access_token"]))
    finally:
        client.close()
    return tokens
