"""Number matching: the phone must pick the number the PC shows; a wrong pick denies the flow."""

from __future__ import annotations

from typing import Any

import pytest

from authserver.domain.models import AuditFilter
from tests.functional.harness import Harness, Phone
from tests.functional.test_authorization_code import Pkce, authorize, complete, page_fields


def start(h: Harness, **params: str) -> dict[str, Any]:
    return h.authorize(number_matching="true", **params)


def scanned(h: Harness, started: dict[str, Any], phone: Phone) -> dict[str, Any]:
    response = h.scan(phone, qr=started["verification_uri_complete"])
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def shown_on_the_pc(h: Harness, started: dict[str, Any]) -> Any:
    return h.status(started["device_code"]).get_json().get("match_number")


def confirm(h: Harness, phone: Phone, screen: dict[str, Any], **body: Any) -> Any:
    return h.http.post(
        "/mobile/v1/confirm",
        json={"confirm_token": screen["confirm_token"], **body},
        headers=phone.headers(),
    )


def test_the_right_number_approves(harness: Harness) -> None:
    started, phone = start(harness), harness.sign_in()
    assert shown_on_the_pc(harness, started) is None  # nothing to pick before the scan
    screen = scanned(harness, started, phone)
    number = shown_on_the_pc(harness, started)
    assert isinstance(number, int) and 10 <= number <= 99
    assert number in screen["number_choices"] and len(set(screen["number_choices"])) == 3
    assert confirm(harness, phone, screen, number=number).get_json() == {"status": "approved"}
    assert harness.poll(started["device_code"]).status_code == 200


def test_a_wrong_number_denies_the_flow_and_is_audited(harness: Harness) -> None:
    started, phone = start(harness), harness.sign_in()
    screen = scanned(harness, started, phone)
    number = shown_on_the_pc(harness, started)
    wrong = next(n for n in screen["number_choices"] if n != number)
    answer = confirm(harness, phone, screen, number=wrong)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "number_mismatch"
    assert harness.poll(started["device_code"]).get_json()["error"] == "access_denied"
    assert harness.status(started["device_code"]).get_json()["status"] == "denied"
    # The confirm token is spent: the right number afterwards changes nothing.
    again = confirm(harness, phone, screen, number=number)
    assert again.get_json()["error"] == "invalid_confirm_token"
    trail = harness.services.auditor.query(AuditFilter(client_id=harness.client_id))
    events = [str(e.event) for e in trail]
    assert "flow.number_mismatch" in events and "flow.approved" not in events


@pytest.mark.parametrize("body", [{}, {"number": "42"}, {"number": True}])
def test_no_number_changes_nothing(harness: Harness, body: dict[str, Any]) -> None:
    started, phone = start(harness), harness.sign_in()
    screen = scanned(harness, started, phone)
    answer = confirm(harness, phone, screen, **body)
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"
    assert harness.status(started["device_code"]).get_json()["status"] == "scanned"
    number = shown_on_the_pc(harness, started)
    assert confirm(harness, phone, screen, number=number).get_json() == {"status": "approved"}


def test_a_client_can_require_it_for_every_flow(harness: Harness) -> None:
    harness.services.clients.update(harness.client_id, number_matching=True)
    started, phone = harness.authorize(), harness.sign_in()  # the PC did not ask for it
    screen = scanned(harness, started, phone)
    assert len(screen["number_choices"]) == 3
    assert confirm(harness, phone, screen).status_code == 400
    harness.approve(started, phone)  # scans again, picks the number the status channel shows
    assert harness.poll(started["device_code"]).status_code == 200


def test_without_it_nothing_changes(harness: Harness) -> None:
    started, phone = harness.authorize(), harness.sign_in()
    screen = scanned(harness, started, phone)
    assert "number_choices" not in screen
    assert confirm(harness, phone, screen).get_json() == {"status": "approved"}


def test_a_bad_flag_is_refused(harness: Harness) -> None:
    response = harness.http.post(
        "/oauth/device_authorization",
        data={"client_id": harness.client_id, "number_matching": "yes"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_scanning_again_shows_the_same_choices(harness: Harness) -> None:
    # Fresh decoys on each scan would give the number away: it is the one that every scan
    # shows ("scan twice and pick the one you see both times" needs no look at the PC).
    started, phone = start(harness), harness.sign_in()
    first = scanned(harness, started, phone)
    again = [scanned(harness, started, phone) for _ in range(3)]
    assert all(screen["number_choices"] == first["number_choices"] for screen in again)
    number = shown_on_the_pc(harness, started)
    assert confirm(harness, phone, again[-1], number=number).get_json() == {"status": "approved"}


def test_the_website_sign_in_of_a_client_that_requires_it(harness: Harness) -> None:
    # The /authorize sign-in page is a QR login too: the client's setting holds there.
    client, _ = harness.services.clients.create(
        "Matching website",
        confidential=False,
        scope="openid",
        redirect_uris=["https://website.example/cb"],
        grant_types=["authorization_code"],
        number_matching=True,
    )
    harness.client_id = client.client_id
    authorization_id, user_code = page_fields(
        authorize(harness, Pkce(), redirect_uri="https://website.example/cb", scope="openid")
    )

    def shown() -> Any:
        answer = harness.http.post("/authorize/status", data={"authorization": authorization_id})
        return answer.get_json().get("match_number")

    assert shown() is None  # nothing to pick before the scan
    phone = harness.sign_in()
    screen = harness.scan(phone, user_code=user_code).get_json()
    number = shown()
    assert number in screen["number_choices"] and len(set(screen["number_choices"])) == 3
    assert confirm(harness, phone, screen).status_code == 400  # no pick: nothing changes
    assert confirm(harness, phone, screen, number=number).get_json() == {"status": "approved"}
    assert complete(harness, authorization_id).status_code == 303
