"""Users of the mobile app in SQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authserver.domain.errors import Conflict
from authserver.domain.models import User
from authserver.storage.models import UserRow
from authserver.storage.sql.database import Database


class SqlUsers:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, user: User, now: float) -> None:
        try:
            with self._db.session() as s:
                s.add(
                    UserRow(
                        user_id=user.user_id,
                        username=user.username,
                        display_name=user.display_name,
                        password_hash=user.password_hash,
                        created_at=now,
                    )
                )
        except IntegrityError:
            raise Conflict(f"The username {user.username!r} is taken.") from None

    @staticmethod
    def _to_user(row: UserRow | None) -> User | None:
        if row is None:
            return None
        return User(
            row.user_id, row.username, row.display_name, row.password_hash, row.sessions_revoked_at
        )

    def get(self, user_id: str) -> User | None:
        with self._db.session() as s:
            return self._to_user(s.get(UserRow, user_id))

    def by_username(self, username: str) -> User | None:
        with self._db.session() as s:
            return self._to_user(s.scalar(sa.select(UserRow).filter_by(username=username)))

    def mark_sessions_revoked(self, user_id: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(UserRow).where(UserRow.user_id == user_id).values(sessions_revoked_at=now)
            )

    def search(self, text: str, limit: int) -> list[User]:
        pattern = "%" + _escape_like(text.lower()) + "%"
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(UserRow)
                .where(
                    sa.or_(
                        sa.func.lower(UserRow.username).like(pattern, escape="\\"),
                        sa.func.lower(UserRow.display_name).like(pattern, escape="\\"),
                    )
                )
                .order_by(UserRow.username)
                .limit(limit)
            )
            return [u for u in map(self._to_user, rows) if u is not None]


def _escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern: its % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
