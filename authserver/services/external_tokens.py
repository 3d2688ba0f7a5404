"""Tokens of trusted identity providers (RFC 8693 subject tokens): their keys, and the checks.

Each configured identity provider (AUTHSERVER_TRUSTED_ISSUERS) has a key set fetched from its
JWKS URI (RFC 7517) and cached; a token signed with a key id the cache does not know makes it
fetch again (the provider rotated its keys), at most once per REFETCH_INTERVAL, so made-up key
ids cannot make this server hammer the provider. Every fetch is bounded in time and size; a
provider that cannot be reached while its keys are needed is a 503 (the client retries).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import jwt

from authserver.config import Config, TrustedIssuer
from authserver.domain import errors

log = logging.getLogger(__name__)

# Clock skew tolerated on exp, nbf and iat (RFC 7519 §4.1.4: "a small leeway").
LEEWAY = 30.0
# Unknown key ids fetch the JWKS again at most this often per provider, failed fetches included.
REFETCH_INTERVAL = 10.0
# A key set older than this is fetched again when next used ...
MAX_AGE = 3600.0
# ... but while the provider is unreachable its last keys keep working up to this age.
STALE_LIMIT = 24 * 3600.0
MAX_JWKS_BYTES = 256 * 1024
MAX_SUBJECT_LENGTH = 255  # OIDC Core §2: sub is at most 255 ASCII characters

Fetch = Callable[[str, float], bytes]


class JwksUnavailable(Exception):
    """The JWKS could not be fetched or read (network, status, size, JSON)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The configured JWKS URI is the only place keys come from: a redirect is a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def fetch_url(url: str, timeout: float) -> bytes:
    """GET `url`: 200 and at most MAX_JWKS_BYTES, all of it within about 2 x `timeout`."""
    if urlsplit(url).scheme not in ("https", "http"):  # config.py allows http for loopback only
        raise JwksUnavailable("the JWKS URI is not http(s)")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        # `timeout` bounds the connect and each read; the deadline bounds a trickling body.
        with _opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise JwksUnavailable(f"HTTP {response.status}")
            body = b""
            while chunk := response.read(16384):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksUnavailable("the JWKS is too large")
                if time.monotonic() > deadline + timeout:
                    raise JwksUnavailable("the JWKS arrived too slowly")
            return body
    except (OSError, urllib.error.URLError, ValueError) as e:
        raise JwksUnavailable(f"{type(e).__name__}: {e}") from None


def parse_jwks(body: bytes) -> dict[str, dict[str, Any]]:
    """The signing keys of a JWKS document by kid ("" for one without), unusable ones left out."""
    try:
        document = json.loads(body)
    except ValueError as e:
        raise JwksUnavailable(f"the JWKS is not JSON: {e}") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise JwksUnavailable("the JWKS has no 'keys' list")
    usable: dict[str, dict[str, Any]] = {}
    for key in keys:
        # RFC 7517 §4.2: a key meant for encryption never verifies a signature.
        if not isinstance(key, dict) or key.get("use", "sig") != "sig":
            continue
        if key.get("kty") not in ("RSA", "EC", "OKP"):  # public-key types only, never "oct"
            continue
        kid = key.get("kid", "")
        if isinstance(kid, str):
            usable.setdefault(kid, key)
    return usable


class KeySet:
    """One identity provider's signing keys, cached and refreshed as described above."""

    def __init__(
        self, jwks_uri: str, fetch: Fetch, timeout: float, clock: Callable[[], float]
    ) -> None:
        self._uri = jwks_uri
        self._fetch = fetch
        self._timeout = timeout
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None  # the last successful fetch
        self._attempted_at: float | None = None  # the last fetch, successful or not
        self._failed = False  # whether the last fetch failed
        self._lock = threading.Lock()  # one fetch at a time per provider

    def key(self, kid: str) -> dict[str, Any]:
        """The JWK named `kid`, fetching the set when it is unknown or old (rate-limited).

        Raises InvalidGrant for a key the provider does not publish, TemporarilyUnavailable
        when the provider must be asked and cannot be reached.
        """
        found, fresh = self._cached(kid)
        if found is not None and fresh:
            return found
        if not self._lock.acquire(timeout=self._timeout):
            raise errors.TemporarilyUnavailable(1, "The identity provider's keys are loading.")
        try:
            found, fresh = self._cached(kid)  # another thread may have fetched meanwhile
            if found is not None and fresh:
                return found
            now = self._clock()
            wait = (
                0.0 if self._attempted_at is None else self._attempted_at + REFETCH_INTERVAL - now
            )
            if wait <= 0:
                self._refresh(now)
                found, _ = self._cached(kid)
                wait = REFETCH_INTERVAL
            if found is None and self._failed:
                # Unknown, and the provider that would know cannot be asked: not the token's
                # fault. (A known key of a set past MAX_AGE keeps working meanwhile.)
                raise errors.TemporarilyUnavailable(
                    max(1, math.ceil(wait)), "The identity provider cannot be reached."
                )
        finally:
            self._lock.release()
        if found is None:
            raise errors.InvalidGrant(
                "The subject token is signed with a key its issuer does not publish."
            )
        return found

    def _cached(self, kid: str) -> tuple[dict[str, Any] | None, bool]:
        """(the cached key, whether the set is fresh); a stale set past STALE_LIMIT has none."""
        if self._fetched_at is None:
            return None, False
        age = self._clock() - self._fetched_at
        if age > STALE_LIMIT:
            return None, False
        key = self._keys.get(kid)
        if key is None and not kid and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # no kid: the provider's only key
        return key, age <= MAX_AGE

    def _refresh(self, now: float) -> None:
        """Fetch the set; on failure keep the last one (up to STALE_LIMIT) and say so."""
        self._attempted_at = now
        try:
            keys = parse_jwks(self._fetch(self._uri, self._timeout))
        except JwksUnavailable as e:
            self._failed = True
            log.warning("JWKS of %s could not be fetched: %s", self._uri, e)
            return
        self._keys, self._fetched_at, self._failed = keys, now, False


@dataclass(frozen=True, slots=True)
class ExternalSubject:
    """Who a verified subject token is about, and what its issuer says of them."""

    issuer: str
    subject: str
    claims: Mapping[str, Any]


class ExternalTokenVerifier:
    """Checks a trusted identity provider's JWT: signature, iss, aud, exp, nbf (RFC 7519)."""

    def __init__(
        self, config: Config, clock: Callable[[], float], fetch: Fetch = fetch_url
    ) -> None:
        self._issuers = {trusted.issuer: trusted for trusted in config.trusted_issuer_list}
        self._key_sets = {
            trusted.issuer: KeySet(trusted.jwks_uri, fetch, config.jwks_timeout, clock)
            for trusted in config.trusted_issuer_list
        }
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._issuers)

    def verify(self, token: str, *, id_token: bool) -> ExternalSubject:
        """The subject of `token`, or InvalidGrant saying what is wrong with it.

        The issuer is looked up before anything is fetched: only configured JWKS URIs are ever
        requested, whatever a token says.
        """
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise errors.InvalidGrant("The subject token is not a signed JWT.") from None
        trusted = self._issuers.get(str(unverified.get("iss", "")))
        if trusted is None:
            raise errors.InvalidGrant("The subject token's issuer is not trusted here.")
        algorithm = header.get("alg")
        # RFC 8725 §3.1: only the configured asymmetric algorithms; never "none" or HS*.
        if algorithm not in trusted.algorithms:
            raise errors.InvalidGrant(f"The algorithm {algorithm!r} is not accepted.")
        if "crit" in header:  # RFC 7515 §4.1.11: no extension is understood here
            raise errors.InvalidGrant("The subject token has critical header parameters.")
        # RFC 8725 §3.11: an access token (RFC 9068 typ at+jwt) is not an ID token.
        if id_token and str(header.get("typ", "")).lower() in ("at+jwt", "application/at+jwt"):
            raise errors.InvalidGrant("The subject token is an access token, not an ID token.")
        kid = header.get("kid", "")
        if not isinstance(kid, str):
            raise errors.InvalidGrant("The subject token's kid is not a string.")
        jwk = self._key_sets[trusted.issuer].key(kid)
        claims = self._signed_claims(token, jwk, algorithm)
        self._check_claims(claims, trusted)
        return ExternalSubject(trusted.issuer, claims["sub"], claims)

    @staticmethod
    def _signed_claims(token: str, jwk: dict[str, Any], algorithm: str) -> dict[str, Any]:
        # RFC 8725 §3.1: the key's own alg, when it names one, must be the token's.
        if jwk.get("alg", algorithm) != algorithm:
            raise errors.InvalidGrant("The subject token's algorithm does not match its key.")
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithm)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                # The claims are checked below against the injected clock.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise errors.InvalidGrant("The subject token's signature is invalid.") from None
        return claims

    def _check_claims(self, claims: Mapping[str, Any], trusted: TrustedIssuer) -> None:
        now = self._clock()
        if claims.get("iss") != trusted.issuer:  # RFC 7519 §4.1.1, compared exactly
            raise errors.InvalidGrant("The subject token's issuer is not trusted here.")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not set(trusted.audiences) & {
            a for a in audiences if isinstance(a, str)
        }:
            raise errors.InvalidGrant("The subject token is not meant for this server (aud).")
        expires = claims.get("exp")
        if not _is_time(expires):
            raise errors.InvalidGrant("The subject token has no expiry (exp).")
        if now >= expires + LEEWAY:
            raise errors.InvalidGrant("The subject token has expired.")
        not_before = claims.get("nbf")
        if not_before is not None and (not _is_time(not_before) or now < not_before - LEEWAY):
            raise errors.InvalidGrant("The subject token is not valid yet (nbf).")
        issued = claims.get("iat")
        if issued is not None and (not _is_time(issued) or now < issued - LEEWAY):
            raise errors.InvalidGrant("The subject token was issued in the future (iat).")
        subject = claims.get("sub")
        if (
            not isinstance(subject, str)
            or not subject
            or len(subject) > MAX_SUBJECT_LENGTH
            or not subject.isprintable()
        ):
            raise errors.InvalidGrant("The subject token has no usable subject (sub).")


def _is_time(value: object) -> TypeGuard[float]:
    """A NumericDate (RFC 7519 §2): a finite number, not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
