"""Fakes for the clients' unit tests: a clock whose sleep only moves time, a scripted server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from qrlogin_client.http import HttpResponse, TransportError

ISSUER = "https://login.example.test"
CLIENT_ID = "pc-client"
DEVICE_CODE = "device-code-secret"
USER_CODE = "WDJB-MJHT"


class FakeClock:
    """Monotonic and wall clock in one; sleep() advances it and records how long."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@dataclass
class Sent:
    """One request the fake server got."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    json_body: Any


Answer = HttpResponse | Exception | Callable[["Sent"], HttpResponse]


def error(code: str, status: int = 400, description: str = "") -> HttpResponse:
    body = {"error": code, "error_description": description or code}
    return HttpResponse(status, body)


PENDING = error("authorization_pending")
SLOW_DOWN = error("slow_down")


def tokens_answer(access_token: str = "at-1", refresh_token: str = "rt-1") -> HttpResponse:
    return HttpResponse(
        200,
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 600,
            "refresh_token": refresh_token,
            "scope": "profile email",
        },
    )


def device_authorization(
    user_code: str = USER_CODE, expires_in: int = 600, interval: int = 5
) -> HttpResponse:
    verification_uri = f"{ISSUER}/device"
    return HttpResponse(
        200,
        {
            "device_code": f"{DEVICE_CODE}-{user_code}",
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": expires_in,
            "interval": interval,
            "qr_code_png": f"{ISSUER}/qr/{user_code}.png",
        },
    )


@dataclass
class FakeServer:
    """Answers each endpoint from its own script (a list, consumed in order; the last answer
    repeats). Records every request with the fake clock's time."""

    clock: FakeClock
    status_channel: bool = False
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metadata = {
            "issuer": ISSUER,
            "device_authorization_endpoint": f"{ISSUER}/oauth/device_authorization",
            "token_endpoint": f"{ISSUER}/oauth/token",
            "revocation_endpoint": f"{ISSUER}/oauth/revoke",
            "grant_types_supported": [
                "urn:ietf:params:oauth:grant-type:device_code",
                "refresh_token",
            ],
            **self.metadata,
        }
        if self.status_channel:
            self.metadata["device_status_endpoint"] = f"{ISSUER}/oauth/device_status"
        self.scripts.setdefault("/.well-known/oauth-authorization-server", [self._metadata])
        self.scripts.setdefault("/oauth/device_authorization", [device_authorization()])
        self.scripts.setdefault("/oauth/revoke", [HttpResponse(200, {})])
        self.scripts.setdefault(
            "/api/v1/me",
            [HttpResponse(200, {"sub": "u1", "username": "demo", "name": "Demo User"})],
        )
        self._lock = threading.Lock()

    def _metadata(self, _: Sent) -> HttpResponse:
        return HttpResponse(200, self.metadata)

    def script(self, path: str, *answers: Answer) -> None:
        self.scripts[path] = list(answers)

    def requests_to(self, path: str) -> list[Sent]:
        return [sent for sent in self.sent if sent.path == path]

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        json_body: Any = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        path = urlsplit(url).path
        sent = Sent(self.clock(), method, path, dict(headers or {}), dict(form or {}), json_body)
        with self._lock:
            self.sent.append(sent)
            script = self.scripts.get(path)
            if not script:
                return error("not_found", 404)
            answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(sent)
        return answer


def connection_refused() -> TransportError:
    return TransportError("POST /oauth/token: ConnectionError: refused")
