"""A QR code that rotates: a photographed or forwarded QR link is stale within a minute, while
the typed user code stays valid for the code's lifetime (RFC 8628 §3.3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun import freeze_time

from tests.functional.harness import Harness


def link(h: Harness, started: dict[str, Any]) -> tuple[str, int]:
    body = h.status(started["device_code"]).get_json()
    return f"{started['verification_uri_complete']}&t={body['qr_token']}", body[
        "qr_token_expires_in"
    ]


def test_a_fresh_link_scans_and_a_stale_one_is_refused(harness: Harness) -> None:
    with freeze_time("2026-01-01 12:00:00") as frozen:
        started = harness.authorize(rotating_qr="true")
        # The device authorization response keeps its RFC 8628 §3.2 fields.
        assert started["verification_uri_complete"].endswith(started["user_code"])
        old, shown_for = link(harness, started)
        assert 1 <= shown_for <= 30
        frozen.tick(timedelta(seconds=shown_for))
        new, _ = link(harness, started)
        assert new != old  # the status channel gives the next one
        frozen.tick(timedelta(seconds=31))  # `old` is now two periods old
        phone = harness.sign_in()
        stale = harness.scan(phone, qr=old)
        assert stale.status_code == 410
        assert stale.get_json()["error"] == "qr_refreshed"
        assert "scan it again" in stale.get_json()["error_description"]
        plain = harness.scan(phone, qr=started["verification_uri_complete"])
        assert plain.get_json()["error"] == "qr_refreshed"  # the link without a token
        forged = harness.scan(
            phone, qr=f"{started['verification_uri_complete']}&t=AAAAAAAAAAAAAAAA"
        )
        assert forged.get_json()["error"] == "qr_refreshed"
        assert harness.status(started["device_code"]).get_json()["status"] == "pending"
        current, _ = link(harness, started)
        assert harness.scan(phone, qr=current).status_code == 200


def test_the_typed_code_stays_valid(harness: Harness) -> None:
    with freeze_time("2026-01-01 12:00:00") as frozen:
        started = harness.authorize(rotating_qr="true")
        frozen.tick(timedelta(seconds=300))
        typed = harness.scan(harness.sign_in(), user_code=started["user_code"])
        assert typed.status_code == 200, typed.get_json()


def test_a_flow_without_rotation_has_no_token(harness: Harness) -> None:
    started = harness.authorize()
    assert "qr_token" not in harness.status(started["device_code"]).get_json()
    assert (
        harness.scan(harness.sign_in(), qr=started["verification_uri_complete"]).status_code == 200
    )


def test_the_qr_image_of_a_link_with_a_token(harness: Harness) -> None:
    started = harness.authorize(rotating_qr="true")
    token = harness.status(started["device_code"]).get_json()["qr_token"]
    image = harness.http.get(f"/qr/{started['user_code']}.svg?t={token}")
    assert image.status_code == 200 and image.mimetype == "image/svg+xml"
    assert harness.http.get(f"/qr/{started['user_code']}.svg?t=<script>").status_code == 404
