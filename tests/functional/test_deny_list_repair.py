"""A revocation whose deny-list write failed is still enforced: it never reopens."""

from __future__ import annotations

import time
from typing import Any

import pytest

from authserver.domain.models import Actor, AuditFilter, FamilyFilter, RevocationReason
from tests.functional.harness import Harness


def issued_access_token(harness: Harness, **params: str) -> dict[str, str]:
    started = harness.authorize(**params)
    harness.approve(started)
    access = harness.poll(started["device_code"]).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert harness.http.get("/api/v1/me", headers=bearer).status_code == 200
    return bearer


def revoke_all(harness: Harness) -> None:
    where = FamilyFilter(client_id=harness.client_id)
    revoked = harness.services.revocations.revoke_families(
        where, RevocationReason.ADMIN, Actor("admin", "a1"), ""
    )
    assert revoked  # answered once SQL committed, whatever happened to the deny-list


def unreachable(*_: Any) -> None:
    raise ConnectionError("deny-list unreachable")


def test_a_failed_deny_list_write_makes_the_list_rebuild_from_sql(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    bearer = issued_access_token(harness)
    deny_list: Any = harness.services.revocations._deny_list
    with monkeypatch.context() as patch:
        patch.setattr(deny_list, "add", unreachable)
        revoke_all(harness)

    # The SQL revocation stands and is audited, and the token is refused: the failed write
    # marked the list incomplete, so the next check rebuilt it from SQL.
    events = harness.services.auditor.query(AuditFilter(client_id=harness.client_id))
    assert "token.revoked" in [e.event for e in events]
    response = harness.http.get("/api/v1/me", headers=bearer)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"


def test_a_process_that_could_not_even_mark_the_list_fails_closed_until_it_repairs_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis is down at the revocation: the write and the marker delete both fail. The
    revocation still succeeds; this process refuses to say "not revoked" until the list is
    repaired, and repairs it (in the background too) as soon as Redis is back."""
    bearer = issued_access_token(harness)
    revocations: Any = harness.services.revocations
    deny_list = revocations._deny_list
    with monkeypatch.context() as patch:
        patch.setattr(deny_list, "add", unreachable)
        patch.setattr(deny_list, "mark_incomplete", unreachable)
        revoke_all(harness)
        during = harness.http.get("/api/v1/me", headers=bearer)
        assert during.status_code >= 500  # fails closed: never a 200 for a revoked token
    # Redis is back: the background repair marks the list incomplete on its own.
    deadline = time.monotonic() + 5
    while revocations._needs_repair and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not revocations._needs_repair
    response = harness.http.get("/api/v1/me", headers=bearer)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"


@pytest.mark.parametrize("backend", ["redis+postgres"], indirect=True)
def test_resource_checks_keep_answering_through_a_sql_outage(harness: Harness) -> None:
    """The deny-list is due for its periodic rebuild and SQL is down: no revocation can commit
    while SQL is down, so the complete list answers (and the keys held keep verifying); a list
    that is not complete cannot be trusted and fails closed."""
    from tests.functional.faults import sql_down

    # Scope "email" only: /me then reads no user row (with "profile" it would need SQL).
    live = issued_access_token(harness, scope="email")
    revoked = issued_access_token(harness, scope="email")
    family = harness.services.administration.sessions(FamilyFilter(client_id=harness.client_id))[0]
    harness.services.revocations.revoke_family(
        family.family, RevocationReason.ADMIN, Actor("admin", "a1"), ""
    )
    redis = harness.services.redis
    assert redis is not None
    prefix = harness.services.config.redis_prefix
    keys: Any = harness.services.keys
    with sql_down(harness.services):
        redis.delete(f"{prefix}deny-fresh")  # due for a rebuild it cannot do
        keys._reload_at = 0.0  # and the key table is due for a reload it cannot do
        answers = {
            name: harness.http.get("/api/v1/me", headers=bearer).status_code
            for name, bearer in (("live", live), ("revoked", revoked))
        }
        # Which of the two sessions was revoked (newest first): one is refused, one accepted.
        assert sorted(answers.values()) == [200, 401], answers
        redis.delete(f"{prefix}deny-complete")  # as a Redis restart loses it
        assert harness.http.get("/api/v1/me", headers=live).status_code == 503
    assert sorted(
        harness.http.get("/api/v1/me", headers=b).status_code for b in (live, revoked)
    ) == [200, 401]
