"""`authserver ...` commands: JSON on stdout, clear errors, a refused start on an old schema."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from authserver.cli import main
from authserver.config import Config
from authserver.domain.codes import hash_secret
from authserver.services import build_services


def run(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: str = "",
) -> tuple[int, Any, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> str:
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("AUTHSERVER_REDIS_URL", raising=False)
    return sqlite_url


def test_serve_refuses_an_old_schema(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["serve", "--port", "0"], monkeypatch, capsys)
    assert code == 2 and out is None
    assert "authserver db upgrade" in json.loads(err)["error"]


def test_db_upgrade_then_clients_and_users(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["db", "upgrade"], monkeypatch, capsys)
    assert code == 0 and out["revision"]

    code, public, _ = run(["clients", "create", "--name", "Desktop app"], monkeypatch, capsys)
    assert code == 0 and "client_secret" not in public and public["client_id"]

    code, private, _ = run(
        ["clients", "create", "--name", "Server app", "--confidential", "--scope", "profile"],
        monkeypatch,
        capsys,
    )
    assert code == 0 and len(private["client_secret"]) >= 43 and private["scope"] == "profile"
    stored = build_services(Config.from_env()).clients.find_by_name("Server app")
    assert stored is not None and stored.secret_hash == hash_secret(private["client_secret"])

    code, user, _ = run(
        ["users", "create", "carol", "--password-stdin", "--display-name", "Carol"],
        monkeypatch,
        capsys,
        stdin="a long passphrase\n",
    )
    assert code == 0 and user["user_id"] and user["username"] == "carol"
    code, _, err = run(
        ["users", "create", "carol", "--password-stdin"], monkeypatch, capsys, stdin="another one\n"
    )
    assert code == 2 and "taken" in json.loads(err)["error"]

    code, _, err = run(
        ["clients", "create", "--name", "X", "--scope", "admin"], monkeypatch, capsys
    )
    assert code == 2 and "admin" in json.loads(err)["error"]


def test_several_workers_need_redis(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["db", "upgrade"], monkeypatch, capsys)
    code, _, err = run(["serve", "--workers", "2"], monkeypatch, capsys)
    assert code == 2 and "AUTHSERVER_REDIS_URL" in json.loads(err)["error"]


def test_invalid_setting_is_named(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHSERVER_DEVICE_CODE_TTL", "ten minutes")
    code, _, err = run(["db", "upgrade"], monkeypatch, capsys)
    assert code == 2 and "AUTHSERVER_DEVICE_CODE_TTL" in json.loads(err)["error"]
