"""Pages in the reader's language: Flask-Babel with one catalogue per language.

The languages are the catalogues present under authserver/translations (plus English, the
source language), so a third language is a catalogue, not code: `pybabel init` one, translate
it, compile it (README, "Languages"). The page's language is, in order:

1. the reader's explicit choice: the `lang` cookie, set by `GET /lang/<code>?next=<path>`
   (the switch at the top of every page);
2. the browser's Accept-Language, in the reader's order of preference; a tag matches a
   catalogue exactly or by its primary language, so zh, zh-CN, zh-Hans, zh-SG and also
   zh-TW and zh-HK read Simplified Chinese (closer for a reader of Traditional than English
   is, until a zh_Hant catalogue exists);
3. English.

Only people's pages are translated. What goes on the wire (OAuth error codes and their
error_description, the mobile and admin JSON APIs) stays English: programs read it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from babel import Locale
from babel.support import NullTranslations, Translations
from flask import Flask, Response, current_app, redirect, request, url_for
from flask_babel import Babel, Domain, get_locale, gettext
from werkzeug.exceptions import HTTPException

from authserver.domain.errors import DomainError

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
SOURCE_LANGUAGE = "en"
LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest a browser keeps a cookie


@cache
def supported_languages() -> tuple[str, ...]:
    """English, then every language with a compiled catalogue: the one list of languages."""
    compiled = sorted(
        path.parent.parent.name for path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo")
    )
    return (SOURCE_LANGUAGE, *compiled)


class _Catalogues(Domain):  # type: ignore[misc]
    """Flask-Babel's message domain, finding each catalogue under its directory's name.

    Flask-Babel looks a language up as Babel spells its locale: zh_CN is "zh_Hans_CN", so it
    would never find zh_CN/ (a known pitfall of Chinese catalogues); the catalogues keep the
    names translators and pybabel use."""

    def get_translations(self) -> NullTranslations:
        locale = get_locale()
        return _catalogue(str(locale)) if locale is not None else NullTranslations()


@cache
def _language_of(locale: str) -> str:
    """The language code ("zh_CN") of a Babel locale name ("zh_Hans_CN")."""
    by_locale = {str(Locale.parse(code)): code for code in supported_languages()}
    return by_locale.get(locale, SOURCE_LANGUAGE)


@cache
def _catalogue(locale: str) -> NullTranslations:
    """The compiled catalogue of a Babel locale name ("zh_Hans_CN"); none for English."""
    code = _language_of(locale)
    if code == SOURCE_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS), [code], "messages")


def chosen_language() -> str:
    """The page's language: the reader's choice, else Accept-Language, else English."""
    supported = supported_languages()
    explicit = request.cookies.get(LANG_COOKIE, "")
    if explicit in supported:
        return explicit
    # In the reader's order of preference; a tag matches a catalogue exactly or by its primary
    # language (zh-Hans, zh-SG, zh-TW: zh_CN). Werkzeug's best_match would prefer an exact
    # "en;q=0.1" over a "zh-Hans" the reader wants more.
    for tag, quality in request.accept_languages:
        if quality <= 0 or tag == "*":
            continue
        wanted = tag.replace("-", "_").lower()
        for code in supported:
            if code.lower() == wanted:
                return code
        for code in supported:
            if code.split("_")[0].lower() == wanted.split("_")[0]:
                return code
    return SOURCE_LANGUAGE


def html_lang() -> str:
    """The BCP 47 tag of the page's language, for <html lang>: zh-CN, en."""
    locale = get_locale()
    if locale is None:
        return SOURCE_LANGUAGE
    return f"{locale.language}-{locale.territory}" if locale.territory else locale.language


@cache
def _own_name(code: str) -> str:
    """A language in its own words: "中文", "English"; with its variant only where two
    catalogues share the language ("中文 (简体, 中国)" beside a Traditional one)."""
    locale = Locale.parse(code)
    shared = [c for c in supported_languages() if Locale.parse(c).language == locale.language]
    name = locale.get_display_name(code) if len(shared) > 1 else locale.get_language_name(code)
    return name or code


def language_links() -> list[tuple[str, str, str, bool]]:
    """The language switch: (tag, the language's own name, URL, whether it is this page's)."""
    current = _language_of(str(get_locale() or SOURCE_LANGUAGE))
    back = request.full_path.rstrip("?") if request.method == "GET" else _get_or_home()
    links = []
    for code in supported_languages():
        name = _own_name(code)
        url = url_for("language.choose", code=code, next=back)
        links.append((code.replace("_", "-"), name, url, code == current))
    return links


def _get_or_home() -> str:
    """After a POST: this path if a GET of it is a page (the form again), else the home page."""
    try:
        current_app.create_url_adapter(request).match(request.path, method="GET")  # type: ignore[union-attr]
    except HTTPException:
        return "/"
    return request.path


def safe_next(target: str) -> str:
    """`target` if it is a path on this site, else "/": the switch is no open redirect."""
    parts = urlsplit(target)
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or parts.scheme
        or parts.netloc
        or not target.isprintable()
    ):
        return "/"
    return target


def choose(code: str) -> Response:
    """`GET /lang/<code>?next=<path>`: remember the reader's language, back to the page."""
    response: Response = redirect(safe_next(request.args.get("next", "/")), 303)  # type: ignore[assignment]
    response.headers["Cache-Control"] = "no-store"  # it sets a cookie: no cache keeps it
    if code in supported_languages():
        response.set_cookie(
            LANG_COOKIE,
            code,
            max_age=LANG_COOKIE_MAX_AGE,
            path="/",
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",  # a link from another site shows the page in the reader's language
        )
    return response


def people_text(text: str, general: str | None = None) -> str:
    """`text` in the page's language if the catalogue has it (texts marked N_ in the domain
    and services are); else the translation of `general`, if it has one (a detail nobody
    translated gives way to its general sense); else `text` as it is."""
    translated: str = gettext(text)
    if translated != text or general is None:
        return translated
    translated_general: str = gettext(general)
    return translated_general if translated_general != general else text


def describe(error: DomainError) -> str:
    """A domain error's description for a page, in the page's language."""
    return people_text(error.description, type(error).description)


def install(app: Flask) -> None:
    """Flask-Babel for `app`, the switch's endpoint and what every template needs."""
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    babel = Babel(app, locale_selector=chosen_language, default_locale=SOURCE_LANGUAGE)
    babel.domain_instance = _Catalogues()
    # {% trans %} blocks collapse their whitespace: the catalogue holds one-line messages.
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.jinja_env.globals.update(html_lang=html_lang, language_links=language_links)
    app.add_url_rule("/lang/<code>", "language.choose", choose, methods=["GET"])
