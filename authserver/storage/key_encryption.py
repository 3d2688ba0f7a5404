"""Private signing keys encrypted at rest: a database dump reveals no private key.

The key-encryption keys (KEKs) are Fernet keys (`cryptography`: AES-128-CBC with HMAC-SHA256,
versioned tokens) from AUTHSERVER_KEY_ENCRYPTION_KEYS, comma-separated: the first encrypts,
every one decrypts (MultiFernet), so a KEK rotation is "put the new one first, run
`authserver keys reencrypt`, then drop the old one". Without the setting, the KEK lives in a
file of its own (AUTHSERVER_KEY_ENCRYPTION_KEY_FILE, mode 0600), created on first start, so the
embedded default needs no setup and the database alone holds no usable key.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "fernet:"  # what an encrypted private key looks like in SQL; PEM is the legacy form


class KeyDecryptionError(Exception):
    """A stored private key is not readable with the configured key-encryption keys."""


class KeyCipher:
    """Seals private keys for SQL and opens them again."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key-encryption key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, private_pem: str) -> str:
        return PREFIX + self._fernet.encrypt(private_pem.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # a key stored before encryption at rest; reencrypt seals it
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
        except InvalidToken:
            raise KeyDecryptionError(
                "a signing key cannot be decrypted with AUTHSERVER_KEY_ENCRYPTION_KEYS (or its "
                "key file): the key that sealed it is missing"
            ) from None

    def reseal(self, stored: str) -> str:
        """The key sealed with the first KEK (a plain PEM is sealed for the first time)."""
        return self.seal(self.open(stored))


def parse_keys(text: str) -> list[bytes]:
    """AUTHSERVER_KEY_ENCRYPTION_KEYS: comma-separated Fernet keys (ValueError if malformed)."""
    keys = [part.strip().encode("ascii") for part in text.split(",") if part.strip()]
    for key in keys:
        Fernet(key)  # raises ValueError for anything but 32 url-safe base64-encoded bytes
    return keys


def key_from_file(path: str | Path) -> bytes:
    """The KEK in `path`, created (0600, atomically) if there is none yet."""
    path = Path(path).expanduser()
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".kek-")
    try:
        os.write(fd, Fernet.generate_key() + b"\n")
        os.close(fd)
        # link() fails if another process made the file first: then its key is the key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_bytes().strip()
