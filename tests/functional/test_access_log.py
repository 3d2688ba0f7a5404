"""The access log and the app's log records: JSON lines with a request id, and no secrets.

Through Flask's test client (no server): what the log says is the app's doing. The same is
checked end to end against real servers in tests/e2e/test_serving.py.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from authserver import create_app
from authserver.config import AccessLog, Config, ConfigError
from authserver.logs import JsonFormatter
from tests.functional.harness import PASSWORD, Harness, basic, make_services

ACCESS_FIELDS = {
    "time",
    "log",
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "client",
    "bytes",
}


@pytest.fixture(scope="module")
def logged_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """The app on the embedded store with its JSON access log on (the default)."""
    services = make_services(f"sqlite:///{tmp_path_factory.mktemp('log')}/a.db", None, "x:")
    assert services.config.access_log is AccessLog.JSON
    app = create_app(services=services)
    client, _ = services.clients.create("Logged PC app", confidential=False, scope="profile")
    services.accounts.create_user("lola", PASSWORD, "Lola")
    yield Harness(app.test_client(), services, client.client_id, "lola")
    services.close()


@pytest.fixture
def logged(logged_app: Harness, capfd: pytest.CaptureFixture[str]) -> Harness:
    """The module's app; what it wrote before this test is dropped."""
    capfd.readouterr()
    return logged_app


def access_lines(capfd: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capfd.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all(line["log"] == "access" and set(line) == ACCESS_FIELDS for line in lines), lines
    return lines


def test_a_path_parameter_is_logged_as_its_route_template(
    logged: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    started = logged.authorize()
    user_code = started["user_code"]
    capfd.readouterr()
    response = logged.http.get(f"/qr/{user_code}.png?ref=secret-query-value")
    assert response.status_code == 200
    [line] = access_lines(capfd)
    assert line["route"] == "/qr/<code>.<fmt>"
    assert line["method"] == "GET" and line["status"] == 200
    assert line["bytes"] == len(response.data) and line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"  # Werkzeug's test client address
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert line["request_id"] == response.headers["X-Request-Id"]
    text = json.dumps(line)
    for secret in (user_code, user_code.replace("-", ""), "secret-query-value"):
        assert secret not in text


def test_an_unmatched_path_is_logged_without_it(
    logged: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    response = logged.http.get("/qr/BCDF-GHJK/extra")
    assert response.status_code == 404
    [line] = access_lines(capfd)
    assert line["route"] is None and "BCDF" not in json.dumps(line)


def test_bodies_credentials_and_cookies_never_reach_the_line(
    logged: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    started = logged.authorize()
    capfd.readouterr()
    logged.http.set_cookie("authserver_admin", "cookie-secret-value")
    response = logged.http.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": started["device_code"],
        },
        headers=basic(logged.client_id, "basic-secret-value"),
    )
    logged.http.delete_cookie("authserver_admin")
    assert response.status_code == 401  # a public client presenting a secret
    [line] = access_lines(capfd)
    assert line["route"] == "/oauth/token" and line["status"] == 401
    text = json.dumps(line)
    for secret in (started["device_code"], "basic-secret-value", "cookie-secret-value"):
        assert secret not in text


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("3f2a9c1e-7b7d-4c55-9a3e-2f6f0c9e8b11", True),  # a UUID
        ("Root=1-67891233-abcdef012345678912345678", False),  # "=" is not in the sane set
        ("abc\tforged line", False),  # whitespace could forge log fields
        ("x" * 129, False),
        ("-leading-dash", False),
    ],
)
def test_a_sane_incoming_request_id_is_kept_and_echoed(
    logged: Harness, capfd: pytest.CaptureFixture[str], incoming: str, kept: bool
) -> None:
    response = logged.http.get("/oauth/jwks", headers={"X-Request-Id": incoming})
    [line] = access_lines(capfd)
    echoed = response.headers["X-Request-Id"]
    assert line["request_id"] == echoed
    if kept:
        assert echoed == incoming
    else:
        assert echoed != incoming and re.fullmatch(r"[0-9a-f]{16}", echoed)


def test_each_request_gets_its_own_id(logged: Harness, capfd: pytest.CaptureFixture[str]) -> None:
    ids = {logged.http.get("/oauth/jwks").headers["X-Request-Id"] for _ in range(20)}
    assert len(ids) == 20
    assert {line["request_id"] for line in access_lines(capfd)} == ids


def test_the_apps_own_records_carry_the_request_id(
    logged: Harness, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(JsonFormatter().format(record))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-internal-detail")

    monkeypatch.setattr(logged.services.keys, "jwks", broken)
    handler = Keep(level=logging.ERROR)
    logging.getLogger("authserver").addHandler(handler)
    try:
        response = logged.http.get("/oauth/qr/x", headers={"X-Request-Id": "trace-me-1"})
        assert response.status_code == 404  # not an error: no record
        response = logged.http.get("/oauth/jwks", headers={"X-Request-Id": "trace-me-2"})
    finally:
        logging.getLogger("authserver").removeHandler(handler)
    assert response.status_code == 500
    [record] = [json.loads(r) for r in records]
    assert record["request_id"] == "trace-me-2" and record["level"] == "ERROR"
    assert record["log"] == "app" and record["logger"] == "authserver.app"
    assert record["message"] == "unhandled error on GET /oauth/jwks"
    assert "secret-internal-detail" in record["exception"]  # for the operator, not the client
    assert "secret-internal-detail" not in response.get_data(as_text=True)
    assert [line["status"] for line in access_lines(capfd)] == [404, 500]


def test_a_record_outside_a_request_has_no_request_id() -> None:
    record = logging.LogRecord("authserver.x", logging.WARNING, __file__, 1, "n=%d", (3,), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "n=3" and "request_id" not in line


def test_the_access_log_can_be_switched_off(
    sqlite_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    services = make_services(sqlite_url, None, "x:", access_log=AccessLog.OFF)
    app = create_app(services=services)
    capfd.readouterr()
    response = app.test_client().get("/oauth/jwks")
    services.close()
    assert response.status_code == 200 and "X-Request-Id" not in response.headers
    assert capfd.readouterr().out == ""


def test_the_setting_is_read_and_checked() -> None:
    assert Config.from_env({}).access_log is AccessLog.JSON
    assert Config.from_env({"AUTHSERVER_ACCESS_LOG": "OFF"}).access_log is AccessLog.OFF
    with pytest.raises(ConfigError, match=r"AUTHSERVER_ACCESS_LOG must be one of json\|off"):
        Config.from_env({"AUTHSERVER_ACCESS_LOG": "text"})
