"""Admin accounts and their sessions in SQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authserver.domain.errors import Conflict
from authserver.domain.models import Admin, AdminSession
from authserver.storage.models import AdminRow, AdminSessionRow
from authserver.storage.sql.database import Database


class SqlAdmins:
    """Admin accounts and their sessions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, admin: Admin, now: float) -> None:
        try:
            with self._db.session() as s:
                s.add(
                    AdminRow(
                        admin_id=admin.admin_id,
                        username=admin.username,
                        password_hash=admin.password_hash,
                        created_at=now,
                    )
                )
                # Inside a unit of work the INSERT would wait for its commit: flush it here, so
                # a taken name is this call's Conflict.
                s.flush()
        except IntegrityError:
            raise Conflict(f"The admin {admin.username!r} exists.") from None

    @staticmethod
    def _to_admin(row: AdminRow | None) -> Admin | None:
        if row is None:
            return None
        return Admin(row.admin_id, row.username, row.password_hash, row.disabled_at)

    def get(self, admin_id: str) -> Admin | None:
        with self._db.session() as s:
            return self._to_admin(s.get(AdminRow, admin_id))

    def by_username(self, username: str) -> Admin | None:
        with self._db.session() as s:
            return self._to_admin(s.scalar(sa.select(AdminRow).filter_by(username=username)))

    def all(self) -> list[Admin]:
        with self._db.session() as s:
            rows = s.scalars(sa.select(AdminRow).order_by(AdminRow.username))
            return [
                Admin(row.admin_id, row.username, row.password_hash, row.disabled_at)
                for row in rows
            ]

    def set_disabled(self, admin_id: str, disabled_at: float | None) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(AdminRow)
                .where(AdminRow.admin_id == admin_id)
                .values(disabled_at=disabled_at)
            )

    def delete(self, admin_id: str) -> None:
        with self._db.session() as s:
            s.execute(sa.delete(AdminSessionRow).where(AdminSessionRow.admin_id == admin_id))
            s.execute(sa.delete(AdminRow).where(AdminRow.admin_id == admin_id))

    def end_sessions(self, admin_id: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(AdminSessionRow)
                .where(AdminSessionRow.admin_id == admin_id, AdminSessionRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    def set_password(self, admin_id: str, password_hash: str) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(AdminRow)
                .where(AdminRow.admin_id == admin_id)
                .values(password_hash=password_hash)
            )

    def add_session(self, session: AdminSession) -> None:
        with self._db.session() as s:
            s.add(
                AdminSessionRow(
                    token_hash=session.token_hash,
                    admin_id=session.admin_id,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                )
            )

    def session(self, token_hash: str) -> AdminSession | None:
        with self._db.session() as s:
            row = s.get(AdminSessionRow, token_hash)
            if row is None:
                return None
            return AdminSession(
                row.token_hash, row.admin_id, row.created_at, row.expires_at, row.revoked_at
            )

    def revoke_session(self, token_hash: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(AdminSessionRow)
                .where(
                    AdminSessionRow.token_hash == token_hash, AdminSessionRow.revoked_at.is_(None)
                )
                .values(revoked_at=now)
            )
