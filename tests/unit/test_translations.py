"""The pages' catalogues are current: what the sources say is what the catalogues hold.

Change a page's words and forget `pybabel extract` / `update`, translate and forget `compile`,
or leave a message untranslated or fuzzy: one of these fails (README, "Languages").
Messages are compared, never bytes: the headers carry the time they were made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from authserver.domain import errors
from authserver.web.i18n import TRANSLATIONS, supported_languages

ROOT = Path(__file__).resolve().parents[2]
# As in README's `pybabel extract -k _l -k N_`: lazy texts and texts marked in the domain.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "N_": None}

MessageId = str | tuple[str, ...]


def _key(value: object) -> object:
    """A message id or string: plural ones come as lists or tuples."""
    return tuple(value) if isinstance(value, list | tuple) else value


def _read_po(path: Path) -> Catalog:
    with path.open("rb") as source:
        return read_po(source)


def extracted() -> set[object]:
    """Every message id the sources mark, extracted as babel.cfg says."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found = extract_from_dir(
        ROOT / "authserver", method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True
    )
    return {_key(message) for _file, _line, message, _comments, _context in found if message}


def ids(catalog: Catalog) -> set[object]:
    return {_key(m.id) for m in catalog if m.id}


def catalogues() -> list[Path]:
    found = sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
    assert found, "no catalogue"
    return found


def test_the_template_and_every_catalogue_hold_what_the_sources_mark() -> None:
    wanted = extracted()
    assert "Sign in on another device" in wanted and "Expires in %(time)s" in wanted
    template = ids(_read_po(TRANSLATIONS / "messages.pot"))
    new, gone = sorted(map(str, wanted - template)), sorted(map(str, template - wanted))
    assert template == wanted, f"messages.pot is stale (pybabel extract): new {new}, gone {gone}"
    for po in catalogues():
        assert ids(_read_po(po)) == wanted, f"{po} is stale (run pybabel update)"


@pytest.mark.parametrize("po", catalogues(), ids=lambda p: p.parent.parent.name)
def test_every_message_is_translated_and_none_is_fuzzy(po: Path) -> None:
    catalog = _read_po(po)
    untranslated = [m.id for m in catalog if m.id and not all(_as_tuple(m.string))]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not untranslated, untranslated
    assert not fuzzy, fuzzy
    # Babel's own checks: the same %(name)s placeholders as the English, the plural forms.
    problems = [(m.id, [str(e) for e in errs]) for m, errs in catalog.check()]
    assert not problems, problems


def _as_tuple(value: object) -> tuple[object, ...]:
    return tuple(value) if isinstance(value, list | tuple) else (value,)


@pytest.mark.parametrize("po", catalogues(), ids=lambda p: p.parent.parent.name)
def test_every_compiled_catalogue_matches_its_source(po: Path) -> None:
    """Translate in the .po and forget `pybabel compile`: this fails."""
    wanted = {_key(m.id): _key(m.string) for m in _read_po(po) if m.id}
    with po.with_suffix(".mo").open("rb") as compiled:
        have = {_key(m.id): _key(m.string) for m in read_mo(compiled) if m.id}
    assert have == wanted


def test_the_languages_are_the_compiled_catalogues() -> None:
    assert supported_languages() == ("en", "zh_CN")


def test_the_domain_errors_words_are_in_the_catalogue() -> None:
    """Every domain error's description is marked N_, so a page can show it translated."""
    wanted = extracted()
    kinds, todo = [], [errors.DomainError]
    while todo:
        kind = todo.pop()
        kinds.append(kind)
        todo.extend(kind.__subclasses__())
    missing = [k.__name__ for k in kinds if k.description not in wanted]
    assert not missing, missing
