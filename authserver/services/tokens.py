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
from authserver.domain.models import Actor, RefreshToken, SigningKey, TokenFamily
from authserver.domain.ports import KeyRepository, TokenRepository
from authserver.services.revocation import Revocations

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
# Leeway for clocks between this server and resource servers when retiring an old key.
CLOCK_LEEWAY = 60


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What the token endpoint returns (RFC 6749 §5.1)."""

    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    family_id: str
    user_id: str


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
        self._reload_at = 0.0

    def _ensure(self) -> list[SigningKey]:
        with self._lock:
            if not self._loaded or time.monotonic() >= self._reload_at:
                loaded = self._keys.all()
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


class TokenMinter:
    """Issues, refreshes and revokes grants; nothing else creates a token."""

    def __init__(
        self,
        config: Config,
        tokens: TokenRepository,
        keys: KeyRing,
        revocations: Revocations,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._keys = keys
        self._revocations = revocations
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
        return IssuedTokens(
            access,
            refresh,
            self._config.access_token_ttl,
            family.scope,
            family.id,
            family.user_id,
        )

    def refresh(
        self, refresh_token: str, client_id: str, scope: str | None, ip: str
    ) -> IssuedTokens:
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
            self._replayed(family, ip)
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
            self._replayed(family, ip)
        return IssuedTokens(
            access,
            new_refresh,
            self._config.access_token_ttl,
            granted,
            family.id,
            family.user_id,
        )

    def _replayed(self, family: TokenFamily, ip: str) -> NoReturn:
        """A spent refresh token came back: revoke its whole family (RFC 9700 §4.14.2)."""
        caller = Actor("client", family.client_id)
        self._revocations.revoke_family(family, "refresh_token_replay", caller, ip)
        raise errors.InvalidGrant("The refresh token was already used; the grant is revoked.")


class AccessTokenVerifier:
    """Checks an access token as a resource server does: signature, claims, expiry, deny-list."""

    def __init__(
        self,
        config: Config,
        keys: KeyRing,
        revocations: Revocations,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._keys = keys
        self._revocations = revocations
        self._clock = clock

    def decode(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed with a published key, expired or not."""
        try:
            header = jwt.get_unverified_header(token)
            # RFC 9068 §4: the typ must be at+jwt, so no other JWT passes as an access token.
            typ = str(header.get("typ", "")).lower()
            if typ not in ("at+jwt", "application/at+jwt") or header.get("alg") != ALGORITHM:
                return None
            key = self._keys.verification_key(str(header.get("kid", "")))
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._config.audience,
                issuer=self._config.issuer,
                # Expiry is decided below with the injected clock, like every other expiry.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iat", "jti", "sub", "client_id", "scope"],
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        if not isinstance(claims.get("exp"), int) or not isinstance(claims.get("jti"), str):
            return None
        return claims

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unexpired, unrevoked access token; else InvalidAccessToken."""
        claims = self.decode(token)
        if claims is None:
            raise errors.InvalidAccessToken()
        if self._clock() >= claims["exp"]:
            raise errors.InvalidAccessToken("The access token has expired.")
        if self._revocations.is_denied(claims["jti"]):
            raise errors.InvalidAccessToken("The access token was revoked.")
        return claims
