"""A test identity provider: its own key pairs, a JWKS served over real HTTP, and tokens.

It stands for the team's existing sign-in system in the token exchange tests (RFC 8693). The
JWKS is served by a local HTTP server thread; the provider can rotate its keys, go down
(connections refused, or HTTP 503) and counts how often its JWKS was fetched.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

AUDIENCE = "mobile-app"


@dataclass
class SigningKey:
    """A key pair of the provider and the JWS algorithm it signs with."""

    kid: str
    algorithm: str
    private: PrivateKeyTypes

    @classmethod
    def rsa(cls, kid: str | None = None) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid or f"rsa-{uuid.uuid4().hex[:8]}", "RS256", key)

    @classmethod
    def ec(cls, kid: str | None = None) -> SigningKey:
        return cls(
            kid or f"ec-{uuid.uuid4().hex[:8]}", "ES256", ec.generate_private_key(ec.SECP256R1())
        )

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))  # type: ignore[union-attr]
        jwk.update(kid=self.kid, use="sig", alg=self.algorithm)
        return dict(jwk)


@dataclass
class IdentityProvider:
    """The provider's state; `serve()` publishes its JWKS at `jwks_uri`."""

    issuer: str = "http://127.0.0.1"
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.rsa(), SigningKey.ec()])
    down: bool = False  # answer 503 to every JWKS request
    jwks_fetches: int = 0
    jwks_uri: str = ""

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def rotate(self) -> SigningKey:
        """Publish a new key (and keep the old ones); tokens signed with it carry a new kid."""
        new = SigningKey.rsa()
        self.keys.append(new)
        return new

    def token(
        self,
        sub: str = "user-1",
        *,
        key: SigningKey | None = None,
        now: float | None = None,
        lifetime: float = 300,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed token of this provider; claims given as None are left out."""
        key = key or self.keys[0]
        issued = int(now if now is not None else time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + int(lifetime),
            "name": "Grace Hopper",
            "email": "grace@example.com",
            "email_verified": True,
            "preferred_username": "grace",
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload,
            key.private,
            algorithm=key.algorithm,
            headers={"kid": key.kid, **(headers or {})},
        )

    def trusted_issuers(self, **extra: Any) -> str:
        """AUTHSERVER_TRUSTED_ISSUERS trusting this provider."""
        entry = {"issuer": self.issuer, "jwks_uri": self.jwks_uri, "audience": AUDIENCE, **extra}
        return json.dumps([entry])


@contextmanager
def serve(provider: IdentityProvider) -> Iterator[IdentityProvider]:
    """Serve `provider`'s JWKS on a free loopback port until the block ends; its issuer is
    that server's base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/jwks":
                self.send_error(404)
                return
            provider.jwks_fetches += 1
            if provider.down:
                self.send_error(503)
                return
            body = json.dumps(provider.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet test output

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    provider.issuer, provider.jwks_uri = base, f"{base}/jwks"
    thread = threading.Thread(target=server.serve_forever, name="test-idp", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
