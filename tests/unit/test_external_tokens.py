"""AUTHSERVER_TRUSTED_ISSUERS is checked at start-up; the key cache fetches as little as it can."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authserver.config import ASYMMETRIC_ALGORITHMS, Config, ConfigError, TrustedIssuer
from authserver.domain import errors
from authserver.services.external_tokens import (
    MAX_AGE,
    REFETCH_INTERVAL,
    STALE_LIMIT,
    JwksUnavailable,
    KeySet,
    parse_jwks,
)

ENTRY = {"issuer": "https://id.example.com", "jwks_uri": "https://id.example.com/jwks"}


def trusted(*entries: Any) -> tuple[TrustedIssuer, ...]:
    return Config.from_env(
        {"AUTHSERVER_TRUSTED_ISSUERS": json.dumps(list(entries))}
    ).trusted_issuer_list


def test_off_by_default() -> None:
    assert Config.from_env({}).trusted_issuer_list == ()


def test_a_list_of_issuers_with_one_or_several_audiences() -> None:
    parsed = trusted(
        {**ENTRY, "audience": "app"},
        {
            "issuer": "http://localhost:9000/realms/x",
            "jwks_uri": "http://127.0.0.1:9000/certs",
            "audience": ["a", "b"],
            "algorithms": ["ES256"],
        },
    )
    assert parsed == (
        TrustedIssuer(ENTRY["issuer"], ENTRY["jwks_uri"], ("app",), ASYMMETRIC_ALGORITHMS),
        TrustedIssuer(
            "http://localhost:9000/realms/x", "http://127.0.0.1:9000/certs", ("a", "b"), ("ES256",)
        ),
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "must be JSON"),
        ('{"issuer": "x"}', "JSON list of objects"),
        ('["x"]', "[0] must be an object"),
        (json.dumps([{**ENTRY}]), "'audience' is required"),
        (json.dumps([{"issuer": ENTRY["issuer"], "audience": "a"}]), "'jwks_uri' is required"),
        (json.dumps([{**ENTRY, "audience": "a", "extra": 1}]), "unknown key(s) extra"),
        (json.dumps([{**ENTRY, "audience": ""}]), "'audience' must be"),
        (json.dumps([{**ENTRY, "audience": []}]), "'audience' must be"),
        (json.dumps([{**ENTRY, "audience": [1]}]), "'audience' must be"),
        (json.dumps([{**ENTRY, "issuer": "http://id.example.com", "audience": "a"}]), "https"),
        (json.dumps([{**ENTRY, "jwks_uri": "file:///etc/keys", "audience": "a"}]), "https"),
        (json.dumps([{**ENTRY, "jwks_uri": "/jwks", "audience": "a"}]), "https"),
        (json.dumps([{**ENTRY, "audience": "a", "algorithms": ["HS256"]}]), "'algorithms'"),
        (json.dumps([{**ENTRY, "audience": "a", "algorithms": ["none"]}]), "'algorithms'"),
        (json.dumps([{**ENTRY, "audience": "a", "algorithms": []}]), "'algorithms'"),
        (json.dumps([{**ENTRY, "audience": "a"}, {**ENTRY, "audience": "b"}]), "listed twice"),
    ],
)
def test_a_wrong_setting_fails_at_start_naming_it(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match="AUTHSERVER_TRUSTED_ISSUERS") as raised:
        Config.from_env({"AUTHSERVER_TRUSTED_ISSUERS": raw})
    assert message in str(raised.value)


def test_the_jwks_timeout_is_positive() -> None:
    with pytest.raises(ConfigError, match="AUTHSERVER_JWKS_TIMEOUT"):
        Config.from_env({"AUTHSERVER_JWKS_TIMEOUT": "0"})


# --- The key cache ------------------------------------------------------------------------
RSA_KEY = {"kty": "RSA", "kid": "k1", "n": "xx", "e": "AQAB"}


class Provider:
    """A fake JWKS endpoint and clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.keys: list[dict[str, Any]] = [RSA_KEY]
        self.down = False
        self.fetches = 0

    def fetch(self, url: str, timeout: float) -> bytes:
        assert (url, timeout) == ("https://id.example.com/jwks", 2.0)
        self.fetches += 1
        if self.down:
            raise JwksUnavailable("connection refused")
        return json.dumps({"keys": self.keys}).encode()

    def key_set(self) -> KeySet:
        return KeySet("https://id.example.com/jwks", self.fetch, 2.0, lambda: self.now)


def test_keys_are_fetched_once_and_again_when_old() -> None:
    p = Provider()
    keys = p.key_set()
    assert keys.key("k1") == RSA_KEY
    assert keys.key("k1") == RSA_KEY
    assert p.fetches == 1
    p.now += MAX_AGE + 1
    keys.key("k1")
    assert p.fetches == 2


def test_an_unknown_kid_fetches_at_most_once_per_interval() -> None:
    p = Provider()
    keys = p.key_set()
    keys.key("k1")
    p.now += REFETCH_INTERVAL + 1
    p.keys = [RSA_KEY, {**RSA_KEY, "kid": "k2"}]  # rotated
    assert keys.key("k2")["kid"] == "k2"
    assert p.fetches == 2
    for n in range(10):
        with pytest.raises(errors.InvalidGrant):
            keys.key(f"random-{n}")
    assert p.fetches == 2
    p.now += REFETCH_INTERVAL
    with pytest.raises(errors.InvalidGrant):
        keys.key("random")
    assert p.fetches == 3


def test_an_unreachable_provider() -> None:
    p = Provider()
    p.down = True
    keys = p.key_set()
    with pytest.raises(errors.TemporarilyUnavailable) as raised:
        keys.key("k1")
    assert raised.value.retry_after == REFETCH_INTERVAL
    with pytest.raises(errors.TemporarilyUnavailable) as raised:  # not asked again yet
        keys.key("k1")
    assert p.fetches == 1
    assert 1 <= raised.value.retry_after <= REFETCH_INTERVAL
    p.down = False
    p.now += REFETCH_INTERVAL
    assert keys.key("k1") == RSA_KEY
    # Down again: the last keys keep working up to STALE_LIMIT, then nothing does.
    p.down = True
    p.now += MAX_AGE + 1
    assert keys.key("k1") == RSA_KEY
    p.now += STALE_LIMIT
    with pytest.raises(errors.TemporarilyUnavailable):
        keys.key("k1")


def test_a_token_without_kid_uses_the_only_key() -> None:
    p = Provider()
    assert p.key_set().key("") == RSA_KEY
    p.keys = [RSA_KEY, {**RSA_KEY, "kid": "k2"}]
    with pytest.raises(errors.InvalidGrant):
        p.key_set().key("")


def test_only_public_signing_keys_are_kept() -> None:
    body = {
        "keys": [
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {**RSA_KEY, "kid": "enc", "use": "enc"},
            {**RSA_KEY, "kid": "sig", "use": "sig"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "x", "y": "y"},
            "junk",
        ]
    }
    assert set(parse_jwks(json.dumps(body).encode())) == {"sig", "ec"}
    for bad in (b"not json", b"[]", b'{"keys": {}}'):
        with pytest.raises(JwksUnavailable):
            parse_jwks(bad)
