"""Signing keys in SQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authserver.domain.models import SigningKey
from authserver.storage.key_encryption import KeyCipher
from authserver.storage.models import SigningKeyRow
from authserver.storage.sql.database import Database


class SqlKeys:
    """Signing keys, their private halves sealed with the key-encryption keys."""

    def __init__(self, db: Database, cipher: KeyCipher) -> None:
        self._db = db
        self._cipher = cipher

    def all(self) -> list[SigningKey]:
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(SigningKeyRow).order_by(SigningKeyRow.created_at, SigningKeyRow.kid)
            )
            return [
                SigningKey(r.kid, r.algorithm, self._cipher.open(r.private_pem), r.created_at)
                for r in rows
            ]

    def reencrypt(self) -> int:
        """Seal every private key with the first key-encryption key; how many were rewritten."""
        with self._db.session() as s:
            rows = list(s.scalars(sa.select(SigningKeyRow).with_for_update()))
            for row in rows:
                row.private_pem = self._cipher.reseal(row.private_pem)
            return len(rows)

    def remove(self, kid: str) -> None:
        with self._db.session() as s:
            s.execute(sa.delete(SigningKeyRow).where(SigningKeyRow.kid == kid))

    def add(self, key: SigningKey) -> bool:
        try:
            with self._db.session() as s:
                s.add(
                    SigningKeyRow(
                        kid=key.kid,
                        algorithm=key.algorithm,
                        private_pem=self._cipher.seal(key.private_pem),
                        created_at=key.created_at,
                    )
                )
            return True
        except IntegrityError:
            return False
