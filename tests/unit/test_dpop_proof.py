"""One DPoP proof's own checks (RFC 9449 §4.3): what an attacker can forge is refused."""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.domain import errors
from authserver.oauth.dpop import access_token_hash, b64url, jwk_thumbprint, parse_proof
from qrlogin_client.dpop import DpopKey

URL = "https://login.example.com/oauth/token"


def check(proof: str, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"method": "POST", "url": URL, "now": time.time()}
    options |= {"max_age": 60.0, "leeway": 5.0} | kwargs
    return parse_proof(proof, **options)


def test_a_good_proof_names_its_keys_thumbprint() -> None:
    key = DpopKey()
    assert check(key.proof("POST", URL)).jkt == key.thumbprint


def test_rfc_7638_thumbprint_example() -> None:
    # RFC 7638 §3.1's example key and its thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
        "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65"
        "YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrd"
        "kt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnq"
        "DKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def forged(headers: dict[str, Any], claims: dict[str, Any] | None = None, key: Any = None) -> str:
    body = {"jti": "x", "htm": "POST", "htu": URL, "iat": int(time.time())} | (claims or {})
    return jwt.encode(body, key or ec.generate_private_key(ec.SECP256R1()), "ES256", headers)


@pytest.mark.parametrize("case", ["typ", "none", "hmac", "private_jwk", "no_jwk", "other_key"])
def test_forged_proofs_are_refused(case: str) -> None:
    key = DpopKey()
    jwk = key.public_jwk
    if case == "typ":
        proof = forged({"typ": "JWT", "jwk": jwk})
    elif case == "none":
        proof = jwt.encode({"jti": "x"}, None, "none", {"typ": "dpop+jwt", "jwk": jwk})
    elif case == "hmac":
        # The public key's text used as an HMAC secret (RFC 8725 §2.1).
        # (PyJWT refuses to make one, so it is made by hand.)
        header = b64url(json.dumps({"alg": "HS256", "typ": "dpop+jwt", "jwk": jwk}).encode())
        body = b64url(json.dumps({"jti": "x", "htm": "POST", "htu": URL}).encode())
        mac = hmac.new(json.dumps(jwk).encode(), f"{header}.{body}".encode(), "sha256")
        proof = f"{header}.{body}.{b64url(mac.digest())}"
    elif case == "private_jwk":
        private = ec.generate_private_key(ec.SECP256R1())
        full = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private))
        proof = forged({"typ": "dpop+jwt", "jwk": full}, key=private)
    elif case == "no_jwk":
        proof = forged({"typ": "dpop+jwt"})
    else:  # signed by a key other than the one in its header
        proof = forged({"typ": "dpop+jwt", "jwk": jwk})
    with pytest.raises(errors.InvalidDpopProof):
        check(proof)


def test_ath_binds_the_proof_to_one_access_token() -> None:
    key = DpopKey()
    proof = key.proof("POST", URL, access_token="token-a")
    assert check(proof, access_token="token-a").jkt == key.thumbprint
    with pytest.raises(errors.InvalidDpopProof, match="ath"):
        check(key.proof("POST", URL, access_token="token-a"), access_token="token-b")
    assert access_token_hash("token-a") != access_token_hash("token-b")


def test_htu_ignores_query_and_case_of_scheme_and_host() -> None:
    key = DpopKey()
    proof = key.proof("POST", "HTTPS://Login.Example.com/oauth/token")
    assert check(proof, url=URL + "?x=1").jkt == key.thumbprint
