"""A revocation whose deny-list write failed is still enforced once the list rebuilds."""

from __future__ import annotations

from typing import Any

import pytest

from authserver.domain.models import Actor, AuditFilter, FamilyFilter
from tests.functional.harness import Harness


def test_a_failed_deny_list_write_makes_the_list_rebuild_from_sql(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = harness.authorize()
    harness.approve(started)
    access = harness.poll(started["device_code"]).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert harness.http.get("/api/v1/me", headers=bearer).status_code == 200

    deny_list: Any = harness.services.revocations._deny_list
    add = deny_list.add

    def lost_write(*_: Any) -> None:
        raise ConnectionError("deny-list unreachable")

    monkeypatch.setattr(deny_list, "add", lost_write)
    where = FamilyFilter(client_id=harness.client_id)
    with pytest.raises(ConnectionError):
        harness.services.revocations.revoke_families(where, "admin", Actor("admin", "a1"), "")
    monkeypatch.setattr(deny_list, "add", add)

    # The SQL revocation stands and is audited, and the token is refused: the failed write
    # marked the list incomplete, so the next check rebuilt it from SQL.
    events = harness.services.auditor.query(AuditFilter(client_id=harness.client_id))
    assert "token.revoked" in [e.event for e in events]
    response = harness.http.get("/api/v1/me", headers=bearer)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
