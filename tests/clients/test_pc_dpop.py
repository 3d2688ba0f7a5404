"""The PC library binds its device code and tokens to a DPoP key when the server takes DPoP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt

from qrlogin_client.files import file_mode
from qrlogin_client.http import HttpResponse
from qrlogin_client.pc import DeviceLogin, TokenStore
from tests.clients.fakes import CLIENT_ID, ISSUER, PENDING, FakeClock, FakeServer, tokens_answer


def dpop_server(**scripts: Any) -> FakeServer:
    server = FakeServer(FakeClock(), metadata={"dpop_signing_alg_values_supported": ["ES256"]})
    for path, answers in scripts.items():
        server.script(path, *answers)
    return server


def proof_of(sent: Any) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(sent.headers["DPoP"], options={"verify_signature": False})
    return claims


def login(server: FakeServer, **options: Any) -> DeviceLogin:
    clock = server.clock
    return DeviceLogin(
        ISSUER,
        CLIENT_ID,
        transport=server,
        clock=clock,
        wall_clock=clock,
        sleep=clock.sleep,
        **options,
    )


def bound_tokens() -> HttpResponse:
    answer = tokens_answer()
    return HttpResponse(200, {**answer.body, "token_type": "DPoP"})


def test_device_code_polls_and_resource_calls_carry_proofs_of_one_key(tmp_path: Path) -> None:
    server = dpop_server(**{"/oauth/token": [PENDING, bound_tokens()]})
    pc = login(server)
    tokens = pc.wait(pc.start())
    assert tokens.token_type == "DPoP" and pc.dpop_key is not None
    pc.me(tokens)
    started, *polls = server.requests_to("/oauth/device_authorization") + server.requests_to(
        "/oauth/token"
    )
    me = server.requests_to("/api/v1/me")[0]
    assert proof_of(started)["htu"] == f"{ISSUER}/oauth/device_authorization"
    assert len(polls) == 2 and len({proof_of(p)["jti"] for p in polls}) == 2
    assert me.headers["Authorization"] == "DPoP at-1" and "ath" in proof_of(me)
    keys = {str(jwt.get_unverified_header(s.headers["DPoP"])["jwk"]) for s in [started, *polls, me]}
    assert len(keys) == 1  # one key from the device code to the resource

    store = TokenStore(tmp_path / "tokens.json")
    store.save(tokens, issuer=ISSUER, client_id=CLIENT_ID, dpop_key=pc.dpop_key)
    assert file_mode(store.path) == 0o600
    saved = store.load()
    assert saved.dpop_key is not None and saved.dpop_key.thumbprint == pc.dpop_key.thumbprint


def test_a_nonce_request_is_answered_once_with_the_nonce() -> None:
    asks = HttpResponse(400, {"error": "use_dpop_nonce"}, {"DPoP-Nonce": "n-7"})
    server = dpop_server(**{"/oauth/token": [asks, bound_tokens()]})
    pc = login(server)
    pc.wait(pc.start())
    first, second = server.requests_to("/oauth/token")
    assert "nonce" not in proof_of(first) and proof_of(second)["nonce"] == "n-7"


def test_bearer_when_the_server_or_the_caller_says_so() -> None:
    server = FakeServer(FakeClock())  # no dpop_signing_alg_values_supported
    server.script("/oauth/token", tokens_answer())
    pc = login(server)
    pc.wait(pc.start())
    assert pc.dpop_key is None
    assert all("DPoP" not in s.headers for s in server.sent)
    server = dpop_server(**{"/oauth/token": [tokens_answer()]})
    pc = login(server, dpop=False)
    pc.wait(pc.start())
    assert all("DPoP" not in s.headers for s in server.sent)
