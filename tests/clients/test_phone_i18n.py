"""qrlogin-phone speaks the user's language: its approval screen, prompts and answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrlogin_client import phone_cli
from qrlogin_client.http import HttpResponse
from qrlogin_client.phone import ApprovalScreen, MobileApp, PhoneStateStore
from tests.clients.conftest import Language
from tests.clients.fakes import ISSUER, FakeClock, FakeServer
from tests.clients.test_phone import scan_answer


def screen(**more: object) -> ApprovalScreen:
    """The approval screen of a realistic scan answer, number matching on."""
    return ApprovalScreen.from_response(
        {**scan_answer().json_object(), "number_choices": [17, 42, 88], **more}
    )


def test_the_approval_screen_in_chinese(language: Language) -> None:
    language("zh_CN.UTF-8")
    text = screen(scopes=["openid", "email", "custom:scope"]).describe()
    for shown in (
        "在其他设备上登录？",
        "应用：      Acme Desktop（客户端 pc-client）",  # a CJK label takes two columns
        "申请获取：  openid（你是谁：你的账号标识）",
        "email（你的邮箱地址）",
        "custom:scope",  # a scope without a meaning shows as it is
        "来自：      203.0.113.7（Germany）",  # the place is the server's
        "AcmeDesktop on Windows（对方自称，未经核实）",
        "WDJB-MJHT  ← 电脑上显示的验证码必须与此相同",
        "选择数字：  17  42  88  ← 请选择电脑上显示的数字",
        "警告：对方不在你的网络中。",
        "提示：这是你的账号首次在该地点登录。",
        "仅在你本人发起此次登录",
        "此页面 120 秒内有效",
    ):
        assert shown in text
    for english in ("Sign in", "WARNING", "Note:", "Only approve", "Code:", "claim"):
        assert english not in text
    assert "（仅登录，不获取其他信息）" in screen(scopes=[]).describe()
    unknown = screen(requesting_device={}).describe()
    assert "来自：      未知（未知）" in unknown and "未知设备（对方自称" in unknown


def test_the_approval_screen_stays_english_otherwise(language: Language) -> None:
    for setting in ("C.UTF-8", "fr_FR.UTF-8"):  # no catalogue: English
        language(setting)
        text = screen(scopes=[]).describe()
        assert text.startswith("Sign in on another device?\n")
        assert "  Code:       WDJB-MJHT  <- the PC must show this same code" in text
        assert "WARNING: not on your network." in text
        assert "(nothing beyond signing in)" in text
        assert not any("\u4e00" <= c <= "\u9fff" for c in text)  # no Chinese character


@pytest.fixture
def phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeServer, list[str]]:
    """A signed-in phone on a fake server, and the command line that scans a code with it."""
    server = FakeServer(FakeClock())
    real = phone_cli.MobileApp
    monkeypatch.setattr(phone_cli, "MobileApp", lambda *a, **k: real(*a, **k, transport=server))
    store = PhoneStateStore(tmp_path / "phone.json")
    state = store.load_or_create("Test phone", "ios")
    state.server, state.username, state.device_token = ISSUER, "demo", "dt-1"
    store.save(state)
    server.script("/mobile/v1/scan", scan_answer())
    server.script("/mobile/v1/confirm", HttpResponse(200, {"status": "approved"}))
    server.script("/mobile/v1/deny", HttpResponse(200, {"status": "denied"}))
    return server, ["scan", "--state", str(store.path), "--code", "WDJB-MJHT"]


@pytest.mark.parametrize("answer", ["是", " 确认 ", "y", "YES"])
def test_a_chinese_yes_approves(
    answer: str,
    language: Language,
    phone: tuple[FakeServer, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    language("zh_CN.UTF-8")
    server, argv = phone
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or answer)
    assert phone_cli.main(argv) == phone_cli.EXIT_OK
    assert prompts == ["确认登录？[是/否] "]
    assert len(server.requests_to("/mobile/v1/confirm")) == 1
    assert server.requests_to("/mobile/v1/deny") == []
    out = capsys.readouterr().out
    assert "在其他设备上登录？" in out
    assert "已确认登录（approved）：电脑正在以 demo 的身份登录。" in out


@pytest.mark.parametrize(
    ("setting", "answer"), [("zh_CN.UTF-8", "否"), ("zh_CN.UTF-8", ""), ("C.UTF-8", "是")]
)
def test_anything_else_declines(
    setting: str,
    answer: str,
    language: Language,
    phone: tuple[FakeServer, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    language(setting)
    server, argv = phone
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    assert phone_cli.main(argv) == phone_cli.EXIT_OK
    assert server.requests_to("/mobile/v1/confirm") == []
    assert len(server.requests_to("/mobile/v1/deny")) == 1


def test_the_phone_asks_for_the_number_in_chinese(
    language: Language,
    phone: tuple[FakeServer, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    language("zh_CN.UTF-8")
    server, argv = phone
    server.script(
        "/mobile/v1/scan", HttpResponse(200, {**scan_answer().body, "number_choices": [17, 42, 88]})
    )
    answers = iter(["是", "4"])
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or next(answers))
    assert phone_cli.main(argv) == phone_cli.EXIT_FAILED
    assert prompts[1] == "电脑上显示的是哪个数字？"
    assert "4 不在可选数字（17, 42, 88）中：未确认登录。" in capsys.readouterr().out
    assert server.requests_to("/mobile/v1/confirm") == []


def test_the_phones_own_errors_in_chinese(
    language: Language, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    language("zh_CN.UTF-8")
    state = tmp_path / "phone.json"
    argv = ["scan", "--state", str(state), "--image", str(tmp_path / "missing.png")]
    assert phone_cli.main(argv) == phone_cli.EXIT_FAILED
    assert f"qrlogin-phone: 未登录（{state} 中没有设备令牌）：请先运行 signin。" in (
        capsys.readouterr().err
    )
    assert phone_cli.main(["status", "--state", str(state)]) == phone_cli.EXIT_FAILED
    assert f"尚未设置手机（{state} 不存在）" in capsys.readouterr().out


def test_a_server_error_stays_as_the_server_sent_it(
    language: Language, phone: tuple[FakeServer, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    language("zh_CN.UTF-8")
    server, argv = phone
    server.script(
        "/mobile/v1/scan",
        HttpResponse(400, {"error": "already_scanned", "error_description": "Already scanned."}),
    )
    assert phone_cli.main([*argv, "--approve"]) == phone_cli.EXIT_FAILED
    assert "qrlogin-phone: already_scanned: Already scanned." in capsys.readouterr().err


def test_a_phone_app_in_chinese_still_talks_english_to_the_server(language: Language) -> None:
    """Only what the user reads is translated: the wire stays the protocol's."""
    language("zh_CN.UTF-8")
    server = FakeServer(FakeClock())
    server.script("/mobile/v1/scan", scan_answer())
    app = MobileApp(ISSUER, "phone-1", "dt-1", transport=server)
    assert app.scan(user_code="WDJB-MJHT").user_code == "WDJB-MJHT"
    assert server.requests_to("/mobile/v1/scan")[0].json_body == {"user_code": "WDJB-MJHT"}
