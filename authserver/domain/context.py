"""What the approval screen may say about the computer that asks: facts the server checked, kept
apart from what that computer says about itself (RFC 10027, the cross-device BCP).

The user agent is the requester's own claim, so it is only ever shown parsed and labelled as
such; the network relation and the place come from the addresses the server saw.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses this close count as one network: a home or office LAN behind one router is a /24
# (IPv4) or a /64 (IPv6, RFC 4291 §2.5.4: one subnet).
NEAR_PREFIX = {4: 24, 6: 64}


class NetworkRelation(enum.StrEnum):
    """Where the computer that asks is, seen from the phone that approves."""

    SAME_ADDRESS = "same_address"  # one public address: behind the same router
    SAME_NETWORK = "same_network"  # the same /24 or /64
    DIFFERENT_NETWORK = "different_network"  # the warning: "not on your network"
    UNKNOWN = "unknown"  # one address unreadable, or IPv4 against IPv6: cannot tell

    @property
    def near(self) -> bool:
        return self in (NetworkRelation.SAME_ADDRESS, NetworkRelation.SAME_NETWORK)


def parse_ip(text: str) -> IpAddress | None:
    """The address, with IPv4-mapped IPv6 (::ffff:a.b.c.d) read as the IPv4 it is."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def network_of(address: IpAddress) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The /24 or /64 the address belongs to."""
    return ipaddress.ip_network(f"{address}/{NEAR_PREFIX[address.version]}", strict=False)


def network_relation(pc_ip: str, phone_ip: str) -> NetworkRelation:
    """Is the computer that asks near the phone that approves?

    Private addresses are compared like public ones: two devices on one LAN with the server
    share a /24. A private address against a public one means one of them is on the server's
    own network and the other is not: different networks. (Calling that "unknown" would hide
    the warning in the case it matters most: a phone on the office Wi-Fi, a PC on the
    internet.) Loopback is the server's machine.

    UNKNOWN (IPv4 against IPv6, as in a dual-stack home) warns of nothing, and a PC can choose
    its address family to land there: so no screen ever says "same network" as reassurance;
    nearness only ever silences the warning.
    """
    pc, phone = parse_ip(pc_ip), parse_ip(phone_ip)
    if pc is None or phone is None or pc.version != phone.version:
        return NetworkRelation.UNKNOWN
    if pc == phone:
        return NetworkRelation.SAME_ADDRESS
    if pc.is_loopback and phone.is_loopback:
        return NetworkRelation.SAME_ADDRESS
    if network_of(pc) == network_of(phone):
        return NetworkRelation.SAME_NETWORK
    return NetworkRelation.DIFFERENT_NETWORK


class PlaceKind(enum.StrEnum):
    """How an address was placed."""

    COUNTRY = "country"  # a public address an offline IP database places in a country
    PRIVATE = "private"  # a private (RFC 1918, RFC 4193) address: the server's own network
    LOOPBACK = "loopback"  # the server's own machine
    UNKNOWN = "unknown"  # a public address the database does not place


@dataclass(frozen=True, slots=True)
class Place:
    """An approximate place of an address: a country at most, never finer."""

    kind: PlaceKind
    country_code: str | None = None  # ISO 3166-1 alpha-2
    name: str | None = None  # the country's English name, or a description of the kind
    network: str | None = None  # a public address no database places: its /24 or /64

    @property
    def key(self) -> str:
        """What "the same place" compares: the country; for a public address without one, its
        /24 or /64; else the kind of address (private, loopback)."""
        return self.country_code or self.network or self.kind.value


@dataclass(frozen=True, slots=True)
class RequesterContext:
    """What the approval screen shows about the computer that asks, each fact labelled."""

    device_says: str  # the parsed user agent, e.g. "Chrome on Windows": its own claim
    place: Place
    network: NetworkRelation
    first_from_place: bool  # the user never signed in from this place before
