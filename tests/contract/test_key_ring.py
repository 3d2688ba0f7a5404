"""Signing keys live in SQL and every process converges on one signing key."""

from __future__ import annotations

from cryptography.fernet import Fernet
from freezegun import freeze_time

from authserver.services.keys import KEY_RELOAD_SECONDS, KeyRing
from authserver.storage.key_encryption import KeyCipher
from authserver.storage.sql.database import Database
from authserver.storage.sql.keys import SqlKeys

CIPHER = KeyCipher([Fernet.generate_key()])


def test_processes_that_raced_on_first_start_converge_on_the_oldest_key(
    database_url: str,
) -> None:
    database = Database(database_url)
    database.upgrade()
    with freeze_time("2026-01-01 12:00:00") as frozen:
        first = KeyRing(SqlKeys(database, CIPHER), lambda: 2000.0, access_token_ttl=600)
        own = first.current  # this process found no key and stored its own
        # Meanwhile another process, which had also found the table empty, stored an older one.
        other = KeyRing(SqlKeys(database, CIPHER), lambda: 1000.0, access_token_ttl=600)._new_key()
        assert SqlKeys(database, CIPHER).add(other)
        assert first.current == own  # still its cached view...
        frozen.tick(KEY_RELOAD_SECONDS + 1)
        assert first.current.kid == other.kid  # ...then the oldest key, as every process uses
        assert {k["kid"] for k in first.jwks()["keys"]} == {own.kid, other.kid}
    database.dispose()


def test_the_key_is_created_once_and_kept(database_url: str) -> None:
    database = Database(database_url)
    database.upgrade()
    created = KeyRing(SqlKeys(database, CIPHER), lambda: 1.0, access_token_ttl=600).current
    restarted = KeyRing(SqlKeys(database, CIPHER), lambda: 2.0, access_token_ttl=600)
    assert restarted.current == created  # a restart keeps it
    assert len(SqlKeys(database, CIPHER).all()) == 1
    database.dispose()
