"""The requester's context on the wire and on pages: each fact labelled, warnings as codes."""

from __future__ import annotations

import enum
from typing import Any

from babel import Locale
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from authserver.domain.context import NetworkRelation, Place, PlaceKind, RequesterContext
from authserver.services.context import device_families

# Places that are no country, in words (the wire says their kind).
PLACE_NAMES = {
    PlaceKind.UNKNOWN: _l("an unknown place"),
    PlaceKind.LOOPBACK: _l("this server's own computer"),
    PlaceKind.PRIVATE: _l("a private network"),
}


class ContextWarning(enum.StrEnum):
    """What the approval screens warn about, in the server's own words."""

    NOT_ON_YOUR_NETWORK = "not_on_your_network"  # the computer is on another network
    FIRST_FROM_PLACE = "first_sign_in_from_place"  # never signed in from this place before


def warnings_of(context: RequesterContext | None) -> list[ContextWarning]:
    if context is None:
        return []
    found: list[ContextWarning] = []
    if context.network is NetworkRelation.DIFFERENT_NETWORK:
        found.append(ContextWarning.NOT_ON_YOUR_NETWORK)
    if context.first_from_place:
        found.append(ContextWarning.FIRST_FROM_PLACE)
    return found


def context_json(context: RequesterContext | None) -> dict[str, Any]:
    """The mobile API's members for the context. `device_says` is the requester's own claim
    (its parsed user agent): an app shows it as such, never as a statement of the server."""
    if context is None:
        return {}
    return {
        "device_says": context.device_says,
        "place": place_json(context.place),
        "network": context.network.value,
        "first_from_place": context.first_from_place,
    }


def place_name(place: Place) -> str:
    """A place for a page, in its language: CLDR's name of the country, or what it is."""
    if place.kind is PlaceKind.COUNTRY and place.country_code:
        locale = get_locale() or Locale("en")
        return str(locale.territories.get(place.country_code, place.name))
    name = PLACE_NAMES.get(place.kind)
    return str(name) if name is not None else (place.name or "")


def device_words(user_agent: str) -> str:
    """What the requester says it is, for a page in its language: "Chrome on Windows"."""
    if not user_agent.strip():
        return str(_("an unnamed device"))
    browser, system = device_families(user_agent)
    if not browser and not system:
        return str(_("an unknown device"))
    if not system:
        return str(browser)
    return str(
        _("%(browser)s on %(system)s", browser=browser or _("an unknown browser"), system=system)
    )


def place_json(place: Place) -> dict[str, Any]:
    """An approximate place on the wire: a country at most."""
    return {"kind": place.kind.value, "country_code": place.country_code, "name": place.name}
