"""The one token minter: RFC 9068 JWT access tokens, opaque rotating refresh tokens, JWKS."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.config import Config
from authserver.domain import errors
from authserver.domain.codes import hash_secret, new_token
from authserver.domain.models import RefreshToken, SigningKey, TokenFamily
from authserver.domain.ports import KeyRepository, TokenRepository

ALGORITHM = "ES256"
# How long a process trusts its copy of the key table: processes that started together and each
# stored a key converge on the same (oldest) signing key, and publish every key, within this.
KEY_RELOAD_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What the token endpoint returns (RFC 6749 §5.1)."""

    access_token: str
    refresh_token: str
    expires_in: int
    scope: str


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
    """The signing keys: created on first start, kept in SQL, shared by every process."""

    def __init__(self, keys: KeyRepository, clock: Callable[[], float]) -> None:
        self._keys = keys
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: list[SigningKey] = []
        self._reload_at = 0.0

    def _ensure(self) -> list[SigningKey]:
        with self._lock:
            if not self._loaded or time.monotonic() >= self._reload_at:
                self._loaded = self._keys.all()
                if not self._loaded:
                    # Processes starting together may each add a key; after the next reload all
                    # of them sign with the oldest (see `current`) and publish every one.
                    self._keys.add(self._new_key())
                    self._loaded = self._keys.all()
                self._reload_at = time.monotonic() + KEY_RELOAD_SECONDS
            return self._loaded

    def _new_key(self) -> SigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return SigningKey(_thumbprint(_public_jwk(pem)), ALGORITHM, pem, self._clock())

    @property
    def current(self) -> SigningKey:
        """The signing key: the oldest stored one (keys are listed by creation time, kid)."""
        return self._ensure()[0]

    def jwks(self) -> dict[str, Any]:
        """The JWK Set published at jwks_uri (RFC 7517 §5)."""
        keys = []
        for key in self._ensure():
            jwk = _public_jwk(key.private_pem)
            keys.append({**jwk, "kid": key.kid, "use": "sig", "alg": key.algorithm})
        return {"keys": keys}


class TokenMinter:
    """Issues, refreshes and revokes grants; nothing else creates a token."""

    def __init__(
        self,
        config: Config,
        tokens: TokenRepository,
        keys: KeyRing,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._keys = keys
        self._clock = clock

    def _access_token(self, family: TokenFamily, now: float) -> tuple[str, str, float]:
        """An RFC 9068 access token: (jwt, jti, expires_at)."""
        jti = uuid.uuid4().hex
        expires_at = int(now) + self._config.access_token_ttl
        claims = {
            "iss": self._config.issuer,
            "sub": family.user_id,
            "aud": self._config.audience,
            "client_id": family.client_id,
            "iat": int(now),
            "exp": expires_at,
            "jti": jti,
            "scope": family.scope,
        }
        key = self._keys.current
        token = jwt.encode(
            claims,
            key.private_pem,
            algorithm=key.algorithm,
            headers={"typ": "at+jwt", "kid": key.kid},  # RFC 9068 §2.1
        )
        return token, jti, float(expires_at)

    def issue(self, family: TokenFamily) -> IssuedTokens:
        """Persist a new family with its first access and refresh token, in one transaction."""
        now = self._clock()
        access, jti, access_expires_at = self._access_token(family, now)
        refresh = new_token()
        self._tokens.issue(
            family,
            RefreshToken(hash_secret(refresh), family.id, now + self._config.refresh_token_ttl),
            jti,
            access_expires_at,
        )
        return IssuedTokens(access, refresh, self._config.access_token_ttl, family.scope)

    def refresh(self, refresh_token: str, client_id: str, scope: str | None) -> IssuedTokens:
        """RFC 6749 §6 with rotation; a replayed old token revokes its family (RFC 9700 §4.14.2)."""
        now = self._clock()
        old_hash = hash_secret(refresh_token)
        stored = self._tokens.refresh_token(old_hash)
        family = self._tokens.family(stored.family_id) if stored else None
        if stored is None or family is None or family.client_id != client_id:
            raise errors.InvalidGrant("The refresh token is invalid.")
        if family.revoked_at is not None:
            raise errors.InvalidGrant("The refresh token was revoked.")
        if stored.consumed_at is not None:
            self._replayed(family.id, now)
        if now >= stored.expires_at:
            raise errors.InvalidGrant("The refresh token has expired.")
        granted = family.scope
        if scope is not None and scope.strip():
            # RFC 6749 §6: the new scope may not include any scope not originally granted.
            if not set(scope.split()) <= set(family.scope.split()):
                raise errors.InvalidScope("The scope exceeds what was originally granted.")
            granted = " ".join(s for s in family.scope.split() if s in scope.split())
        narrowed = dataclasses.replace(family, scope=granted)
        access, jti, access_expires_at = self._access_token(narrowed, now)
        new_refresh = new_token()
        successor = RefreshToken(
            hash_secret(new_refresh), family.id, now + self._config.refresh_token_ttl
        )
        if not self._tokens.rotate(old_hash, successor, jti, access_expires_at, now):
            # Lost a race with another use of the same token, or the family was just revoked:
            # both mean this token is spent, so treat it as a replay.
            self._replayed(family.id, now)
        return IssuedTokens(access, new_refresh, self._config.access_token_ttl, granted)

    def _replayed(self, family_id: str, now: float) -> NoReturn:
        """A spent refresh token came back: revoke its whole family (RFC 9700 §4.14.2)."""
        self._tokens.revoke_family(family_id, now, "refresh_token_replay")
        raise errors.InvalidGrant("The refresh token was already used; the grant is revoked.")

    def revoke_family(self, family_id: str, reason: str) -> bool:
        return self._tokens.revoke_family(family_id, self._clock(), reason)
