"""What the approval screens say about the computer that asks: parsed, placed, near or not, and
never the requester's own text as the server's words (RFC 10027)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from authserver.domain.context import NetworkRelation, network_relation
from authserver.services.context import device_summary
from tests.functional.harness import PASSWORD, Harness, Phone

CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HOSTILE = (
    f"{CHROME_ON_WINDOWS}. SECURITY CHECK PASSED - this is your own computer, it is safe to approve"
)


def start(h: Harness, pc_ip: str, user_agent: str = CHROME_ON_WINDOWS) -> dict[str, Any]:
    response = h.http.post(
        "/oauth/device_authorization",
        data={"client_id": h.client_id},
        environ_base={"REMOTE_ADDR": pc_ip},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def scan(h: Harness, phone: Phone, started: dict[str, Any], phone_ip: str) -> dict[str, Any]:
    response = h.http.post(
        "/mobile/v1/scan",
        json={"qr": started["verification_uri_complete"]},
        headers=phone.headers(),
        environ_base={"REMOTE_ADDR": phone_ip},
    )
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def approval_page(h: Harness, started: dict[str, Any], browser_ip: str) -> str:
    """The verification page's approval screen, signed in from `browser_ip` (the phone side)."""
    page = h.http.get(f"/device?user_code={started['user_code']}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert csrf is not None
    approval = h.http.post(
        "/device",
        data={
            "csrf_token": csrf.group(1),
            "user_code": started["user_code"],
            "username": h.username,
            "password": PASSWORD,
        },
        environ_base={"REMOTE_ADDR": browser_ip},
    )
    html = approval.get_data(as_text=True)
    assert "Sign in to Test PC app?" in html, html[:2000]
    return html


def test_hostile_user_agent_text_never_reaches_the_phone_or_the_page(harness: Harness) -> None:
    started = start(harness, "8.8.8.8", HOSTILE)
    screen = scan(harness, harness.sign_in(), started, "8.8.4.4")
    assert "SECURITY CHECK" not in str(screen)
    assert screen["requesting_device"]["device_says"] == "Chrome on Windows"

    # The verification page: sign in as a browser, enter the code, read the approval page.
    html = approval_page(harness, start(harness, "8.8.8.8", HOSTILE), "8.8.4.4")
    assert "SECURITY CHECK" not in html and "safe to approve" not in html
    assert "Chrome on Windows" in html and "its own claim" in html


# uap-core rules that copy a family out of the text: the generic bot rule keeps "... Bot/1.0"
# and the CFNetwork rule keeps whatever precedes "/1 CFNetwork".
HOSTILE_FAMILIES = [
    "Mozilla/5.0 (compatible; Security Check Passed Bot/2.1; safe to approve)",
    "Security Passed - Approve/1 CFNetwork/1494 Darwin/23.0.0",
]


@pytest.mark.parametrize("agent", HOSTILE_FAMILIES)
def test_families_copied_from_the_text_read_as_unknown(harness: Harness, agent: str) -> None:
    screen = scan(harness, harness.sign_in(), start(harness, "8.8.8.8", agent), "8.8.4.4")
    assert "Security" not in str(screen) and "Approve" not in str(screen)
    assert "unknown" in screen["requesting_device"]["device_says"]
    html = approval_page(harness, start(harness, "8.8.8.8", agent), "8.8.4.4")
    assert "Security" not in html and "Passed" not in html


@pytest.mark.parametrize(
    ("pc", "browser", "warned"),
    [
        ("114.114.114.114", "8.8.8.8", True),
        ("8.8.8.8", "8.8.8.8", False),
        ("8.8.8.10", "8.8.8.200", False),
    ],
)
def test_the_page_warns_when_not_on_your_network(
    harness: Harness, pc: str, browser: str, warned: bool
) -> None:
    html = approval_page(harness, start(harness, pc), browser)
    assert ("Not on your network" in html) is warned
    assert "The device says it is" in html and "Chrome on Windows" in html


@pytest.mark.parametrize(
    ("pc", "phone", "warned"),
    [
        ("114.114.114.114", "8.8.8.8", True),  # another country, another network
        ("8.8.8.8", "8.8.8.8", False),  # one public address: behind the same router
        ("8.8.8.10", "8.8.8.200", False),  # the same /24
        ("2001:db8:1:2::10", "2001:db8:1:2::99", False),  # the same /64
        ("192.168.1.10", "192.168.1.20", False),  # one LAN with the server
        ("192.168.1.10", "8.8.8.8", True),  # one on the server's LAN, one outside
    ],
)
def test_not_on_your_network(harness: Harness, pc: str, phone: str, warned: bool) -> None:
    screen = scan(harness, harness.sign_in(), start(harness, pc), phone)
    assert ("not_on_your_network" in screen["warnings"]) is warned
    assert (screen["requesting_device"]["network"] == "different_network") is warned


def test_place_and_first_sign_in_from_it(harness: Harness) -> None:
    phone = harness.sign_in()
    first = start(harness, "114.114.114.114")
    screen = scan(harness, phone, first, "114.114.114.115")
    assert screen["requesting_device"]["place"] == {
        "kind": "country",
        "country_code": "CN",
        "name": "China",
    }
    assert screen["requesting_device"]["first_from_place"] is True
    assert "first_sign_in_from_place" in screen["warnings"]
    confirmed = harness.decide(phone, screen["confirm_token"])
    assert confirmed.status_code == 200
    assert harness.poll(first["device_code"]).status_code == 200
    # The next login from the same country is no longer a first.
    again = scan(harness, phone, start(harness, "114.114.114.200"), "114.114.114.115")
    assert again["requesting_device"]["first_from_place"] is False
    assert "first_sign_in_from_place" not in again["warnings"]
    elsewhere = scan(harness, phone, start(harness, "8.8.8.8"), "114.114.114.115")
    assert elsewhere["requesting_device"]["first_from_place"] is True


@pytest.mark.parametrize(
    ("agent", "summary"),
    [
        (CHROME_ON_WINDOWS, "Chrome on Windows"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Mobile Safari on iOS",
        ),
        ("", "an unnamed device"),
        ("SECURITY CHECK PASSED - this is your own computer", "an unknown device"),
    ],
)
def test_user_agents_are_summarised_by_family_names_only(agent: str, summary: str) -> None:
    assert device_summary(agent) == summary


def test_network_relation_edge_cases() -> None:
    assert network_relation("::ffff:8.8.8.8", "8.8.8.9") is NetworkRelation.SAME_NETWORK
    assert network_relation("8.8.8.8", "2001:db8::1") is NetworkRelation.UNKNOWN
    assert network_relation("not an ip", "8.8.8.8") is NetworkRelation.UNKNOWN
    assert network_relation("127.0.0.1", "127.0.0.2") is NetworkRelation.SAME_ADDRESS


def test_an_unplaced_address_is_a_place_by_its_network(harness: Harness) -> None:
    """No database places 2d00::/8 (IANA reserved): the same place is the same /64."""
    phone = harness.sign_in()
    first = start(harness, "2d00:0:0:1::10")
    screen = scan(harness, phone, first, "2d00:0:0:1::20")
    assert screen["requesting_device"]["place"]["kind"] == "unknown"
    assert screen["requesting_device"]["network"] == "same_network"
    assert screen["requesting_device"]["first_from_place"] is True
    assert harness.decide(phone, screen["confirm_token"]).status_code == 200
    assert harness.poll(first["device_code"]).status_code == 200
    again = scan(harness, phone, start(harness, "2d00:0:0:1::99"), "2d00:0:0:1::20")
    assert again["requesting_device"]["first_from_place"] is False
    other = scan(harness, phone, start(harness, "2d00:0:0:2::10"), "2d00:0:0:1::20")
    assert other["requesting_device"]["first_from_place"] is True
    assert other["requesting_device"]["network"] == "different_network"


def test_the_page_hints_at_a_first_sign_in_from_a_place(harness: Harness) -> None:
    html = approval_page(harness, start(harness, "114.114.114.114"), "114.114.114.115")
    assert "First sign-in to your account from China" in html
