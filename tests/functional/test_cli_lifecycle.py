"""`authserver admins create` and `authserver clients create --resource-server`."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from authserver import create_app
from authserver.bootstrap import build_services
from authserver.cli import main
from authserver.config import Config
from authserver.domain.codes import hash_secret
from authserver.domain.models import ClientKind
from tests.functional.harness import ISSUER, basic
from tests.functional.test_cli import run


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> str:
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AUTHSERVER_ISSUER", ISSUER)
    monkeypatch.setenv("AUTHSERVER_SCRYPT_P", "1")
    monkeypatch.delenv("AUTHSERVER_REDIS_URL", raising=False)
    assert run(["db", "upgrade"], monkeypatch, capsys)[0] == 0
    return sqlite_url


def test_admins_create_reads_the_password_from_stdin(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "a long admin passphrase"
    code, out, err = run(
        ["admins", "create", "ops", "--password-stdin"], monkeypatch, capsys, f"{password}\n"
    )
    assert code == 0, err
    assert set(out) == {"admin_id", "username"} and out["username"] == "ops"
    assert password not in json.dumps(out)

    engine = sa.create_engine(env)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM admins")).scalar_one()
    engine.dispose()
    assert stored.startswith("scrypt$") and password not in stored

    # The new admin signs in to the admin API with that password (and only that one).
    services = build_services(Config.from_env())
    http = create_app(services=services).test_client()
    signed_in = http.post("/admin/v1/auth/token", json={"username": "ops", "password": password})
    assert signed_in.status_code == 201
    assert signed_in.get_json()["admin"] == {"admin_id": out["admin_id"], "username": "ops"}
    wrong = http.post("/admin/v1/auth/token", json={"username": "ops", "password": password + "\n"})
    assert wrong.status_code == 401
    services.close()

    code, out, err = run(
        ["admins", "create", "ops", "--password-stdin"], monkeypatch, capsys, "another long one\n"
    )
    assert code == 2 and out is None
    assert "exists" in json.loads(err)["error"]


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_admins_create_refuses_a_short_password(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], password: str
) -> None:
    code, out, err = run(
        ["admins", "create", "ops", "--password-stdin"], monkeypatch, capsys, password + "\n"
    )
    assert code == 2 and out is None
    assert "12 characters" in json.loads(err)["error"]
    services = build_services(Config.from_env())
    assert not services.admin_auth.exists("ops")
    services.close()


def test_admins_create_needs_password_stdin(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["admins", "create", "ops"])  # never a password on the command line
    assert exit_info.value.code == 2
    assert "--password-stdin" in json.loads(capsys.readouterr().err)["error"]


def test_clients_create_resource_server(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["clients", "create", "--name", "Orders API", "--resource-server"], monkeypatch, capsys
    )
    assert code == 0, err
    assert set(out) == {"client_id", "client_secret"}  # always confidential
    assert len(out["client_secret"]) >= 43
    services = build_services(Config.from_env())
    stored = services.clients.get(out["client_id"])
    assert stored is not None and stored.kind is ClientKind.RESOURCE_SERVER
    assert stored.secret_hash == hash_secret(out["client_secret"])

    # It can introspect, and cannot run the device flow or revoke.
    app = create_app(services=services)
    http = app.test_client()
    auth = basic(out["client_id"], out["client_secret"])
    assert http.post("/oauth/introspect", data={"token": "x"}, headers=auth).get_json() == {
        "active": False
    }
    started = http.post("/oauth/device_authorization", headers=auth)
    assert started.status_code == 400 and started.get_json()["error"] == "unauthorized_client"
    revoked = http.post("/oauth/revoke", data={"token": "x"}, headers=auth)
    assert revoked.status_code == 400 and revoked.get_json()["error"] == "unauthorized_client"
    services.close()
