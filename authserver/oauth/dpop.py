"""DPoP proofs (RFC 9449): parse and check one proof JWT, and the JWK thumbprint it binds to.

Only the checks a single proof can answer live here (§4.3 steps 1-10 except replay and nonce
freshness, which need shared state: services/dpop.py does those). The proof's key is the
public JWK in its own header; the signature proves the caller holds the private half.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt

from authserver.config import ASYMMETRIC_ALGORITHMS
from authserver.domain import errors

PROOF_TYPE = "dpop+jwt"  # RFC 9449 §4.2
MAX_PROOF_BYTES = 8192  # a proof is a few hundred bytes; an RSA-4096 JWK stays well under this
# RFC 7638 §3.2: the members of each key type that its thumbprint hashes, in this order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK: the `jkt` of RFC 9449 §6.1."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(name), str) for name in members):
        raise errors.InvalidDpopProof("The DPoP proof's key is not a supported public JWK.")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url SHA-256 of the access token's ASCII bytes."""
    return b64url(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def target_uri(url: str) -> str:
    """RFC 9449 §4.3 step 9: the HTTP target URI without query and fragment, compared after
    normalising scheme and host case (RFC 3986 §6.2.2.1)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


@dataclass(frozen=True, slots=True)
class Proof:
    """A proof whose signature and claims checked out; `jkt` names the key that signed it."""

    jkt: str
    jti: str
    iat: float
    nonce: str | None


def parse_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    max_age: float,
    leeway: float,
    access_token: str | None = None,
) -> Proof:
    """Check one DPoP proof (RFC 9449 §4.3) for a request of `method` to `url`.

    Raises InvalidDpopProof naming what is wrong. `access_token`, when the proof goes with one
    (§7), must match its `ath`.
    """
    if len(proof) > MAX_PROOF_BYTES or proof.count(".") != 2:
        raise errors.InvalidDpopProof("The DPoP header is not one JWT.")
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError:
        raise errors.InvalidDpopProof("The DPoP proof is not a well-formed JWT.") from None
    # §4.3 steps 4-6: the type, an asymmetric algorithm (never none, never HMAC), a public key.
    if header.get("typ") != PROOF_TYPE:
        raise errors.InvalidDpopProof("The DPoP proof's typ must be dpop+jwt.")
    algorithm = header.get("alg")
    if algorithm not in ASYMMETRIC_ALGORITHMS:
        raise errors.InvalidDpopProof("The DPoP proof's alg is not supported.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & jwk.keys():
        raise errors.InvalidDpopProof("The DPoP proof must carry a public jwk in its header.")
    jkt = jwk_thumbprint(jwk)
    try:
        key = jwt.PyJWK(jwk, algorithm=str(algorithm))
        claims: dict[str, Any] = jwt.decode(
            proof,
            key.key,
            algorithms=[str(algorithm)],
            # Times are decided below with the injected clock, like every other expiry.
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise errors.InvalidDpopProof("The DPoP proof's signature does not verify.") from None
    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise errors.InvalidDpopProof("The DPoP proof needs a jti.")
    if htm != method:
        raise errors.InvalidDpopProof("The DPoP proof's htm is not this request's method.")
    if not isinstance(htu, str) or target_uri(htu) != target_uri(url):
        raise errors.InvalidDpopProof("The DPoP proof's htu is not this request's URI.")
    # §4.3 step 11 and §11.1: a proof is fresh for a short window, with a little clock skew.
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise errors.InvalidDpopProof("The DPoP proof needs a numeric iat.")
    if iat > now + leeway or iat < now - max_age - leeway:
        raise errors.InvalidDpopProof("The DPoP proof is too old or from the future.")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or ath != access_token_hash(access_token):
            raise errors.InvalidDpopProof("The DPoP proof's ath does not match the access token.")
    nonce = claims.get("nonce")
    return Proof(jkt, jti, float(iat), nonce if isinstance(nonce, str) else None)
