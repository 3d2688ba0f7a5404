"""Number matching in the reference clients: the PC says the number, the phone sends its pick."""

from __future__ import annotations

from clients.http import HttpResponse
from clients.pc import Status, StatusUpdate
from clients.phone import ApprovalScreen, MobileApp
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
