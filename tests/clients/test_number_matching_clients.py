"""Number matching in the reference clients: the PC says the number, the phone sends its pick."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrlogin_client.http import HttpResponse
from qrlogin_client.pc import Status, StatusUpdate
from qrlogin_client.phone import ApprovalScreen, MobileApp, PhoneStateStore
from tests.clients.fakes import ISSUER, FakeClock, FakeServer
from tests.clients.test_phone import URL, scan_answer


def test_the_pc_tells_the_user_which_number_to_pick() -> None:
    update = StatusUpdate(Status.SCANNED, scanner_name="D*** U***", match_number=42)
    assert "pick 42" in update.message
    assert "pick" not in StatusUpdate(Status.SCANNED).message


def test_the_phone_shows_the_choices_and_sends_the_pick() -> None:
    answer = scan_answer()
    server = FakeServer(FakeClock())
    server.script("/mobile/v1/sessions", HttpResponse(201, {"device_token": "dt-1"}))
    server.script(
        "/mobile/v1/scan", HttpResponse(200, {**answer.body, "number_choices": [17, 42, 88]})
    )
    server.script("/mobile/v1/confirm", HttpResponse(200, {"status": "approved"}))
    app = MobileApp(ISSUER, "phone-1", transport=server)
    app.sign_in("demo", "pw", "Test phone", "ios")
    screen = app.scan(qr=URL)
    assert screen.number_choices == (17, 42, 88)
    assert "17  42  88" in screen.describe()
    assert app.confirm(screen, 42) == "approved"
    assert server.requests_to("/mobile/v1/confirm")[0].json_body == {
        "confirm_token": "ct-secret",
        "number": 42,
    }
    plain = ApprovalScreen.from_response(answer.body)
    assert plain.number_choices == () and "Pick" not in plain.describe()


def test_the_phone_cli_sends_a_pick_only_among_the_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from qrlogin_client import phone_cli

    server = FakeServer(FakeClock())
    real = phone_cli.MobileApp
    monkeypatch.setattr(phone_cli, "MobileApp", lambda *a, **k: real(*a, **k, transport=server))
    store = PhoneStateStore(tmp_path / "phone.json")
    state = store.load_or_create("Test phone", "ios")
    state.server, state.username, state.device_token = ISSUER, "demo", "dt-1"
    store.save(state)
    choices = {**scan_answer().body, "number_choices": [17, 42, 88]}
    argv = ["scan", "--state", str(store.path), "--code", "WDJB-MJHT", "--approve"]

    server.script("/mobile/v1/scan", HttpResponse(200, choices))
    assert phone_cli.main([*argv, "--number", "4"]) == phone_cli.EXIT_FAILED
    assert "4 is not one of the choices (17, 42, 88)" in capsys.readouterr().out
    assert server.requests_to("/mobile/v1/confirm") == []  # a slip does not deny the sign-in

    server.script("/mobile/v1/scan", HttpResponse(200, choices))
    server.script("/mobile/v1/confirm", HttpResponse(200, {"status": "approved"}))
    monkeypatch.setattr("builtins.input", lambda prompt: "42")
    assert phone_cli.main(argv) == phone_cli.EXIT_OK
    assert "Approved" in capsys.readouterr().out
    assert server.requests_to("/mobile/v1/confirm")[0].json_body["number"] == 42
