"""`authserver ...` commands: JSON on stdout, clear errors, a refused start on an old schema."""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import pytest
import sqlalchemy as sa

from authserver.bootstrap import build_services
from authserver.cli import main
from authserver.config import Config
from authserver.domain.codes import hash_secret


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


def test_serve_refuses_a_redis_that_does_not_answer(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert run(["db", "upgrade"], monkeypatch, capsys)[0] == 0
    monkeypatch.setenv("AUTHSERVER_REDIS_URL", f"redis://:pw-s3cret@127.0.0.1:{port}/0")
    code, out, err = run(["serve", "--port", "0"], monkeypatch, capsys)
    assert code == 2 and out is None
    message = json.loads(err)["error"]
    assert f"Redis at 127.0.0.1:{port} (AUTHSERVER_REDIS_URL) does not answer" in message
    assert "pw-s3cret" not in err


def test_db_upgrade_then_clients_and_users(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["db", "upgrade"], monkeypatch, capsys)
    assert code == 0 and out["revision"]

    code, public, _ = run(["clients", "create", "--name", "Desktop app"], monkeypatch, capsys)
    assert code == 0 and list(public) == ["client_id"]  # public: no secret (RFC 8628 §5.6)

    code, private, _ = run(
        ["clients", "create", "--name", "Server app", "--confidential", "--scope", "profile"],
        monkeypatch,
        capsys,
    )
    assert code == 0 and set(private) == {"client_id", "client_secret"}
    assert len(private["client_secret"]) >= 43
    stored = build_services(Config.from_env()).clients.find_by_name("Server app")
    assert stored is not None and stored.secret_hash == hash_secret(private["client_secret"])

    code, user, _ = run(
        ["users", "create", "carol", "--password-stdin", "--display-name", "Carol"],
        monkeypatch,
        capsys,
        stdin="a long passphrase\n",
    )
    assert code == 0 and list(user) == ["user_id"]
    code, _, err = run(
        ["users", "create", "carol", "--password-stdin"], monkeypatch, capsys, stdin="another one\n"
    )
    assert code == 2 and "taken" in json.loads(err)["error"]

    code, _, err = run(
        ["clients", "create", "--name", "X", "--scope", "admin"], monkeypatch, capsys
    )
    assert code == 2 and "admin" in json.loads(err)["error"]


def test_users_with_an_email(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["db", "upgrade"], monkeypatch, capsys)
    code, made, _ = run(
        [
            "users",
            "create",
            "dora",
            "--password-stdin",
            "--email=dora@example.com ",
            "--email-verified",
        ],
        monkeypatch,
        capsys,
        stdin="a long passphrase\n",
    )
    assert code == 0
    code, _, _ = run(
        ["users", "create", "erik", "--password-stdin", "--email", "erik@example.org"],
        monkeypatch,
        capsys,
        stdin="a long passphrase\n",
    )
    assert code == 0
    accounts = build_services(Config.from_env()).accounts
    dora, erik = accounts.find_user("dora"), accounts.find_user("erik")
    assert dora is not None and dora.user_id == made["user_id"]
    assert (dora.email, dora.email_verified) == ("dora@example.com", True)
    assert erik is not None and (erik.email, erik.email_verified) == ("erik@example.org", False)
    for argv in (
        ["users", "create", "f", "--password-stdin", "--email", "not an address"],
        ["users", "create", "g", "--password-stdin", "--email", "g@localhost"],
        ["users", "create", "h", "--password-stdin", "--email-verified"],
    ):
        code, _, err = run(argv, monkeypatch, capsys, stdin="a long passphrase\n")
        assert code == 2 and "email" in json.loads(err)["error"].lower(), argv


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


def test_serve_refuses_a_schema_it_does_not_know(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["db", "upgrade"], monkeypatch, capsys)
    engine = sa.create_engine(env)
    with engine.begin() as conn:  # as if another version of the code had migrated it
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    engine.dispose()
    code, _, err = run(["serve", "--port", "0"], monkeypatch, capsys)
    assert code == 2 and "f00dfeed" in json.loads(err)["error"]


def test_usage_and_database_errors_are_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["clients", "create"])
    assert exit_info.value.code == 2
    assert "--name" in json.loads(capsys.readouterr().err)["error"]
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", f"sqlite:///{tmp_path}/missing/dir/x.db")
    code, _, err = run(["clients", "create", "--name", "X"], monkeypatch, capsys)
    assert code == 2 and "OperationalError" in json.loads(err)["error"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--threads", "8"], "AUTHSERVER_STATUS_MAX_WAITERS"),
        (["demo", "--threads", "19"], "AUTHSERVER_STATUS_MAX_WAITERS"),
        (["serve", "--server-option", "log_access=true"], "raw paths"),
        (["serve", "--server-option", "backlog"], "NAME=VALUE"),
        (["serve", "--server-option", "http1-header-read-timeout=soon"], "not a valid int"),
        (["serve", "--workers", "0"], "at least 1"),
    ],
)
def test_serve_refuses_wrong_server_settings_before_starting(
    env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    code, out, err = run(argv, monkeypatch, capsys)
    assert code == 2 and out is None
    assert message in json.loads(err)["error"]


def test_serve_help_shows_the_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--workers WORKERS processes (more than 1 needs Redis) (default: 1)" in text
    assert "(default: 32)" in text and "--server-option NAME=VALUE" in text
