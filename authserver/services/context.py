"""The facts about the computer that asks, as the approval screens show them.

- Its user agent is parsed with ua-parser (the uap-core rules, `ua-parser-builtins`) into family
  names only, "Chrome on Windows", never its raw text: a computer may send any text at all, and
  the screens label even the summary as what the device says about itself. Some rules copy a
  family out of the text itself (the generic "... Bot/1.0" rule makes "Security Check Passed
  Bot" a family), so a family is shown only when the rules themselves name it.
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
from dataclasses import dataclass

import iptocc
import ua_parser
from babel import Locale
from ua_parser_builtins.lazy import MATCHERS

from authserver.domain.context import (
    NetworkRelation,
    Place,
    PlaceKind,
    RequesterContext,
    network_of,
    network_relation,
    parse_ip,
)
from authserver.domain.ports import TokenRepository

# A family name is shown only when it is short and plain, and the rules name it; the rest reads
# as unknown.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,29}")
_LONGEST_NAME = 40


@dataclass(frozen=True, slots=True)
class _Vocabulary:
    """The browser and system names the uap-core rules know, from the rules themselves."""

    names: frozenset[str]  # families the rules' maintainers wrote out ("Chrome Mobile")
    templates: tuple[tuple[str, str], ...]  # "ArcGIS Runtime SDK for $1" as (prefix, suffix)
    patterns: str  # every rule's regex with its escapes undone: what a capture may copy

    def knows(self, family: str) -> bool:
        if family in self.names:
            return True
        if not _PLAIN_NAME.fullmatch(family):
            return False
        # A family copied out of the user agent by a capture: shown only if the rules spell it
        # out themselves (whole word, any case), so a capture of free text ("Security Check
        # Passed Bot", "^(.{0,200})/... CFNetwork") reads as unknown.
        candidates = [family] + [
            family[len(prefix) : len(family) - len(suffix)]
            for prefix, suffix in self.templates
            if family.startswith(prefix) and family.endswith(suffix)
        ]
        return any(
            re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", self.patterns, re.I)
            for word in candidates
            if word
        )


@functools.cache
def _vocabulary() -> _Vocabulary:
    user_agent_rules, os_rules, _ = MATCHERS
    rules = [(rule.family, rule.regex) for rule in user_agent_rules]
    rules += [(rule.family, rule.regex) for rule in os_rules]
    names: set[str] = set()
    templates: set[tuple[str, str]] = set()
    for family, _regex in rules:
        if "$" not in family:
            names.add(family)
        elif family != "$1" and family.count("$") == 1 and "$1" in family:
            prefix, _, suffix = family.partition("$1")
            templates.add((prefix, suffix))
    patterns = re.sub(r"\\(.)", r"\1", "\n".join(regex for _family, regex in rules))
    return _Vocabulary(frozenset(names), tuple(sorted(templates)), patterns)


def _plain(family: str | None) -> str | None:
    if not family or family == "Other" or len(family) > _LONGEST_NAME:
        return None
    return family if _vocabulary().knows(family) else None


@functools.lru_cache(maxsize=1024)
def device_families(user_agent: str) -> tuple[str | None, str | None]:
    """(browser or app, system) family names the rules name, each None when unknown."""
    agent, system = ua_parser.parse_user_agent(user_agent), ua_parser.parse_os(user_agent)
    return _plain(agent.family if agent else None), _plain(system.family if system else None)


@functools.lru_cache(maxsize=1024)
def device_summary(user_agent: str) -> str:
    """ "Chrome on Windows": browser (or app) and system family names, or "an unknown device".

    English, for the wire; a page says it in its reader's language (web/context.py)."""
    if not user_agent.strip():
        return "an unnamed device"
    browser, os_name = device_families(user_agent)
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
        # Unplaced, yet public: "the same place" is then the same /24 or /64.
        return Place(PlaceKind.UNKNOWN, name="an unknown place", network=str(network_of(address)))
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


__all__ = ["NetworkRelation", "RequesterFacts", "device_families", "device_summary", "place_of"]
