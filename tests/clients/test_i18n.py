"""The terminal client speaks the user's language: Simplified Chinese with LANG=zh_CN.UTF-8."""

from __future__ import annotations

import io

from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from qrlogin_client import i18n
from qrlogin_client.pc import DeviceAuthorization, Status, StatusUpdate
from qrlogin_client.pc_cli import show_authorization
from tests.clients.conftest import Language


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


def test_chinese_with_a_chinese_locale(language: Language) -> None:
    language("zh_CN.UTF-8")
    assert StatusUpdate(Status.PENDING).message == "等待扫码……"
    assert "请在手机上选择 42" in StatusUpdate(Status.SCANNED, match_number=42).message
    out = io.StringIO()
    show_authorization(authorization(), "none", out)
    assert "请访问 https://login.example.test/device 并输入验证码 WDJB-MJHT" in out.getvalue()
    assert "10 分钟后过期" in out.getvalue()


def test_english_otherwise(language: Language) -> None:
    language("C.UTF-8")
    assert StatusUpdate(Status.PENDING).message == "Waiting for scan..."
    out = io.StringIO()
    show_authorization(authorization(), "none", out)
    assert "(The code expires in 10 minutes.)" in out.getvalue()


def _key(value: object) -> object:
    """A message id or string: plural ones come as lists or tuples."""
    return tuple(value) if isinstance(value, list | tuple) else value


def _forms(string: object) -> tuple[object, ...]:
    """A translation's forms: one, or one per plural (an empty one is untranslated)."""
    return tuple(string) if isinstance(string, list | tuple) else (string,)


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


def test_every_message_the_clients_mark_is_translated() -> None:
    """Mark a new message with `_()` and forget the catalogue: this fails. Messages kept in
    English in a table and translated where shown (scopes, warnings, the yes words) count too."""
    from babel.messages.extract import extract_from_file

    from qrlogin_client.phone import SCOPE_MEANINGS, WARNINGS
    from qrlogin_client.phone_cli import ENGLISH_YES

    marked: set[object] = {*SCOPE_MEANINGS.values(), *WARNINGS.values(), ENGLISH_YES}
    for source in sorted(i18n.LOCALE_DIR.parent.glob("*.py")):
        keywords = {"_": None, "_n": (1, 2)}
        marked |= {_key(m[1]) for m in extract_from_file("python", source, keywords=keywords)}
    assert len(marked) > 60
    for po in sorted(i18n.LOCALE_DIR.glob("*/LC_MESSAGES/qrlogin.po")):
        with po.open("rb") as source:
            catalog = read_po(source)
        translated = {_key(m.id) for m in catalog if m.id and not m.fuzzy and all(_forms(m.string))}
        assert marked - translated == set(), po
