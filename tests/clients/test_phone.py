"""The mobile simulator: a real QR decoder on real images, its state file, the mobile API."""

from __future__ import annotations

import random
from pathlib import Path

import jwt
import pytest
import qrcode
from PIL import Image

from qrlogin_client.files import file_mode
from qrlogin_client.http import HttpResponse
from qrlogin_client.phone import (
    MOBILE_DEVICE_TOKEN,
    ApprovalScreen,
    MobileApiError,
    MobileApp,
    PhoneNotSignedIn,
    PhoneStateStore,
    QRDecodeError,
    decode_qr_image,
)
from tests.clients.fakes import ISSUER, FakeClock, FakeServer, error

URL = f"{ISSUER}/device?user_code=WDJB-MJHT"


def test_decodes_a_png_made_by_qrcode(tmp_path: Path) -> None:
    path = tmp_path / "qr.png"
    qrcode.make(URL).save(path)
    assert decode_qr_image(path) == URL


def test_decodes_a_photo_like_image(tmp_path: Path) -> None:
    """Small, rotated, on a grey transparent-edged canvas: not a perfect generated image."""
    code = qrcode.make(URL, box_size=6, border=4).get_image().convert("RGBA")
    canvas = Image.new("RGBA", (600, 500), (0, 0, 0, 0))
    canvas.paste(code.rotate(90, expand=True), (120, 60))
    path = tmp_path / "photo.png"
    canvas.save(path)
    assert decode_qr_image(path) == URL


def test_an_image_without_a_qr_code_is_a_clear_error(tmp_path: Path) -> None:
    noise = Image.new("L", (200, 200))
    rng = random.Random(4)
    noise.putdata([rng.choice((0, 255)) for _ in range(200 * 200)])
    path = tmp_path / "noise.png"
    noise.save(path)
    with pytest.raises(QRDecodeError, match=r"No QR code found in .*noise\.png"):
        decode_qr_image(path)


def test_a_file_that_is_not_an_image_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(QRDecodeError, match="not an image"):
        decode_qr_image(path)
    with pytest.raises(QRDecodeError, match="No such image"):
        decode_qr_image(tmp_path / "missing.png")


def test_two_different_codes_are_refused(tmp_path: Path) -> None:
    first = qrcode.make(URL).get_image().convert("L")
    second = qrcode.make(URL.replace("WDJB", "BBBB")).get_image().convert("L")
    both = Image.new("L", (first.width + second.width + 40, first.height), 255)
    both.paste(first, (0, 0))
    both.paste(second, (first.width + 40, 0))
    path = tmp_path / "two.png"
    both.save(path)
    with pytest.raises(QRDecodeError, match="2 different QR codes"):
        decode_qr_image(path)


def test_the_device_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    store = PhoneStateStore(tmp_path / "phone" / "state.json")
    assert store.load() is None
    state = store.load_or_create("Test phone", "ios")
    assert state.device_id.startswith("qrlogin-phone-") and file_mode(store.path) == 0o600
    state.device_token = "dt-1"
    store.save(state)
    again = PhoneStateStore(store.path).load_or_create("Other name", "android")
    assert (again.device_id, again.device_name, again.device_token) == (
        state.device_id,
        "Test phone",
        "dt-1",
    )
    assert "dt-1" not in repr(again)


def scan_answer() -> HttpResponse:
    return HttpResponse(
        200,
        {
            "confirm_token": "ct-secret",
            "expires_in": 120,
            "client": {"client_id": "pc-client", "name": "Acme Desktop"},
            "scopes": ["profile", "email"],
            "requesting_device": {
                "ip": "203.0.113.7",
                "device_says": "AcmeDesktop on Windows",
                "place": {"kind": "country", "country_code": "DE", "name": "Germany"},
                "network": "different_network",
                "first_from_place": True,
                "requested_at": "2026-01-02T03:04:05+00:00",
            },
            "user_code": "WDJB-MJHT",
            "warnings": ["not_on_your_network", "first_sign_in_from_place"],
        },
    )


def test_mobile_api_calls_carry_token_and_device_id() -> None:
    server = FakeServer(FakeClock())
    server.script("/mobile/v1/sessions", HttpResponse(201, {"device_token": "dt-1"}))
    server.script("/mobile/v1/scan", scan_answer())
    server.script("/mobile/v1/confirm", HttpResponse(200, {"status": "approved"}))
    app = MobileApp(ISSUER, "phone-1", transport=server)
    with pytest.raises(PhoneNotSignedIn):
        app.scan(qr=URL)

    assert app.sign_in("demo", "pw", "Test phone", "ios") == "dt-1"
    screen = app.scan(qr=URL)
    assert app.confirm(screen) == "approved"

    sign_in, scan, confirm = server.sent[-3:]
    assert sign_in.json_body == {
        "username": "demo",
        "password": "pw",
        "device": {"id": "phone-1", "name": "Test phone", "platform": "ios"},
    }
    for sent in (scan, confirm):
        assert sent.headers == {"Authorization": "Bearer dt-1", "X-Device-Id": "phone-1"}
    assert scan.json_body == {"qr": URL}
    assert confirm.json_body == {"confirm_token": "ct-secret"}


def test_approval_screen_shows_the_facts_and_the_warning() -> None:
    text = ApprovalScreen.from_response(scan_answer().json_object()).describe()
    for fact in (
        "Acme Desktop",
        "profile",
        "email",
        "203.0.113.7",
        "AcmeDesktop on Windows  (its own claim, not checked)",
        "203.0.113.7 (Germany)",
        "WARNING: not on your network",
        "first sign-in to your account from this place",
        "2026-01-02",
        "WDJB-MJHT",
        "Only approve if you started this sign-in yourself",
    ):
        assert fact in text
    assert "ct-secret" not in text


def test_mobile_api_errors_are_typed() -> None:
    server = FakeServer(FakeClock())
    server.script("/mobile/v1/scan", error("already_scanned", 409, "Someone scanned it."))
    app = MobileApp(ISSUER, "phone-1", "dt-1", transport=server)
    with pytest.raises(MobileApiError) as refused:
        app.scan(user_code="WDJB-MJHT")
    assert (refused.value.error, refused.value.status) == ("already_scanned", 409)
    assert server.sent[-1].json_body == {"user_code": "WDJB-MJHT"}


@pytest.mark.parametrize("server", ["http://login.example.com", "ftp://127.0.0.1"])
def test_the_phone_refuses_a_server_in_clear_text_off_this_machine(server: str) -> None:
    from qrlogin_client.http import ClientError
    from qrlogin_client.phone import MobileApp

    with pytest.raises(ClientError, match="https"):
        MobileApp(server, "device-1")
    MobileApp("http://127.0.0.1:8000", "device-1")  # localhost is fine for trying it
    MobileApp("https://login.example.com", "device-1")


def test_the_phone_signs_in_by_token_exchange() -> None:
    server = FakeServer(FakeClock())
    server.script(
        "/oauth/token",
        HttpResponse(
            200,
            {
                "access_token": "dt-2",
                "issued_token_type": MOBILE_DEVICE_TOKEN,
                "token_type": "Bearer",
                "expires_in": 60,
            },
        ),
        error("invalid_grant", 400, "The subject token has expired."),
    )
    app = MobileApp(ISSUER, "phone-1", transport=server)
    assert app.exchange_token("app-1", "idp.jwt", "id_token", "Test phone", "ios") == "dt-2"
    assert app.device_token == "dt-2"
    (sent,) = server.requests_to("/oauth/token")
    assert sent.form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "client_id": "app-1",
        "subject_token": "idp.jwt",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": MOBILE_DEVICE_TOKEN,
        "device_id": "phone-1",
        "device_name": "Test phone",
        "device_platform": "ios",
    }
    with pytest.raises(MobileApiError) as refused:
        app.exchange_token("app-1", "old.jwt", "access_token", "Test phone", "ios")
    assert refused.value.error == "invalid_grant"


def test_signin_takes_a_password_or_a_subject_token_not_both(tmp_path: Path) -> None:
    from qrlogin_client import phone_cli

    state = str(tmp_path / "phone.json")
    for argv in (
        ["signin", "--server", ISSUER, "--state", state],
        [
            "signin",
            "--server",
            ISSUER,
            "--state",
            state,
            "--username",
            "a",
            "--subject-token-stdin",
        ],
        ["signin", "--server", ISSUER, "--state", state, "--subject-token-stdin"],
    ):
        with pytest.raises(SystemExit) as usage:
            phone_cli.main(argv)
        assert usage.value.code == 2


def test_a_phone_with_a_key_proves_it_on_every_call(tmp_path: Path) -> None:
    store = PhoneStateStore(tmp_path / "state.json")
    state = store.load_or_create("Test phone", "ios")
    assert state.dpop_key is not None and "PRIVATE KEY" in state.dpop_key
    assert file_mode(store.path) == 0o600 and "PRIVATE" not in repr(state)
    key = PhoneStateStore(store.path).load_or_create().key()
    assert key.thumbprint == state.key().thumbprint  # the same key after a restart

    server = FakeServer(FakeClock())
    server.script("/mobile/v1/sessions", HttpResponse(201, {"device_token": "dt-1"}))
    server.script(
        "/mobile/v1/scan",
        HttpResponse(400, {"error": "use_dpop_nonce"}, {"DPoP-Nonce": "n-1"}),
        scan_answer(),
    )
    app = MobileApp(ISSUER, "phone-1", key=key, transport=server)
    app.sign_in("demo", "pw", "Test phone", "ios")
    app.scan(qr=URL)
    sign_in, refused, scan = server.sent[-3:]
    assert "Authorization" not in sign_in.headers
    proofs = [
        jwt.decode(s.headers["DPoP"], options={"verify_signature": False}) for s in server.sent
    ]
    assert proofs[0]["htu"] == f"{ISSUER}/mobile/v1/sessions" and "ath" not in proofs[0]
    for sent in (refused, scan):
        assert sent.headers["Authorization"] == "DPoP dt-1"
    assert proofs[1]["htu"] == f"{ISSUER}/mobile/v1/scan" and "nonce" not in proofs[1]
    assert proofs[2]["nonce"] == "n-1" and proofs[2]["jti"] != proofs[1]["jti"]
