"""The clients speak the user's language: every test here starts in English, whatever the
machine's LANG, and `language` switches (`language("zh_CN.UTF-8")`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from qrlogin_client import i18n

Language = Callable[[str], None]


@pytest.fixture(autouse=True)
def language(monkeypatch: pytest.MonkeyPatch) -> Iterator[Language]:
    def set_language(value: str) -> None:
        for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):  # gettext reads these before LANG
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("LANG", value)
        i18n._translation.cache_clear()

    set_language("C.UTF-8")
    yield set_language
    i18n._translation.cache_clear()  # the next test, or the next module, reads LANG afresh
