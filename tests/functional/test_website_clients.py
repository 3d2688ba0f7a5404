"""Registering websites: redirect URIs, grants and scopes per client, from the CLI and the admin
API; what may be registered (RFC 6749 §3.1.2, RFC 9700 §2.1)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from authserver.cli import main
from authserver.domain import errors
from tests.functional.harness import Harness
from tests.functional.lifecycle import admin_headers

one_backend = pytest.mark.parametrize("backend", ["embedded+sqlite"], indirect=True)


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> tuple[int, Any, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_the_cli_creates_updates_and_lists_a_website(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, sqlite_url: str
) -> None:
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("AUTHSERVER_REDIS_URL", raising=False)
    assert run(["db", "upgrade"], monkeypatch, capsys)[0] == 0
    code, created, _ = run(
        [
            "clients",
            "create",
            "--name",
            "Shop",
            "--redirect-uri",
            "https://shop.example/cb",
            "--grant",
            "authorization_code",
            "--scope",
            "openid profile",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0 and "client_secret" not in created
    client_id = created["client_id"]
    code, updated, _ = run(
        [
            "clients",
            "update",
            client_id,
            "--redirect-uri",
            "https://shop.example/cb",
            "--redirect-uri",
            "http://localhost:5000/cb",
            "--post-logout-redirect-uri",
            "https://shop.example/",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0
    assert updated["redirect_uris"] == ["https://shop.example/cb", "http://localhost:5000/cb"]
    assert updated["grant_types"] == ["authorization_code", "refresh_token"]  # kept
    assert updated["scope"] == "openid profile"
    code, listed, _ = run(["clients", "list"], monkeypatch, capsys)
    assert code == 0 and [c["client_id"] for c in listed["clients"]] == [client_id]

    code, _, err = run(
        ["clients", "update", client_id, "--redirect-uri", "http://shop.example/cb"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "loopback" in json.loads(err)["error"]
    code, _, err = run(
        ["clients", "create", "--name", "No URI", "--grant", "authorization_code"],
        monkeypatch,
        capsys,
    )
    assert code == 2 and "redirect URI" in json.loads(err)["error"]


@one_backend
@pytest.mark.parametrize(
    "uri",
    [
        "http://shop.example/cb",  # plain http off loopback
        "https://shop.example/cb#frag",
        "https://*.shop.example/cb",
        "javascript:alert(1)",
        "shop.example/cb",
        "https://user:pw@shop.example/cb",
        "https://shop.example/c b",
    ],
)
def test_what_cannot_be_a_redirect_uri(harness: Harness, uri: str) -> None:
    with pytest.raises(errors.MalformedRequest):
        harness.services.clients.create(
            "Bad",
            confidential=False,
            scope=None,
            redirect_uris=[uri],
            grant_types=["authorization_code"],
        )


@one_backend
def test_the_admin_api_registers_and_updates_a_website(harness: Harness) -> None:
    h = harness
    auth = admin_headers(h)
    created = h.http.post(
        "/admin/v1/clients",
        json={
            "name": "Portal",
            "confidential": True,
            "redirect_uris": ["https://portal.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid email",
        },
        headers=auth,
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["client_secret"] and body["confidential"] is True
    assert body["redirect_uris"] == ["https://portal.example/cb"]
    patched = h.http.patch(
        f"/admin/v1/clients/{body['client_id']}",
        json={"redirect_uris": ["https://portal.example/cb2"], "name": "Portal 2"},
        headers=auth,
    )
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["redirect_uris"] == ["https://portal.example/cb2"]
    assert patched.get_json()["name"] == "Portal 2" and "client_secret" not in patched.get_json()
    bad = h.http.patch(
        f"/admin/v1/clients/{body['client_id']}",
        json={"redirect_uris": ["http://portal.example/cb"]},
        headers=auth,
    )
    assert bad.status_code == 400
    missing = h.http.patch("/admin/v1/clients/nope", json={"name": "x"}, headers=auth)
    assert missing.status_code == 404
    events = h.http.get(f"/admin/v1/audit?client_id={body['client_id']}", headers=auth)
    assert [e["event"] for e in events.get_json()["events"]] == [
        "client.updated",
        "client.created",
    ]
    assert h.http.post("/admin/v1/clients", json={"name": "x"}).status_code == 401


@one_backend
def test_a_device_client_keeps_the_device_flow_and_a_website_cannot_use_it(
    harness: Harness,
) -> None:
    h = harness
    assert (
        h.http.post("/oauth/device_authorization", data={"client_id": h.client_id}).status_code
        == 200
    )
    website, _ = h.services.clients.create(
        "Site",
        confidential=False,
        scope=None,
        redirect_uris=["https://site.example/cb"],
        grant_types=["authorization_code"],
    )
    refused = h.http.post("/oauth/device_authorization", data={"client_id": website.client_id})
    assert refused.status_code == 400 and refused.get_json()["error"] == "unauthorized_client"
