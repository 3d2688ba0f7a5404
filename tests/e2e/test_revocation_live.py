"""RFC 7009 revocation through Authlib's client, seen by every worker of a real server."""

from __future__ import annotations

import requests

from tests.e2e.conftest import LiveServer
from tests.e2e.test_real_clients import (
    TIMEOUT,
    Phone,
    authlib_client,
    device_authorization,
    discover,
    poll_for_token,
    token_request,
)

# Fresh connections each time, so with two workers both of them answer some of these.
REQUESTS_PER_CHECK = 12


def me_statuses(base_url: str, access_token: str) -> set[int]:
    return {
        requests.get(
            f"{base_url}/api/v1/me",
            headers={"Authorization": f"Bearer {access_token}", "Connection": "close"},
            timeout=TIMEOUT,
        ).status_code
        for _ in range(REQUESTS_PER_CHECK)
    }


def test_revoking_a_refresh_token_stops_its_access_token_on_every_worker(
    any_live_server: LiveServer,
) -> None:
    server = any_live_server
    metadata = discover(server.base_url)
    assert metadata["revocation_endpoint"] == f"{server.base_url}/oauth/revoke"
    pc = authlib_client(server)
    started = device_authorization(pc, metadata, server.client_id, "profile email")
    Phone.sign_in(server).approve(started)
    tokens = poll_for_token(pc, metadata, started)
    assert me_statuses(server.base_url, tokens["access_token"]) == {200}

    # Authlib's own RFC 7009 call, as an integrator signs a user out of the PC app.
    revoked = pc.revoke_token(
        metadata["revocation_endpoint"],
        token=tokens["refresh_token"],
        token_type_hint="refresh_token",
        timeout=TIMEOUT,
    )
    assert revoked.status_code == 200

    # RFC 7009 §2.1: the grant's access token dies with its refresh token, whichever worker
    # the resource request reaches (the deny-list is shared through Redis).
    assert me_statuses(server.base_url, tokens["access_token"]) == {401}
    refreshed = token_request(
        server.base_url,
        grant_type="refresh_token",
        refresh_token=tokens["refresh_token"],
        client_id=server.client_id,
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
