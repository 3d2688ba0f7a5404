"""The signing keys: created on first start, kept in SQL, shared by every process, rotated."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.domain.models import SigningKey
from authserver.domain.ports import KeyRepository

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
# How long a process trusts its copy of the key table: processes that started together and each
# stored a key converge on the same (oldest) signing key, and publish every key, within this.
KEY_RELOAD_SECONDS = 60.0
# How long the JWKS may be cached (its Cache-Control max-age). A new key is published this long
# before it signs anything, so a resource server's cached JWKS already holds it.
JWKS_MAX_AGE = 300
# A process may publish a new key up to KEY_RELOAD_SECONDS after it was stored; a cache that
# fetched the JWKS just before that keeps the old set for JWKS_MAX_AGE more.
KEY_ACTIVATION_DELAY = JWKS_MAX_AGE + int(KEY_RELOAD_SECONDS)
# How soon to try again after a reload failed.
KEY_RETRY_SECONDS = 5.0
# Leeway for clocks between this server and resource servers when retiring an old key.
CLOCK_LEEWAY = 60


def _thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint, used as the kid so it is stable and verifiable."""
    members = {k: public_jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).decode().rstrip("=")


def _public_jwk(private_pem: str) -> dict[str, Any]:
    private_key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))  # type: ignore[arg-type]
    return jwk


class KeyRing:
    """The signing keys: created on first start, kept in SQL, shared by every process.

    Rotation (RFC 7517 §5, `authserver keys rotate`) adds a key. Keys are ordered by creation;
    the newest key older than KEY_ACTIVATION_DELAY signs (the first key signs at once). A key
    that stopped signing stays in the JWKS until every token it signed has expired.
    """

    def __init__(
        self, keys: KeyRepository, clock: Callable[[], float], *, access_token_ttl: int
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._access_token_ttl = access_token_ttl
        self._lock = threading.Lock()
        self._loaded: list[SigningKey] = []
        self._public: dict[str, Any] = {}  # kid -> public key object, for verification
        self._private: dict[str, Any] = {}  # kid -> private key object, for signing
        self._reload_at = 0.0

    def _ensure(self) -> list[SigningKey]:
        with self._lock:
            if not self._loaded or time.monotonic() >= self._reload_at:
                try:
                    loaded = self._keys.all()
                except Exception:
                    if not self._loaded:
                        raise
                    # The key table is unreadable (SQL down): the keys we hold still sign and
                    # verify; a rotation waits for the next successful reload.
                    log.warning(
                        "signing keys not reloaded: SQL unavailable; keeping %d", len(self._loaded)
                    )
                    self._reload_at = time.monotonic() + KEY_RETRY_SECONDS
                    return self._loaded
                if not loaded:
                    # Processes starting together may each add a key; after the next reload all
                    # of them sign with the oldest (see `current`) and publish every one.
                    self._keys.add(self._new_key())
                    loaded = self._keys.all()
                self._public = {
                    key.kid: serialization.load_pem_private_key(
                        key.private_pem.encode(), password=None
                    ).public_key()
                    for key in loaded
                }
                self._loaded = loaded
                self._reload_at = time.monotonic() + KEY_RELOAD_SECONDS
            return self._loaded

    def reload(self) -> None:
        """Forget the cached key table (after a rotation in this process)."""
        with self._lock:
            self._reload_at = 0.0

    def _new_key(self) -> SigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return SigningKey(_thumbprint(_public_jwk(pem)), ALGORITHM, pem, self._clock())

    @staticmethod
    def _signer_index(keys: list[SigningKey], now: float) -> int:
        index = 0
        for i, key in enumerate(keys[1:], start=1):
            if key.created_at + KEY_ACTIVATION_DELAY <= now:
                index = i
        return index

    def _published(self, keys: list[SigningKey], now: float) -> list[SigningKey]:
        signer = self._signer_index(keys, now)
        published = []
        for i, key in enumerate(keys):
            # keys[i] stopped signing when keys[i + 1] became active; its last tokens expire
            # access_token_ttl later.
            retired_at = (
                keys[i + 1].created_at + KEY_ACTIVATION_DELAY if i < signer else float("inf")
            )
            if now < retired_at + self._access_token_ttl + CLOCK_LEEWAY:
                published.append(key)
        return published

    @property
    def current(self) -> SigningKey:
        """The key that signs now."""
        keys = self._ensure()
        return keys[self._signer_index(keys, self._clock())]

    def signer(self) -> tuple[str, str, Any]:
        """(kid, algorithm, private key object) of the key that signs now; the PEM is parsed
        once per key, not once per token."""
        key = self.current
        private = self._private.get(key.kid)
        if private is None:
            private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
            self._private[key.kid] = private
        return key.kid, key.algorithm, private

    def verification_key(self, kid: str) -> Any | None:
        """The public key of a published kid, or None."""
        keys = self._ensure()
        if not any(key.kid == kid for key in self._published(keys, self._clock())):
            return None
        return self._public.get(kid)

    def jwks(self) -> dict[str, Any]:
        """The JWK Set published at jwks_uri (RFC 7517 §5): signing, upcoming and retiring keys."""
        keys = []
        for key in self._published(self._ensure(), self._clock()):
            jwk = _public_jwk(key.private_pem)
            keys.append({**jwk, "kid": key.kid, "use": "sig", "alg": key.algorithm})
        return {"keys": keys}

    def rotate(self) -> tuple[SigningKey, list[str]]:
        """Add a new signing key and delete keys that are no longer published.

        The new key is published at once and signs after KEY_ACTIVATION_DELAY; returns it and
        the kids removed.
        """
        self._ensure()
        new = self._new_key()
        self._keys.add(new)
        now = self._clock()
        stored = self._keys.all()
        kept = {key.kid for key in self._published(stored, now)}
        removed = [key.kid for key in stored if key.kid not in kept]
        for kid in removed:
            self._keys.remove(kid)
        self.reload()
        return new, removed
