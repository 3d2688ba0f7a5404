"""An HTTP harness that drives the Flask app as PC clients and phones do."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from flask.testing import FlaskClient

from authserver.bootstrap import Services, build_services
from authserver.config import Config
from authserver.oauth.metadata import DEVICE_CODE_GRANT

ISSUER = "http://localhost"
PASSWORD = "correct horse battery"


@dataclass
class Phone:
    """A signed-in mobile app."""

    token: str
    device_id: str

    def headers(self, device_id: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Device-Id": device_id or self.device_id}


@dataclass
class Harness:
    """Drives the server through HTTP as PC clients and phones do."""

    http: FlaskClient
    services: Services
    client_id: str
    username: str
    extra: dict[str, Any] = field(default_factory=dict)

    # --- PC side ----------------------------------------------------------------------
    def authorize(self, client_id: str | None = None, **params: str) -> dict[str, Any]:
        response = self.http.post(
            "/oauth/device_authorization",
            data={"client_id": client_id or self.client_id, **params},
            environ_base={"REMOTE_ADDR": "203.0.113.7"},
            headers={"User-Agent": "TestPC/1.0"},
        )
        assert response.status_code == 200, response.get_json()
        return dict(response.get_json())

    def poll(self, device_code: str, client_id: str | None = None, **extra: str) -> Any:
        data = {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, **extra}
        if client_id != "":
            data["client_id"] = client_id or self.client_id
        return self.http.post("/oauth/token", data=data)

    def refresh(self, refresh_token: str, client_id: str | None = None) -> Any:
        return self.http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": client_id or self.client_id,
            },
        )

    def status(self, device_code: str, **extra: str) -> Any:
        return self.http.post(
            "/oauth/device_status",
            data={"device_code": device_code, "client_id": self.client_id, **extra},
        )

    # --- Phone side -------------------------------------------------------------------
    def sign_in(self, device_id: str = "phone-1", username: str | None = None) -> Phone:
        response = self.http.post(
            "/mobile/v1/sessions",
            json={
                "username": username or self.username,
                "password": PASSWORD,
                "device": {"id": device_id, "name": "Test phone", "platform": "ios"},
            },
        )
        assert response.status_code == 201, response.get_json()
        return Phone(response.get_json()["device_token"], device_id)

    def scan(self, phone: Phone, **body: str) -> Any:
        return self.http.post("/mobile/v1/scan", json=body, headers=phone.headers())

    def decide(
        self, phone: Phone, confirm_token: str, action: str = "confirm", number: int | None = None
    ) -> Any:
        body: dict[str, Any] = {"confirm_token": confirm_token}
        if number is not None:
            body["number"] = number  # number matching: the one the PC shows
        return self.http.post(f"/mobile/v1/{action}", json=body, headers=phone.headers())

    def approve(self, started: dict[str, Any], phone: Phone | None = None) -> Phone:
        """Scan the QR and confirm (picking the number the PC shows, if the flow asks for
        number matching): the flow is APPROVED afterwards."""
        phone = phone or self.sign_in()
        scanned = self.scan(phone, qr=started["verification_uri_complete"])
        assert scanned.status_code == 200, scanned.get_json()
        number = None
        if "number_choices" in scanned.get_json():
            number = self.status(started["device_code"]).get_json()["match_number"]
        confirmed = self.decide(phone, scanned.get_json()["confirm_token"], number=number)
        assert confirmed.status_code == 200, confirmed.get_json()
        return phone

    def create_client(self, *, confidential: bool) -> tuple[str, str]:
        client, secret = self.services.clients.create(
            "Other", confidential=confidential, scope=None
        )
        return client.client_id, secret

    def create_user(self) -> str:
        username = f"user-{uuid.uuid4().hex[:8]}"
        self.services.accounts.create_user(username, PASSWORD, "Bob Example")
        return username


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def make_services(
    database_url: str, redis_url: str | None, prefix: str, **settings: Any
) -> Services:
    config = Config.from_env(
        {},
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=prefix,
        issuer=ISSUER,
        scrypt_p=1,  # cheap hashes for the many test users; verification reads each hash's own p
        **settings,
    )
    services = build_services(config)
    services.database.upgrade()
    return services
