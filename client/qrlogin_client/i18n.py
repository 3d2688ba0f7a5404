"""The terminal clients' words in the user's language: stdlib gettext, so the clients need no
i18n dependency of their own.

The catalogue is `qrlogin` in qrlogin_client/locale/<language>/LC_MESSAGES: edit the `.po`, then
`python -m qrlogin_client.i18n` compiles the `.mo` beside it (with Babel, a dev dependency); a test
fails when a `.mo` is older than its `.po`. A third language is a new `.po`, not code. The
language comes from LANGUAGE, LC_ALL, LC_MESSAGES or LANG (`LANG=zh_CN.UTF-8`), as gettext
reads them; anything without a catalogue is English.
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path

DOMAIN = "qrlogin"
LOCALE_DIR = Path(__file__).parent / "locale"


@functools.cache
def _translation() -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, fallback=True)


def _(message: str) -> str:
    """`message` in the user's language (English if there is no catalogue for it)."""
    return _translation().gettext(message)


def _n(singular: str, plural: str, count: int) -> str:
    """The singular or plural of a message for `count`, as the user's language counts."""
    return _translation().ngettext(singular, plural, count)


def compile_catalogues() -> list[Path]:
    """Compile every .po beside its .mo (Babel: a dev dependency, not the clients')."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        with po.open("rb") as source:
            catalog = read_po(source)
        with po.with_suffix(".mo").open("wb") as target:
            write_mo(target, catalog)
        written.append(po.with_suffix(".mo"))
    return written


if __name__ == "__main__":
    for path in compile_catalogues():
        print(path)
