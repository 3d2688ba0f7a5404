"""Private signing keys are encrypted at rest: a database dump reveals no private key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from authserver import cli
from authserver.bootstrap import build_services
from authserver.config import Config
from authserver.storage.key_encryption import KeyCipher, KeyDecryptionError
from authserver.storage.sql.keys import SqlKeys
from tests.functional.harness import ISSUER

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def config(url: str, keys: str) -> Config:
    return Config.from_env({}, database_url=url, issuer=ISSUER, key_encryption_keys=keys)


def dumped(url: str) -> list[str]:
    """What a database backup holds in the key table."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [str(r[0]) for r in conn.execute(sa.text("SELECT private_pem FROM signing_keys"))]
    engine.dispose()
    return rows


def test_a_dump_holds_no_private_key_and_a_wrong_kek_opens_none(database_url: str) -> None:
    services = build_services(config(database_url, OLD))
    services.database.upgrade()
    assert services.keys.jwks()["keys"]  # the first signing key is made and stored
    services.close()
    stored = dumped(database_url)
    assert stored and all(s.startswith("fernet:") and "PRIVATE KEY" not in s for s in stored)

    stranger = build_services(config(database_url, NEW))
    with pytest.raises(KeyDecryptionError):
        stranger.keys.jwks()
    stranger.close()


def test_kek_rotation_with_reencrypt(database_url: str, monkeypatch: Any, capsys: Any) -> None:
    services = build_services(config(database_url, OLD))
    services.database.upgrade()
    kid = services.keys.jwks()["keys"][0]["kid"]
    services.close()
    # The operator asks for a new KEK (a fresh one each time) and puts it first.
    assert cli.main(["keys", "new-kek"]) == 0
    new = json.loads(capsys.readouterr().out)["key_encryption_key"]
    assert cli.main(["keys", "new-kek"]) == 0
    assert json.loads(capsys.readouterr().out)["key_encryption_key"] != new
    monkeypatch.setenv("AUTHSERVER_DATABASE_URL", database_url)
    monkeypatch.setenv("AUTHSERVER_ISSUER", ISSUER)
    monkeypatch.setenv("AUTHSERVER_KEY_ENCRYPTION_KEYS", f"{new},{OLD}")
    assert cli.main(["keys", "reencrypt"]) == 0
    assert json.loads(capsys.readouterr().out) == {"reencrypted": 1}
    # The old KEK can go: the new one alone opens every key.
    rotated = build_services(config(database_url, new))
    assert rotated.keys.jwks()["keys"][0]["kid"] == kid
    rotated.close()
    monkeypatch.setenv("AUTHSERVER_KEY_ENCRYPTION_KEYS", OLD)  # the old one alone: refused
    assert cli.main(["keys", "rotate"]) == 2
    error = json.loads(capsys.readouterr().err)["error"]
    assert "cannot be decrypted" in error


def test_a_key_stored_in_clear_before_is_read_then_sealed(database_url: str) -> None:
    services = build_services(config(database_url, OLD))
    services.database.upgrade()
    pem = services.keys._new_key()
    legacy = KeyCipher([OLD.encode()])
    engine = services.database.engine
    with engine.begin() as conn:  # as an older version stored it
        conn.execute(
            sa.text(
                "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at)"
                " VALUES (:kid, 'ES256', :pem, CURRENT_TIMESTAMP)"
            ),
            {"kid": pem.kid, "pem": pem.private_pem},
        )
    keys = SqlKeys(services.database, legacy)
    assert keys.all()[0].private_pem == pem.private_pem
    assert keys.reencrypt() == 1
    assert dumped(database_url)[0].startswith("fernet:")
    assert keys.all()[0].private_pem == pem.private_pem
    services.close()


def test_the_embedded_default_makes_its_own_kek_once(tmp_path: Path) -> None:
    file = tmp_path / "keys" / "authserver.kek"
    url = f"sqlite:///{tmp_path}/a.db"
    first = build_services(
        Config.from_env({}, database_url=url, issuer=ISSUER, key_encryption_key_file=str(file))
    )
    first.database.upgrade()
    kid = first.keys.jwks()["keys"][0]["kid"]
    first.close()
    assert file.stat().st_mode & 0o777 == 0o600
    again = build_services(
        Config.from_env({}, database_url=url, issuer=ISSUER, key_encryption_key_file=str(file))
    )
    assert again.keys.jwks()["keys"][0]["kid"] == kid  # the same KEK read back
    again.close()


def test_a_malformed_kek_is_a_config_error() -> None:
    from authserver.config import ConfigError

    with pytest.raises(ConfigError, match="Fernet"):
        Config.from_env({}, issuer=ISSUER, key_encryption_keys="not-a-key")
