"""`authserver clients show|disable|enable|rotate-secret`, `users list|show|set-password` and
`admins list|set-password`: what they change is checked over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time

from authserver import create_app
from authserver.bootstrap import build_services
from authserver.cli import main
from authserver.config import Config
from authserver.domain.models import AuditEventType, AuditFilter, ClientKind
from authserver.services.clients import CLIENT_CACHE_SECONDS
from tests.functional.harness import ISSUER, basic


def cli(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: str = "",
) -> tuple[int, Any, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refused the command line
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def error_of(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return str(json.loads(lines[0])["error"])


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]
) -> str:
    """A migrated database of its own: a SQLite file, or a fresh PostgreSQL schema."""
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", database_url)
    monkeypatch.setenv("AUTHSERVER_ISSUER", ISSUER)
    monkeypatch.setenv("AUTHSERVER_SCRYPT_P", "1")
    monkeypatch.delenv("AUTHSERVER_REDIS_URL", raising=False)
    assert cli(["db", "upgrade"], monkeypatch, capsys)[0] == 0
    return database_url


@pytest.fixture
def http(env: str) -> Iterator[FlaskClient]:
    """The server's app on the same database, as a running server sees the CLI's changes."""
    services = build_services(Config.from_env())
    yield create_app(services=services).test_client()
    services.close()


def audit_events(event: AuditEventType) -> list[Any]:
    services = build_services(Config.from_env())
    try:
        return services.administration.audit(AuditFilter(event=event.value))
    finally:
        services.close()


def test_rotate_secret_replaces_the_secret_at_once(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, made, _ = cli(
        ["clients", "create", "--name", "Orders API", "--resource-server"], monkeypatch, capsys
    )
    assert code == 0
    client_id, old = made["client_id"], made["client_secret"]
    introspect = {"token": "x"}
    with freeze_time() as frozen:
        known = http.post("/oauth/introspect", data=introspect, headers=basic(client_id, old))
        assert known.json == {"active": False}

        code, rotated, err = cli(["clients", "rotate-secret", client_id], monkeypatch, capsys)
        assert code == 0, err
        assert rotated["client_id"] == client_id and len(rotated["client_secret"]) >= 43
        new = rotated["client_secret"]
        assert new != old
        # The running server trusts its copy of the client row for CLIENT_CACHE_SECONDS.
        frozen.tick(CLIENT_CACHE_SECONDS + 0.1)
        refused = http.post("/oauth/introspect", data=introspect, headers=basic(client_id, old))
        assert refused.status_code == 401 and refused.json["error"] == "invalid_client"
        answered = http.post("/oauth/introspect", data=introspect, headers=basic(client_id, new))
        assert answered.status_code == 200 and answered.json == {"active": False}
    (event,) = audit_events(AuditEventType.CLIENT_SECRET_ROTATED)
    assert event.client_id == client_id and event.actor.kind == "system"
    assert new not in json.dumps(event.detail) and old not in json.dumps(event.detail)

    code, public, _ = cli(["clients", "create", "--name", "Desktop"], monkeypatch, capsys)
    for argv, message in (
        (["clients", "rotate-secret", public["client_id"]], "public client has no secret"),
        (["clients", "rotate-secret", "no-such-client"], "No such client"),
    ):
        code, out, err = cli(argv, monkeypatch, capsys)
        assert code == 2 and out is None and message in error_of(err)


def test_disable_and_enable_a_client(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, made, _ = cli(["clients", "create", "--name", "Desktop"], monkeypatch, capsys)
    client_id = made["client_id"]
    with freeze_time() as frozen:
        started = http.post("/oauth/device_authorization", data={"client_id": client_id})
        assert started.status_code == 200

        code, shown, err = cli(["clients", "disable", client_id], monkeypatch, capsys)
        assert code == 0, err
        assert shown["disabled"] is True
        code, shown, _ = cli(["clients", "show", client_id], monkeypatch, capsys)
        assert (shown["client_id"], shown["name"]) == (client_id, "Desktop")
        assert shown["disabled"] is True
        # The running server trusts its copy of the client row for CLIENT_CACHE_SECONDS.
        frozen.tick(CLIENT_CACHE_SECONDS + 0.1)
        refused = http.post("/oauth/device_authorization", data={"client_id": client_id})
        assert refused.status_code == 401 and refused.json["error"] == "invalid_client"

        code, shown, _ = cli(["clients", "enable", client_id], monkeypatch, capsys)
        assert code == 0 and shown["disabled"] is False
        frozen.tick(CLIENT_CACHE_SECONDS + 0.1)
        again = http.post("/oauth/device_authorization", data={"client_id": client_id})
        assert again.status_code == 200
    kinds = [e.actor.kind for e in audit_events(AuditEventType.CLIENT_DISABLED)]
    kinds += [e.actor.kind for e in audit_events(AuditEventType.CLIENT_ENABLED)]
    assert kinds == ["system", "system"]

    for verb in ("show", "disable", "enable"):
        code, out, err = cli(["clients", verb, "no-such-client"], monkeypatch, capsys)
        assert code == 2 and out is None and error_of(err) == "No such client."


def _sign_in(http: FlaskClient, username: str, password: str) -> int:
    return http.post(
        "/mobile/v1/sessions",
        json={
            "username": username,
            "password": password,
            "device": {"id": "phone-1", "name": "Ann's phone", "platform": "ios"},
        },
    ).status_code


def test_users_list_show_and_set_password(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("ann", "bob", "annabel"):
        code, _, _ = cli(
            ["users", "create", name, "--password-stdin", "--display-name", name.title()],
            monkeypatch,
            capsys,
            "first passphrase\n",
        )
        assert code == 0
    code, listed, _ = cli(["users", "list"], monkeypatch, capsys)
    assert [u["username"] for u in listed["users"]] == ["ann", "annabel", "bob"]
    assert all("password_hash" not in u and u["password"] is True for u in listed["users"])
    code, listed, _ = cli(["users", "list", "--search", "ANN", "--limit", "1"], monkeypatch, capsys)
    assert [u["username"] for u in listed["users"]] == ["ann"]

    assert _sign_in(http, "ann", "first passphrase") == 201
    code, shown, _ = cli(["users", "show", "ann"], monkeypatch, capsys)
    assert shown["username"] == "ann" and shown["display_name"] == "Ann"
    assert [(p["device_id"], p["name"]) for p in shown["signed_in_phones"]] == [
        ("phone-1", "Ann's phone")
    ]

    code, out, err = cli(
        ["users", "set-password", "ann", "--password-stdin"], monkeypatch, capsys, "new one!\n"
    )
    assert code == 0, err
    assert out["username"] == "ann"
    assert _sign_in(http, "ann", "first passphrase") == 401
    assert _sign_in(http, "ann", "new one!") == 201
    assert _sign_in(http, "bob", "first passphrase") == 201  # nobody else's changed
    (event,) = audit_events(AuditEventType.USER_PASSWORD_SET)
    assert event.user_id == shown["user_id"] and event.actor.kind == "system"

    for argv, stdin, message in (
        (["users", "set-password", "ann", "--password-stdin"], "short\n", "8 characters"),
        (["users", "set-password", "nobody", "--password-stdin"], "long enough\n", "No such"),
        (["users", "show", "nobody"], "", "No such user."),
    ):
        code, out, err = cli(argv, monkeypatch, capsys, stdin)
        assert code == 2 and out is None and message in error_of(err)
    assert _sign_in(http, "ann", "new one!") == 201  # the refused change changed nothing


def _admin_token(http: FlaskClient, username: str, password: str) -> int:
    return http.post(
        "/admin/v1/auth/token", json={"username": username, "password": password}
    ).status_code


def test_admins_list_and_set_password(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("ops", "alice"):
        code, _, _ = cli(
            ["admins", "create", name, "--password-stdin"], monkeypatch, capsys, "first admin pw\n"
        )
        assert code == 0
    code, listed, _ = cli(["admins", "list"], monkeypatch, capsys)
    assert [a["username"] for a in listed["admins"]] == ["alice", "ops"]
    assert all(set(a) == {"admin_id", "username", "disabled"} for a in listed["admins"])

    code, out, err = cli(
        ["admins", "set-password", "ops", "--password-stdin"],
        monkeypatch,
        capsys,
        "second admin pw\n",
    )
    assert code == 0, err
    assert out["username"] == "ops"
    assert _admin_token(http, "ops", "first admin pw") == 401
    assert _admin_token(http, "ops", "second admin pw") == 201
    assert _admin_token(http, "alice", "first admin pw") == 201

    for argv, stdin, message in (
        (["admins", "set-password", "ops", "--password-stdin"], "elevenchars\n", "12 characters"),
        (["admins", "set-password", "bob", "--password-stdin"], "long enough pw\n", "No such"),
    ):
        code, out, err = cli(argv, monkeypatch, capsys, stdin)
        assert code == 2 and out is None and message in error_of(err)
    assert _admin_token(http, "ops", "second admin pw") == 201


def test_disable_and_enable_a_user_and_set_an_email(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("carol", "dave"):
        assert (
            cli(
                ["users", "create", name, "--password-stdin"],
                monkeypatch,
                capsys,
                "a long passphrase\n",
            )[0]
            == 0
        )
    phone = _phone(http, "carol")
    client = http.application.extensions["authserver"].clients.create(
        "PC", confidential=False, scope="profile"
    )[0]
    started = http.post("/oauth/device_authorization", data={"client_id": client.client_id})
    scan = http.post(
        "/mobile/v1/scan", json={"user_code": started.get_json()["user_code"]}, headers=phone
    )
    assert scan.status_code == 200

    code, out, err = cli(["users", "disable", "carol"], monkeypatch, capsys)
    assert code == 0, err
    assert out["disabled"] is True
    # The phone is signed out, the password reads as wrong, nobody else is touched.
    assert (
        http.post(
            "/mobile/v1/confirm",
            json={"confirm_token": scan.get_json()["confirm_token"]},
            headers=phone,
        ).status_code
        == 401
    )
    assert _sign_in(http, "carol", "a long passphrase") == 401
    assert _sign_in(http, "dave", "a long passphrase") == 201
    (event,) = audit_events(AuditEventType.USER_DISABLED)
    assert event.actor.kind == "system"

    code, out, _ = cli(["users", "enable", "carol"], monkeypatch, capsys)
    assert code == 0 and out["disabled"] is False
    assert _sign_in(http, "carol", "a long passphrase") == 201

    code, out, _ = cli(
        ["users", "set-email", "carol", "--email", "carol@example.com", "--verified"],
        monkeypatch,
        capsys,
    )
    assert code == 0 and (out["email"], out["email_verified"]) == ("carol@example.com", True)
    code, out, _ = cli(["users", "set-email", "carol", "--remove"], monkeypatch, capsys)
    assert code == 0 and out["email"] is None and out["email_verified"] is False
    code, out, err = cli(
        ["users", "set-email", "carol", "--email", "not an address"], monkeypatch, capsys
    )
    assert code == 2 and "email" in error_of(err)


def _login(http: FlaskClient, client_id: str, phone: dict[str, str]) -> dict[str, Any]:
    """A whole QR login of `client_id`, approved by `phone`: the PC's tokens."""
    started = http.post("/oauth/device_authorization", data={"client_id": client_id}).get_json()
    scanned = http.post("/mobile/v1/scan", json={"user_code": started["user_code"]}, headers=phone)
    confirm = {"confirm_token": scanned.get_json()["confirm_token"]}
    assert http.post("/mobile/v1/confirm", json=confirm, headers=phone).status_code == 200
    tokens = http.post(
        "/oauth/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": started["device_code"],
            "client_id": client_id,
        },
    )
    assert tokens.status_code == 200, tokens.get_json()
    return dict(tokens.get_json())


def _phone(http: FlaskClient, username: str) -> dict[str, str]:
    signed_in = http.post(
        "/mobile/v1/sessions",
        json={
            "username": username,
            "password": "a long passphrase",
            "device": {"id": f"phone-{username}", "name": "Phone", "platform": "ios"},
        },
    )
    assert signed_in.status_code == 201
    token = signed_in.get_json()["device_token"]
    return {"Authorization": f"Bearer {token}", "X-Device-Id": f"phone-{username}"}


def _active(http: FlaskClient, token: str, api: tuple[str, str]) -> bool:
    answer = http.post("/oauth/introspect", data={"token": token}, headers=basic(*api))
    return bool(answer.get_json()["active"])


def test_delete_a_user_erases_them_and_revokes_everything(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("erin", "frank"):
        code, _, _ = cli(
            ["users", "create", name, "--password-stdin", "--email", f"{name}@example.com"],
            monkeypatch,
            capsys,
            "a long passphrase\n",
        )
        assert code == 0
    services = http.application.extensions["authserver"]
    pc = services.clients.create("PC", confidential=False, scope="profile")[0].client_id
    api = services.clients.create(
        "API", confidential=True, scope=None, kind=ClientKind.RESOURCE_SERVER
    )
    api_auth = (api[0].client_id, api[1])
    erin, frank = _phone(http, "erin"), _phone(http, "frank")
    erins, franks = _login(http, pc, erin), _login(http, pc, frank)
    erin_id = cli(["users", "show", "erin"], monkeypatch, capsys)[1]["user_id"]

    # Without --yes nothing happens.
    code, out, err = cli(["users", "delete", "erin"], monkeypatch, capsys)
    assert code == 2 and out is None and "--yes" in error_of(err)
    assert _active(http, erins["access_token"], api_auth)

    code, out, err = cli(["users", "delete", "erin", "--yes"], monkeypatch, capsys)
    assert code == 0, err
    assert out == {"user_id": erin_id, "deleted": True, "sessions_revoked": 1}
    # Her session is revoked (access and refresh), her phone signed out; Frank is untouched.
    assert not _active(http, erins["access_token"], api_auth)
    refreshed = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": erins["refresh_token"],
            "client_id": pc,
        },
    )
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    assert http.get("/mobile/v1/logins", headers=erin).status_code == 401
    assert _active(http, franks["access_token"], api_auth)
    assert http.get("/mobile/v1/logins", headers=frank).status_code == 200
    # She is gone from every listing, her name and email are erased, her name is free.
    code, out, err = cli(["users", "show", "erin"], monkeypatch, capsys)
    assert code == 2 and error_of(err) == "No such user."
    listed = cli(["users", "list"], monkeypatch, capsys)[1]["users"]
    assert [u["username"] for u in listed] == ["frank"]
    tombstone = services.accounts.user(erin_id)
    assert tombstone is not None and tombstone.deleted_at is not None
    assert "erin" not in (tombstone.username + tombstone.display_name)
    assert (tombstone.email, tombstone.password_hash) == (None, None)
    assert _sign_in(http, "erin", "a long passphrase") == 401
    code, again, _ = cli(
        ["users", "create", "erin", "--password-stdin"], monkeypatch, capsys, "another phrase\n"
    )
    assert code == 0 and again["user_id"] != erin_id
    (event,) = audit_events(AuditEventType.USER_DELETED)
    assert event.user_id == erin_id and event.actor.kind == "system"
    assert "erin" not in json.dumps(event.detail)

    code, out, err = cli(["users", "delete", "nobody", "--yes"], monkeypatch, capsys)
    assert code == 2 and error_of(err) == "No such user."
    # Tombstones have no name: any number of them, and no name anyone picks can block one.
    code, _, _ = cli(
        ["users", "create", f"deleted-{erin_id}", "--password-stdin"],
        monkeypatch,
        capsys,
        "another phrase\n",
    )
    assert code == 0
    for name in ("frank", "erin", f"deleted-{erin_id}"):
        code, out, err = cli(["users", "delete", name, "--yes"], monkeypatch, capsys)
        assert code == 0 and out["deleted"] is True, err
    assert cli(["users", "list"], monkeypatch, capsys)[1]["users"] == []


def test_delete_a_client_revokes_its_sessions_and_retires_its_id(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli(["users", "create", "gina", "--password-stdin"], monkeypatch, capsys, "a long passphrase\n")
    services = http.application.extensions["authserver"]
    api = services.clients.create(
        "API", confidential=True, scope=None, kind=ClientKind.RESOURCE_SERVER
    )
    api_auth = (api[0].client_id, api[1])
    doomed = cli(["clients", "create", "--name", "Old PC"], monkeypatch, capsys)[1]["client_id"]
    kept = cli(["clients", "create", "--name", "New PC"], monkeypatch, capsys)[1]["client_id"]
    phone = _phone(http, "gina")
    old, new = _login(http, doomed, phone), _login(http, kept, phone)

    code, out, err = cli(["clients", "delete", doomed], monkeypatch, capsys)
    assert code == 2 and "--yes" in error_of(err)
    with freeze_time() as frozen:
        code, out, err = cli(["clients", "delete", doomed, "--yes"], monkeypatch, capsys)
        assert code == 0 and out == {"client_id": doomed, "deleted": True}, err
        assert not _active(http, old["access_token"], api_auth)
        assert _active(http, new["access_token"], api_auth)
        frozen.tick(CLIENT_CACHE_SECONDS + 0.1)  # the running server's copy of the row
        refused = http.post("/oauth/device_authorization", data={"client_id": doomed})
        assert refused.status_code == 401 and refused.json["error"] == "invalid_client"
        assert http.get(f"/login?client_id={doomed}").status_code == 404  # unknown, not disabled
    listed = cli(["clients", "list"], monkeypatch, capsys)[1]["clients"]
    assert [c["client_id"] for c in listed] == [api_auth[0], kept]
    for verb in ("show", "enable", "disable", "rotate-secret"):
        code, out, err = cli(["clients", verb, doomed], monkeypatch, capsys)
        assert code == 2 and error_of(err) == "No such client.", verb
    code, out, err = cli(["clients", "update", doomed, "--name", "Back"], monkeypatch, capsys)
    assert code == 2 and error_of(err) == "No such client."
    code, out, err = cli(["clients", "delete", doomed, "--yes"], monkeypatch, capsys)
    assert code == 2 and error_of(err) == "No such client."
    (event,) = audit_events(AuditEventType.CLIENT_DELETED)
    assert event.client_id == doomed and event.actor.kind == "system"


def test_disable_enable_and_delete_an_admin(
    env: str,
    http: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("ops", "alice"):
        cli(["admins", "create", name, "--password-stdin"], monkeypatch, capsys, "an admin pw!\n")
    signed_in = http.post(
        "/admin/v1/auth/token", json={"username": "ops", "password": "an admin pw!"}
    )
    bearer = {"Authorization": f"Bearer {signed_in.get_json()['admin_token']}"}
    assert http.get("/admin/v1/clients", headers=bearer).status_code == 200

    code, out, err = cli(["admins", "disable", "ops"], monkeypatch, capsys)
    assert code == 0 and out["disabled"] is True, err
    # The live session ends now and the right password no longer signs in.
    assert http.get("/admin/v1/clients", headers=bearer).status_code == 401
    assert _admin_token(http, "ops", "an admin pw!") == 401
    assert _admin_token(http, "alice", "an admin pw!") == 201
    listed = cli(["admins", "list"], monkeypatch, capsys)[1]["admins"]
    assert [(a["username"], a["disabled"]) for a in listed] == [("alice", False), ("ops", True)]

    code, out, _ = cli(["admins", "enable", "ops"], monkeypatch, capsys)
    assert code == 0 and out["disabled"] is False
    assert _admin_token(http, "ops", "an admin pw!") == 201
    # The session disabling ended stays ended.
    assert http.get("/admin/v1/clients", headers=bearer).status_code == 401

    code, out, err = cli(["admins", "delete", "ops"], monkeypatch, capsys)
    assert code == 2 and "--yes" in error_of(err)
    code, out, err = cli(["admins", "delete", "ops", "--yes"], monkeypatch, capsys)
    assert code == 0 and out["deleted"] is True, err
    assert _admin_token(http, "ops", "an admin pw!") == 401
    assert [a["username"] for a in cli(["admins", "list"], monkeypatch, capsys)[1]["admins"]] == [
        "alice"
    ]
    kinds = [
        e.event
        for kind in (AuditEventType.ADMIN_DISABLED, AuditEventType.ADMIN_DELETED)
        for e in audit_events(kind)
    ]
    assert kinds == ["admin.disabled", "admin.deleted"]
    for verb in ("disable", "enable"):
        code, out, err = cli(["admins", verb, "ops"], monkeypatch, capsys)
        assert code == 2 and error_of(err) == "No such admin."
