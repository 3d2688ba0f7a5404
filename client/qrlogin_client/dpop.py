"""A DPoP key (RFC 9449) for the reference clients: it signs one proof per request.

The private key stays with the client (in its 0600 state file when it must survive a restart);
the server only ever sees the public JWK in each proof's header and binds codes and tokens to
its thumbprint, so a stolen device code, refresh token, access token or device token is
worthless without this key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"  # P-256: what WebCrypto and every phone platform's keystore offer


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DpopKey:
    """An EC P-256 key pair that makes DPoP proofs."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._private = private_key or ec.generate_private_key(ec.SECP256R1())
        self.public_jwk: dict[str, str] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(self._private.public_key())
        )

    @property
    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint: the `jkt` tokens bound to this key carry."""
        members = {k: self.public_jwk[k] for k in ("crv", "kty", "x", "y")}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
        return _b64url(hashlib.sha256(canonical.encode()).digest())

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
    ) -> str:
        """A fresh proof for one request (RFC 9449 §4.2): a new jti every time."""
        claims: dict[str, Any] = {
            "jti": uuid.uuid4().hex,
            "htm": method.upper(),
            "htu": url.split("?", 1)[0].split("#", 1)[0],
            "iat": int(time.time() if iat is None else iat),
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["ath"] = _b64url(digest)
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(
            claims,
            self._private,
            algorithm=ALGORITHM,
            headers={"typ": "dpop+jwt", "jwk": self.public_jwk},
        )

    def to_pem(self) -> str:
        """The private key as PKCS#8 PEM, for a state file only its owner can read."""
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @classmethod
    def from_pem(cls, pem: str) -> DpopKey:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the saved DPoP key is not an EC key")
        return cls(key)
