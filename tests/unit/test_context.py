"""Unit tests of domain.context: is the computer that asks near the phone, and what is a place."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from authserver.domain.context import (
    NetworkRelation,
    Place,
    PlaceKind,
    RequesterContext,
    network_of,
    network_relation,
    parse_ip,
)

R = NetworkRelation


@pytest.mark.parametrize(
    ("pc", "phone", "relation"),
    [
        # One public address: both behind one router (NAT), the common "my own PC" case.
        ("8.8.8.8", "8.8.8.8", R.SAME_ADDRESS),
        ("2001:db8:1:2::10", "2001:db8:1:2::10", R.SAME_ADDRESS),
        # One /24 or one /64 (RFC 4291 §2.5.4: a /64 is one IPv6 subnet).
        ("8.8.8.10", "8.8.8.200", R.SAME_NETWORK),
        ("2001:db8:1:2::10", "2001:db8:1:2:ffff::99", R.SAME_NETWORK),
        # The next /24 or /64 is another network.
        ("8.8.8.10", "8.8.9.10", R.DIFFERENT_NETWORK),
        ("2001:db8:1:2::10", "2001:db8:1:3::10", R.DIFFERENT_NETWORK),
        ("114.114.114.114", "8.8.8.8", R.DIFFERENT_NETWORK),
        # Private addresses: the server's own LAN; one /24 of it is one network.
        ("192.168.1.10", "192.168.1.20", R.SAME_NETWORK),
        ("10.0.0.1", "10.0.1.1", R.DIFFERENT_NETWORK),
        # Private against public: one is on the server's LAN, the other comes from outside it.
        ("192.168.1.10", "8.8.8.8", R.DIFFERENT_NETWORK),
        # Loopback: both on the server's own machine.
        ("127.0.0.1", "127.0.0.2", R.SAME_ADDRESS),
        ("::1", "::1", R.SAME_ADDRESS),
        # IPv4-mapped IPv6 is the IPv4 address it carries.
        ("::ffff:8.8.8.8", "8.8.8.9", R.SAME_NETWORK),
        ("::ffff:8.8.8.8", "::ffff:8.8.8.8", R.SAME_ADDRESS),
        # Cannot tell: IPv4 against IPv6 (a dual-stack home shows both), or an unreadable one.
        ("8.8.8.8", "2001:db8::1", R.UNKNOWN),
        ("not an ip", "8.8.8.8", R.UNKNOWN),
        ("8.8.8.8", "", R.UNKNOWN),
        ("8.8.8.8/24", "8.8.8.8", R.UNKNOWN),
    ],
)
def test_network_relation(pc: str, phone: str, relation: NetworkRelation) -> None:
    assert network_relation(pc, phone) is relation
    assert network_relation(phone, pc) is relation  # symmetric


def test_only_the_same_address_or_network_is_near() -> None:
    assert {r for r in NetworkRelation if r.near} == {R.SAME_ADDRESS, R.SAME_NETWORK}


def test_parse_ip_reads_mapped_ipv4_and_refuses_junk() -> None:
    assert parse_ip(" ::ffff:192.0.2.1 ") == ipaddress.IPv4Address("192.0.2.1")
    assert parse_ip("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")
    assert parse_ip("SECURITY CHECK PASSED") is None
    assert parse_ip("") is None


def test_network_of_is_the_slash_24_or_slash_64() -> None:
    assert str(network_of(ipaddress.IPv4Address("8.8.8.8"))) == "8.8.8.0/24"
    assert str(network_of(ipaddress.IPv6Address("2001:db8:1:2:3::4"))) == "2001:db8:1:2::/64"


def test_the_same_place_is_the_country_else_the_network_else_the_kind() -> None:
    assert Place(PlaceKind.COUNTRY, "DE", "Germany").key == "DE"
    unplaced = Place(PlaceKind.UNKNOWN, name="an unknown place", network="2d00::/64")
    assert unplaced.key == "2d00::/64"
    assert Place(PlaceKind.PRIVATE, name="a private network").key == "private"
    assert Place(PlaceKind.LOOPBACK).key == "loopback"


def test_requester_context_is_frozen() -> None:
    context = RequesterContext(
        device_says="Chrome on Windows",
        place=Place(PlaceKind.COUNTRY, "DE", "Germany"),
        network=R.DIFFERENT_NETWORK,
        first_from_place=True,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.device_says = "SECURITY CHECK PASSED"  # type: ignore[misc]
