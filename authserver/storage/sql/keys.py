"""Signing keys in SQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authserver.domain.models import SigningKey
from authserver.storage.models import SigningKeyRow
from authserver.storage.sql.database import Database


class SqlKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[SigningKey]:
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(SigningKeyRow).order_by(SigningKeyRow.created_at, SigningKeyRow.kid)
            )
            return [SigningKey(r.kid, r.algorithm, r.private_pem, r.created_at) for r in rows]

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
                        private_pem=key.private_pem,
                        created_at=key.created_at,
                    )
                )
            return True
        except IntegrityError:
            return False
