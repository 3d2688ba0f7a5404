"""The facts about the computer that asks, as the approval screens show them.

- Its user agent is parsed with ua-parser (the uap-core rules, `ua-parser-builtins`) into family
  names only, "Chrome on Windows", never its raw text: a computer may send any text at all, and
  the screens label even the summary as what the device says about itself.
- Its place is a country from `iptocc`, an offline IP-to-country database rebuilt from the
  regional internet registries' delegation files and released as a new version every few days
  (so upgrading the package refreshes it); no address leaves the server. Country names come
  from Babel's CLDR data.
- Whether it is near the phone, from the two addresses (domain/context.py).
- Whether the user ever signed in from that place before, from their own recent logins.
"""

from __future__ import annotations

import functools
import re

import iptocc
import ua_parser
from babel import Locale

from authserver.domain.context import (
    NetworkRelation,
    Place,
    PlaceKind,
    RequesterContext,
    network_relation,
    parse_ip,
)
from authserver.domain.ports import TokenRepository

# A family name the rules produced from the text itself (a generic "Name/1.0" rule) could be
# anything; only short plain names are shown, the rest reads as unknown.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,29}")


def _plain(family: str | None) -> str | None:
    if not family or family == "Other" or not _PLAIN_NAME.fullmatch(family):
        return None
    return family


@functools.lru_cache(maxsize=1024)
def device_summary(user_agent: str) -> str:
    """ "Chrome on Windows": browser (or app) and system family names, or "an unknown device"."""
    if not user_agent.strip():
        return "an unnamed device"
    agent, system = ua_parser.parse_user_agent(user_agent), ua_parser.parse_os(user_agent)
    browser = _plain(agent.family if agent else None)
    os_name = _plain(system.family if system else None)
    if browser and os_name:
        return f"{browser} on {os_name}"
    if browser or os_name:
        return f"{browser or 'an unknown browser'}{f' on {os_name}' if os_name else ''}"
    return "an unknown device"


@functools.lru_cache(maxsize=4096)
def place_of(ip: str) -> Place:
    """An approximate place of `ip`: a country, or what kind of address it is."""
    address = parse_ip(ip)
    if address is None:
        return Place(PlaceKind.UNKNOWN, name="an unknown place")
    if address.is_loopback:
        return Place(PlaceKind.LOOPBACK, name="this server's own computer")
    if address.is_private or not address.is_global:
        return Place(PlaceKind.PRIVATE, name="a private network")
    code = iptocc.country_code(str(address))
    if not code:
        return Place(PlaceKind.UNKNOWN, name="an unknown place")
    name = Locale("en").territories.get(code.upper(), code.upper())
    return Place(PlaceKind.COUNTRY, country_code=code.upper(), name=name)


class RequesterFacts:
    """Describes the computer that asks for the phone (or browser) that approves."""

    def __init__(self, tokens: TokenRepository) -> None:
        self._tokens = tokens

    def describe(
        self, *, user_agent: str, pc_ip: str, phone_ip: str, user_id: str
    ) -> RequesterContext:
        """The context of one approval; one indexed SQL lookup (a login of the user from that
        place), in the caller's unit of work."""
        place = place_of(pc_ip)
        return RequesterContext(
            device_says=device_summary(user_agent),
            place=place,
            network=network_relation(pc_ip, phone_ip),
            first_from_place=not self._tokens.signed_in_from(user_id, place.key),
        )


__all__ = ["NetworkRelation", "RequesterFacts", "device_summary", "place_of"]
