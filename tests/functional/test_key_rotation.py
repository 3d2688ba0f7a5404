"""Signing-key rotation (RFC 7517 JWKS): publish first, sign later, retire after the last token."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from freezegun import freeze_time

from authserver.bootstrap import key_cipher
from authserver.cli import main
from authserver.services.keys import CLOCK_LEEWAY, KEY_ACTIVATION_DELAY
from authserver.storage.sql.keys import SqlKeys
from tests.functional.harness import ISSUER, Harness
from tests.functional.lifecycle import introspection, login, me, refresh_login


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def published(h: Harness) -> list[str]:
    response = h.http.get("/oauth/jwks")
    assert response.status_code == 200
    return [key["kid"] for key in response.get_json()["keys"]]


def verifies_everywhere(h: Harness, token: str) -> bool:
    """Accepted by /api/v1/me, active at introspection, and valid against the public JWKS."""
    at_api = me(h, token).status_code == 200
    active = introspection(h, token)["active"] is True
    keys = {k["kid"]: k for k in h.http.get("/oauth/jwks").get_json()["keys"]}
    try:
        jwt.decode(
            token,
            jwt.PyJWK(keys[kid_of(token)]),
            algorithms=["ES256"],
            audience=ISSUER,
            options={"verify_exp": False},
        )
        with_jwks = True
    except (KeyError, jwt.PyJWTError):
        with_jwks = False
    assert at_api == active == with_jwks, (at_api, active, with_jwks)
    return bool(at_api)


def test_rotation_publishes_then_signs_then_retires(harness: Harness) -> None:
    h = harness
    ttl = h.services.config.access_token_ttl
    with freeze_time("2030-01-01 12:00:00") as frozen:
        before = login(h)
        old_kid = kid_of(before.access_token)
        assert published(h) == [old_kid]

        frozen.tick(1)
        new, removed = h.services.keys.rotate()
        assert removed == []
        assert new.kid != old_kid
        assert published(h) == [old_kid, new.kid]  # published at once, before it signs

        frozen.tick(KEY_ACTIVATION_DELAY - 1)
        still_old = refresh_login(h, before)
        assert kid_of(still_old.access_token) == old_kid

        frozen.tick(1)  # the new key is now older than any cached JWKS: it signs
        signed_new = refresh_login(h, still_old)
        assert kid_of(signed_new.access_token) == new.kid
        assert kid_of(login(h, phone=before.phone).access_token) == new.kid
        assert verifies_everywhere(h, still_old.access_token)  # signed by the old key
        assert verifies_everywhere(h, signed_new.access_token)
        assert published(h) == [old_kid, new.kid]

        # The old key's last token expires ttl after it stopped signing; plus clock leeway.
        frozen.tick(ttl + CLOCK_LEEWAY - 1)
        assert published(h) == [old_kid, new.kid]
        assert h.services.keys.verification_key(old_kid) is not None
        frozen.tick(1)
        assert published(h) == [new.kid]
        assert h.services.keys.verification_key(old_kid) is None
        assert not verifies_everywhere(h, still_old.access_token)  # expired anyway, and unknown

        # The next rotation deletes the retired key from SQL.
        newer, removed = h.services.keys.rotate()
        assert removed == [old_kid]
        stored = SqlKeys(h.services.database, key_cipher(h.services.config)).all()
        assert [k.kid for k in stored] == [new.kid, newer.kid]
        assert published(h) == [new.kid, newer.kid]
        assert kid_of(refresh_login(h, signed_new).access_token) == new.kid


def test_a_token_with_an_unpublished_kid_is_refused(harness: Harness) -> None:
    h = harness
    session = login(h)
    header = jwt.get_unverified_header(session.access_token)
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    key = h.services.keys.current
    for kid in ("unknown", ""):
        forged = jwt.encode(
            claims, key.private_pem, algorithm="ES256", headers={**header, "kid": kid}
        )
        assert me(h, forged).status_code == 401
        assert introspection(h, forged) == {"active": False}
    # Right key, but not an access token (RFC 9068 typ) or another algorithm: refused too.
    for bad_header in ({**header, "typ": "JWT"}, {"kid": header["kid"]}):
        other = jwt.encode(claims, key.private_pem, algorithm="ES256", headers=bad_header)
        assert me(h, other).status_code == 401
    assert me(h, session.access_token).status_code == 200


def test_the_resource_challenges_without_and_with_a_bad_token(harness: Harness) -> None:
    h = harness
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
        bare = h.http.get("/api/v1/me", headers=headers)
        assert bare.status_code == 401, headers
        assert bare.headers.getlist("WWW-Authenticate") == ['Bearer realm="api"']
    bad = h.http.get("/api/v1/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code == 401 and bad.get_json()["error"] == "invalid_token"
    challenge = bad.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api", error="invalid_token"')
    with freeze_time("2030-01-01 12:00:00") as frozen:
        session = login(h)
        assert me(h, session.access_token).status_code == 200
        frozen.tick(h.services.config.access_token_ttl)  # expiry by the injected clock
        expired = me(h, session.access_token)
        assert expired.status_code == 401 and expired.get_json()["error"] == "invalid_token"


def run_cli(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, object] | None, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_cli_keys_rotate(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("AUTHSERVER_REDIS_URL", raising=False)
    code, _, err = run_cli(["keys", "rotate"], monkeypatch, capsys)
    assert code == 2 and "authserver db upgrade" in json.loads(err)["error"]

    assert run_cli(["db", "upgrade"], monkeypatch, capsys)[0] == 0
    with freeze_time("2030-01-01 12:00:00", tick=True):  # the two keys it stores differ in age
        code, first, _ = run_cli(["keys", "rotate"], monkeypatch, capsys)
    assert code == 0 and first is not None
    assert set(first) == {"kid", "signs_from", "published", "removed"}
    signs_from = datetime.fromisoformat(str(first["signs_from"]))
    expected = datetime(2030, 1, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=KEY_ACTIVATION_DELAY)
    assert 0 <= (signs_from - expected).total_seconds() < 10
    # The key the server had (created now, as none existed) and the new one are both published.
    assert isinstance(first["published"], list) and len(first["published"]) == 2
    assert first["published"][1] == first["kid"] and first["removed"] == []

    with freeze_time("2030-01-02 12:00:00"):  # a day later: the first key is long retired
        code, second, _ = run_cli(["keys", "rotate"], monkeypatch, capsys)
    assert code == 0 and second is not None
    assert second["published"] == [first["kid"], second["kid"]]
    assert second["removed"] == [first["published"][0]]
