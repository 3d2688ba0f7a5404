"""Token exchange (RFC 8693) through HTTP: a test identity provider's tokens become device
tokens, which then approve QR logins; every way a subject token can be wrong is refused.

The provider's JWKS is served over real HTTP by a local thread (tests/identity_provider.py);
time is an injected clock, so key-cache intervals and token lifetimes are crossed by moving it.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authserver import create_app
from authserver.bootstrap import Services, build_services
from authserver.config import Config
from authserver.domain.models import AuditFilter, ClientKind
from authserver.services.external_tokens import (
    LEEWAY,
    MAX_JWKS_BYTES,
    REFETCH_INTERVAL,
    JwksUnavailable,
    fetch_url,
)
from authserver.services.token_exchange import TOKEN_EXCHANGE_GRANT, TokenType
from tests.functional.harness import ISSUER, PASSWORD, Harness, Phone
from tests.identity_provider import AUDIENCE, IdentityProvider, SigningKey, serve


class Clock:
    """The server's injected clock: real time plus whatever the test moved it by."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Exchange:
    """The server with a trusted test identity provider and a registered mobile app client."""

    h: Harness
    idp: IdentityProvider
    clock: Clock
    app_client_id: str

    def exchange(self, subject_token: str, /, **params: str) -> Any:
        data = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "client_id": self.app_client_id,
            "subject_token": subject_token,
            "subject_token_type": TokenType.ACCESS_TOKEN,
            "device_id": "phone-ext-1",
            "device_name": "Grace's phone",
            "device_platform": "android",
            **params,
        }
        return self.h.http.post(
            "/oauth/token",
            data={k: v for k, v in data.items() if v != ""},
            environ_base={"REMOTE_ADDR": "198.51.100.4"},
        )

    def signed_in(
        self, sub: str = "user-1", device_id: str = "phone-ext-1", **claims: Any
    ) -> Phone:
        response = self.exchange(
            self.idp.token(sub, now=self.clock(), **claims), device_id=device_id
        )
        assert response.status_code == 200, response.get_json()
        return Phone(response.get_json()["access_token"], device_id)

    def refused(self, response: Any, error: str = "invalid_grant", status: int = 400) -> str:
        assert response.status_code == status, response.get_json()
        body = response.get_json()
        assert body["error"] == error, body
        assert response.headers["Cache-Control"] == "no-store"
        return str(body["error_description"])


def _services(backend: tuple[str, str | None, str], clock: Clock, **settings: Any) -> Services:
    database_url, redis_url, prefix = backend
    config = Config.from_env(
        {},
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=prefix,
        issuer=ISSUER,
        scrypt_p=1,
        **settings,
    )
    services = build_services(config, clock=clock)
    services.database.upgrade()
    return services


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with serve(IdentityProvider()) as provider:
        yield provider


@pytest.fixture
def ex(backend: tuple[str, str | None, str], idp: IdentityProvider) -> Iterator[Exchange]:
    clock = Clock()
    services = _services(backend, clock, trusted_issuers=idp.trusted_issuers(), jwks_timeout=2.0)
    app = create_app(services=services)
    pc, _ = services.clients.create("Test PC app", confidential=False, scope="profile email")
    mobile, _ = services.clients.create(
        "Our app", confidential=False, scope=None, kind=ClientKind.MOBILE_APP
    )
    username = f"alice-{uuid.uuid4().hex[:6]}"
    services.accounts.create_user(username, PASSWORD, "Alice Liddell")
    h = Harness(app.test_client(), services, pc.client_id, username)
    yield Exchange(h, idp, clock, mobile.client_id)
    services.close()


# --- Success ------------------------------------------------------------------------------
def test_an_exchanged_device_token_approves_a_qr_login_and_the_pc_gets_tokens(
    ex: Exchange,
) -> None:
    response = ex.exchange(ex.idp.token("user-1", now=ex.clock()))
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    # RFC 8693 §2.2.1
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert body["issued_token_type"] == "urn:authserver:token-type:mobile-device-token"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == ex.h.services.config.mobile_token_ttl
    phone = Phone(body["access_token"], "phone-ext-1")

    started = ex.h.authorize()
    ex.h.approve(started, phone)
    tokens = ex.h.poll(started["device_code"])
    assert tokens.status_code == 200, tokens.get_json()
    claims = jwt.decode(tokens.get_json()["access_token"], options={"verify_signature": False})
    user = ex.h.services.accounts.user(claims["sub"])
    assert user is not None
    assert (user.username, user.display_name) == ("grace", "Grace Hopper")
    assert (user.email, user.email_verified) == ("grace@example.com", True)
    assert user.password_hash is None
    # The user behind the PC's token is the one the identity provider named.
    me = ex.h.http.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {tokens.get_json()['access_token']}"}
    )
    assert me.get_json()["username"] == "grace"


def test_the_exchange_is_audited_with_the_new_user_and_the_phone(ex: Exchange) -> None:
    ex.signed_in("user-1")
    events = ex.h.services.auditor.query(AuditFilter(limit=20))
    by_name = {e.event: e for e in events}
    linked = by_name["identity.linked"]
    assert linked.detail["issuer"] == ex.idp.issuer
    assert linked.detail["subject"] == "user-1"
    exchanged = by_name["token.exchanged"]
    assert exchanged.client_id == ex.app_client_id
    assert exchanged.ip == "198.51.100.4"
    assert exchanged.detail == {
        "issuer": ex.idp.issuer,
        "subject_token_type": TokenType.ACCESS_TOKEN,
        "new_user": True,
    }
    signed_in = by_name["device.signed_in"]
    assert signed_in.detail["method"] == "token_exchange"
    assert signed_in.mobile_device_id == exchanged.mobile_device_id
    assert linked.user_id == exchanged.user_id == signed_in.user_id


def test_the_same_subject_again_is_the_same_user_with_the_providers_latest_profile(
    ex: Exchange,
) -> None:
    ex.signed_in("user-1", device_id="phone-a")
    ex.signed_in("user-1", device_id="phone-b", name="Grace B. Hopper", email="gbh@example.com")
    users = ex.h.services.accounts.search_users("grace", 10)
    assert len(users) == 1
    assert users[0].display_name == "Grace B. Hopper"
    assert users[0].email == "gbh@example.com"
    assert len(ex.h.services.accounts.devices_of(users[0].user_id)) == 2
    # Another subject whose preferred username is taken gets another username.
    ex.signed_in("user-2", device_id="phone-c")
    names = sorted(u.username for u in ex.h.services.accounts.search_users("grace", 10))
    assert names[0] == "grace" and names[1].startswith("grace-")


def test_an_id_token_and_a_plain_jwt_exchange_too(ex: Exchange) -> None:
    for kind in (TokenType.ID_TOKEN, TokenType.JWT):
        token = ex.idp.token("user-1", now=ex.clock(), key=ex.idp.keys[1])  # ES256
        response = ex.exchange(token, subject_token_type=kind)
        assert response.status_code == 200, response.get_json()
    # An RFC 9068 access token is not an ID token (RFC 8725 §3.11).
    access = ex.idp.token("user-1", now=ex.clock(), headers={"typ": "at+jwt"})
    ex.refused(ex.exchange(access, subject_token_type=TokenType.ID_TOKEN))


def test_a_signing_in_again_from_the_same_phone_ends_its_old_session(ex: Exchange) -> None:
    old = ex.signed_in("user-1")
    ex.signed_in("user-1")
    refused = ex.h.scan(old, user_code="BCDF-GHJK")
    assert refused.status_code == 401


def test_an_external_user_never_signs_in_with_a_password(ex: Exchange) -> None:
    ex.signed_in("user-1")
    for password in ("", PASSWORD, "None"):
        response = ex.h.http.post(
            "/mobile/v1/sessions",
            json={
                "username": "grace",
                "password": password or "x",
                "device": {"id": "p", "name": "n", "platform": "ios"},
            },
        )
        assert response.status_code == 401
    # Local password users keep working beside it.
    assert ex.h.sign_in().token


# --- The subject token is refused ---------------------------------------------------------
def test_a_token_of_an_untrusted_issuer_is_refused(ex: Exchange) -> None:
    token = ex.idp.token(now=ex.clock(), iss="https://evil.example")
    assert "issuer" in ex.refused(ex.exchange(token))
    # Close is not equal: issuers compare exactly.
    assert "issuer" in ex.refused(
        ex.exchange(ex.idp.token(now=ex.clock(), iss=ex.idp.issuer + "/"))
    )


def test_a_token_for_another_audience_is_refused(ex: Exchange) -> None:
    assert "aud" in ex.refused(ex.exchange(ex.idp.token(now=ex.clock(), aud="another-app")))
    ex.refused(ex.exchange(ex.idp.token(now=ex.clock(), aud=None)))
    listed = ex.idp.token(now=ex.clock(), aud=["another-app", AUDIENCE])
    assert ex.exchange(listed).status_code == 200


def test_an_expired_token_is_refused_after_the_leeway(ex: Exchange) -> None:
    now = ex.clock()
    just = ex.idp.token(now=now - 300 - LEEWAY + 5, lifetime=300)  # expired 25 s ago
    assert ex.exchange(just).status_code == 200
    expired = ex.idp.token(now=now - 300 - LEEWAY - 5, lifetime=300)
    assert "expired" in ex.refused(ex.exchange(expired))
    assert "exp" in ex.refused(ex.exchange(ex.idp.token(now=now, exp=None)))
    # The same token, once the server's clock passes its expiry.
    token = ex.idp.token(now=now, lifetime=60)
    ex.clock.advance(60 + LEEWAY + 1)
    ex.refused(ex.exchange(token))


def test_a_token_not_valid_yet_is_refused(ex: Exchange) -> None:
    now = ex.clock()
    assert "nbf" in ex.refused(ex.exchange(ex.idp.token(now=now, nbf=int(now) + 120)))
    assert "iat" in ex.refused(ex.exchange(ex.idp.token(now=now + 120)))
    assert ex.exchange(ex.idp.token(now=now, nbf=int(now) + 10)).status_code == 200


def test_a_bad_signature_is_refused(ex: Exchange) -> None:
    published = ex.idp.keys[0]
    impostor = SigningKey(published.kid, "RS256", SigningKey.rsa().private)  # same kid
    ex.refused(ex.exchange(ex.idp.token(now=ex.clock(), key=impostor)))
    header, _payload, signature = ex.idp.token(now=ex.clock()).split(".")
    forged = jwt.utils.base64url_encode(b'{"iss":"x"}').decode()
    ex.refused(ex.exchange(f"{header}.{forged}.{signature}"))
    ex.refused(ex.exchange("not-a-jwt"))


def test_alg_none_and_hmac_with_the_public_key_are_refused(ex: Exchange) -> None:
    claims = jwt.decode(ex.idp.token(now=ex.clock()), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": ex.idp.keys[0].kid})
    assert "'none'" in ex.refused(ex.exchange(unsigned))
    # The classic key confusion: HS256 keyed with the provider's public key.
    public_pem = ex.idp.keys[1].public_jwk()["x"].encode()
    hmac = jwt.encode(
        claims, public_pem * 4, algorithm="HS256", headers={"kid": ex.idp.keys[1].kid}
    )
    assert "HS256" in ex.refused(ex.exchange(hmac))
    # An algorithm the provider's key does not have.
    ps = jwt.encode(
        claims, ex.idp.keys[0].private, algorithm="PS256", headers={"kid": ex.idp.keys[0].kid}
    )  # type: ignore[arg-type]
    ex.refused(ex.exchange(ps))


def test_the_configured_algorithms_are_the_only_ones(
    backend: tuple[str, str | None, str], idp: IdentityProvider
) -> None:
    services = _services(
        backend, Clock(), trusted_issuers=idp.trusted_issuers(algorithms=["ES256"])
    )
    try:
        app, _ = services.clients.create(
            "App", confidential=False, scope=None, kind=ClientKind.MOBILE_APP
        )
        ex = Exchange(
            Harness(create_app(services=services).test_client(), services, "", ""),
            idp,
            Clock(),
            app.client_id,
        )
        assert "RS256" in ex.refused(ex.exchange(idp.token(key=idp.keys[0])))
        assert ex.exchange(idp.token(key=idp.keys[1])).status_code == 200
    finally:
        services.close()


# --- Keys: rotation, rate limit, outages ---------------------------------------------------
def test_a_rotated_key_is_fetched_once_and_made_up_kids_do_not_hammer_the_provider(
    ex: Exchange,
) -> None:
    ex.signed_in("user-1")
    assert ex.idp.jwks_fetches == 1
    ex.signed_in("user-1")
    assert ex.idp.jwks_fetches == 1  # cached
    ex.clock.advance(REFETCH_INTERVAL + 1)
    rotated = ex.idp.rotate()
    response = ex.exchange(ex.idp.token(now=ex.clock(), key=rotated))
    assert response.status_code == 200, response.get_json()
    assert ex.idp.jwks_fetches == 2  # the unknown kid made it fetch again, once
    for _ in range(5):
        stranger = SigningKey.rsa()  # a kid the provider never published
        assert "publish" in ex.refused(ex.exchange(ex.idp.token(now=ex.clock(), key=stranger)))
    assert ex.idp.jwks_fetches == 2  # within the interval: no fetch at all
    ex.clock.advance(REFETCH_INTERVAL + 1)
    ex.refused(ex.exchange(ex.idp.token(now=ex.clock(), key=SigningKey.rsa())))
    assert ex.idp.jwks_fetches == 3  # after it: one


def test_an_unreachable_provider_is_a_503_with_retry_after_and_known_keys_keep_working(
    ex: Exchange,
) -> None:
    ex.idp.down = True
    response = ex.exchange(ex.idp.token(now=ex.clock()))
    ex.refused(response, "temporarily_unavailable", 503)
    assert 1 <= int(response.headers["Retry-After"]) <= REFETCH_INTERVAL
    ex.idp.down = False
    ex.clock.advance(REFETCH_INTERVAL + 1)
    ex.signed_in("user-1")
    # Down again, with its keys cached: known keys still verify, unknown ones cannot be
    # checked and are a 503, not the token's fault.
    ex.idp.down = True
    ex.clock.advance(3600 + 1)  # past the cache's age: it tries to refresh, and fails
    ex.signed_in("user-1")
    ex.clock.advance(REFETCH_INTERVAL + 1)
    unknown = ex.exchange(ex.idp.token(now=ex.clock(), key=SigningKey.rsa()))
    ex.refused(unknown, "temporarily_unavailable", 503)


def test_a_provider_that_refuses_connections_is_a_503(
    backend: tuple[str, str | None, str], idp: IdentityProvider
) -> None:
    clock = Clock()
    closed = idp.trusted_issuers(jwks_uri="http://127.0.0.1:9/jwks")  # discard port: refused
    services = _services(backend, clock, trusted_issuers=closed)
    try:
        app, _ = services.clients.create(
            "App", confidential=False, scope=None, kind=ClientKind.MOBILE_APP
        )
        ex = Exchange(
            Harness(create_app(services=services).test_client(), services, "", ""),
            idp,
            clock,
            app.client_id,
        )
        ex.refused(ex.exchange(idp.token()), "temporarily_unavailable", 503)
    finally:
        services.close()


# --- The request is refused ---------------------------------------------------------------
def test_without_trusted_issuers_the_grant_does_not_exist(harness: Harness) -> None:
    metadata = harness.http.get("/.well-known/oauth-authorization-server").get_json()
    assert TOKEN_EXCHANGE_GRANT not in metadata["grant_types_supported"]
    response = harness.http.post(
        "/oauth/token",
        data={
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "client_id": harness.client_id,
            "subject_token": "x",
            "subject_token_type": TokenType.ACCESS_TOKEN,
        },
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_the_grant_is_in_the_metadata_when_an_issuer_is_trusted(ex: Exchange) -> None:
    metadata = ex.h.http.get("/.well-known/openid-configuration").get_json()
    assert TOKEN_EXCHANGE_GRANT in metadata["grant_types_supported"]


def test_only_the_mobile_app_client_may_exchange(ex: Exchange) -> None:
    token = ex.idp.token(now=ex.clock())
    ex.refused(ex.exchange(token, client_id=ex.h.client_id), "unauthorized_client")
    ex.refused(ex.exchange(token, client_id="nobody"), "invalid_client", 401)
    assert ex.idp.jwks_fetches == 0  # refused before anything was fetched


@pytest.mark.parametrize(
    ("params", "error", "fragment"),
    [
        ({"subject_token": ""}, "invalid_request", "subject_token"),
        ({"subject_token_type": ""}, "invalid_request", "subject_token_type"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request", ""),
        ({"requested_token_type": TokenType.ACCESS_TOKEN}, "invalid_request", "mobile-device"),
        ({"actor_token": "x", "actor_token_type": TokenType.JWT}, "invalid_request", "actor"),
        ({"audience": "https://api.example"}, "invalid_target", ""),
        ({"resource": "https://api.example"}, "invalid_target", ""),
        ({"scope": "profile"}, "invalid_scope", ""),
        ({"device_id": ""}, "invalid_request", "device_id"),
        ({"device_name": ""}, "invalid_request", "device_name"),
        ({"device_platform": ""}, "invalid_request", "device_platform"),
        ({"device_id": "x" * 201}, "invalid_request", "too long"),
    ],
)
def test_malformed_exchanges_are_refused_before_the_token_is_checked(
    ex: Exchange, params: dict[str, str], error: str, fragment: str
) -> None:
    description = ex.refused(ex.exchange(ex.idp.token(now=ex.clock()), **params), error)
    assert fragment in description
    assert ex.idp.jwks_fetches == 0


def test_the_device_token_type_and_this_server_as_audience_may_be_named(ex: Exchange) -> None:
    response = ex.exchange(
        ex.idp.token(now=ex.clock()),
        requested_token_type=TokenType.MOBILE_DEVICE_TOKEN,
        audience=ISSUER,
    )
    assert response.status_code == 200, response.get_json()


# --- Concurrency --------------------------------------------------------------------------
def test_concurrent_first_exchanges_of_one_subject_make_one_user(ex: Exchange) -> None:
    tokens = [ex.idp.token("user-race", now=ex.clock()) for _ in range(4)]
    ex.signed_in("warm-up")  # keys cached: the race is in SQL, not at the provider
    barrier = threading.Barrier(len(tokens))
    app = ex.h.http.application

    def exchange(n: int) -> int:
        http = app.test_client()
        barrier.wait(timeout=10)
        response = http.post(
            "/oauth/token",
            data={
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "client_id": ex.app_client_id,
                "subject_token": tokens[n],
                "subject_token_type": TokenType.ACCESS_TOKEN,
                "device_id": f"race-{n}",
                "device_name": "phone",
                "device_platform": "ios",
            },
        )
        return response.status_code

    with ThreadPoolExecutor(len(tokens)) as pool:
        statuses = list(pool.map(exchange, range(len(tokens))))
    # Every one either succeeded or met a busy database (SQLite's lock wait): none made a
    # second user.
    assert 200 in statuses and set(statuses) <= {200, 503}, statuses
    graces = [u for u in ex.h.services.accounts.search_users("grace", 20)]
    race_users = {
        d.user_id
        for u in graces
        for d in ex.h.services.accounts.devices_of(u.user_id)
        if d.device_id.startswith("race-")
    }
    assert len(race_users) == 1
    assert len(graces) == 2  # warm-up's user and the race's


# --- Fetching a JWKS ----------------------------------------------------------------------
def test_a_jwks_fetch_takes_only_a_direct_bounded_200() -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/ok")
                self.end_headers()
                return
            body = b"{}" if self.path == "/ok" else b" " * (MAX_JWKS_BYTES + 10)
            self.send_response(200 if self.path != "/error" else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert fetch_url(f"{base}/ok", 2.0) == b"{}"
        for path in ("/redirect", "/big", "/error"):
            with pytest.raises(JwksUnavailable):
                fetch_url(base + path, 2.0)
        with pytest.raises(JwksUnavailable):
            fetch_url("file:///etc/passwd", 2.0)
    finally:
        server.shutdown()
        server.server_close()


def test_a_provider_that_hangs_is_a_503_within_the_jwks_timeout(
    backend: tuple[str, str | None, str], idp: IdentityProvider
) -> None:
    """A provider that accepts the connection and never answers holds the request no longer
    than AUTHSERVER_JWKS_TIMEOUT (here 0.3 s)."""
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never accepts nor answers
    hung = idp.trusted_issuers(jwks_uri=f"http://127.0.0.1:{silent.getsockname()[1]}/jwks")
    clock = Clock()
    services = _services(backend, clock, trusted_issuers=hung, jwks_timeout=0.3)
    try:
        app, _ = services.clients.create(
            "App", confidential=False, scope=None, kind=ClientKind.MOBILE_APP
        )
        ex = Exchange(
            Harness(create_app(services=services).test_client(), services, "", ""),
            idp,
            clock,
            app.client_id,
        )
        started = time.monotonic()
        ex.refused(ex.exchange(idp.token()), "temporarily_unavailable", 503)
        assert time.monotonic() - started < 2.0
    finally:
        services.close()
        silent.close()


def test_a_short_rsa_key_is_refused_even_when_published(ex: Exchange) -> None:
    weak = SigningKey(
        "weak", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024)
    )
    ex.idp.keys.append(weak)  # published before the first fetch
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):  # PyJWT warns the signer too
        token = ex.idp.token(now=ex.clock(), key=weak)
    assert "signature" in ex.refused(ex.exchange(token))
