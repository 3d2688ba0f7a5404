"""The terminal client speaks the user's language: Simplified Chinese with LANG=zh_CN.UTF-8."""

from __future__ import annotations

import io

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from qrlogin_client import i18n
from qrlogin_client.pc import DeviceAuthorization, Status, StatusUpdate
from qrlogin_client.pc_cli import show_authorization


@pytest.fixture
def language(monkeypatch: pytest.MonkeyPatch) -> object:
    def set_language(value: str) -> None:
        for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("LANG", value)
        i18n._translation.cache_clear()

    yield set_language
    i18n._translation.cache_clear()


def authorization() -> DeviceAuthorization:
    return DeviceAuthorization.from_response(
        {
            "device_code": "d",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://login.example.test/device",
            "expires_in": 600,
            "interval": 5,
        },
        0.0,
    )


def test_chinese_with_a_chinese_locale(language: object) -> None:
    language("zh_CN.UTF-8")  # type: ignore[operator]
    assert StatusUpdate(Status.PENDING).message == "等待扫码……"
    assert "请在手机上选择 42" in StatusUpdate(Status.SCANNED, match_number=42).message
    out = io.StringIO()
    show_authorization(authorization(), "none", out)
    assert "请访问 https://login.example.test/device 并输入验证码 WDJB-MJHT" in out.getvalue()
    assert "10 分钟后过期" in out.getvalue()


def test_english_otherwise(language: object) -> None:
    language("C.UTF-8")  # type: ignore[operator]
    assert StatusUpdate(Status.PENDING).message == "Waiting for scan..."
    out = io.StringIO()
    show_authorization(authorization(), "none", out)
    assert "(The code expires in 10 minutes.)" in out.getvalue()


def _key(value: object) -> object:
    """A message id or string: plural ones come as lists or tuples."""
    return tuple(value) if isinstance(value, list | tuple) else value


def test_every_compiled_catalogue_matches_its_source() -> None:
    """Edit a .po, forget `python -m qrlogin_client.i18n`: this fails (messages compared, not bytes:
    the compiled header carries the time it was made)."""
    catalogues = sorted(i18n.LOCALE_DIR.glob("*/LC_MESSAGES/qrlogin.po"))
    assert catalogues
    for po in catalogues:
        with po.open("rb") as source:
            wanted = {_key(m.id): _key(m.string) for m in read_po(source) if m.id}
        with po.with_suffix(".mo").open("rb") as compiled:
            have = {_key(m.id): _key(m.string) for m in read_mo(compiled) if m.id}
        assert have == wanted, po
