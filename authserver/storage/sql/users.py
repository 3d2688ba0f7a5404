"""Users of the mobile app in SQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authserver.domain.errors import Conflict
from authserver.domain.models import User
from authserver.storage.models import ExternalIdentityRow, Timestamp, UserRow
from authserver.storage.sql.database import Database
from authserver.storage.sql.rows import USERS, user_from


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
                        email=user.email,
                        email_verified=user.email_verified,
                    )
                )
                # Inside a unit of work the INSERT would wait for its commit: flush it here, so
                # a taken name is this call's Conflict.
                s.flush()
        except IntegrityError:
            raise Conflict(f"The username {user.username!r} is taken.") from None

    def _one(self, *where: sa.ColumnElement[bool]) -> User | None:
        with self._db.session() as s:
            row = s.execute(sa.select(USERS).where(*where)).first()
            return None if row is None else user_from(row)

    def get(self, user_id: str) -> User | None:
        return self._one(USERS.c.user_id == user_id)

    def by_username(self, username: str) -> User | None:
        return self._one(USERS.c.username == username, USERS.c.deleted_at.is_(None))

    def erase(self, user_id: str, now: float) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(UserRow)
                .where(UserRow.user_id == user_id, UserRow.deleted_at.is_(None))
                .values(
                    # The name is free for a new account; the id stays for the families.
                    username=None,
                    display_name="",
                    password_hash=None,
                    email=None,
                    email_verified=False,
                    disabled_at=sa.func.coalesce(UserRow.disabled_at, sa.literal(now, Timestamp())),
                    sessions_revoked_at=now,
                    deleted_at=now,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            # A returning subject of an identity provider becomes a new user, not this one.
            s.execute(sa.delete(ExternalIdentityRow).where(ExternalIdentityRow.user_id == user_id))
            return True

    def mark_sessions_revoked(self, user_id: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(UserRow).where(UserRow.user_id == user_id).values(sessions_revoked_at=now)
            )

    def set_disabled(self, user_id: str, disabled_at: float | None) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(UserRow).where(UserRow.user_id == user_id).values(disabled_at=disabled_at)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def set_email(self, user_id: str, email: str | None, verified: bool) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(UserRow)
                .where(UserRow.user_id == user_id)
                .values(email=email, email_verified=verified)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def set_password(self, user_id: str, password_hash: str) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(UserRow)
                .where(UserRow.user_id == user_id)
                .values(password_hash=password_hash)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def search(self, text: str, limit: int) -> list[User]:
        pattern = "%" + _escape_like(text.lower()) + "%"
        with self._db.session() as s:
            rows = s.execute(
                sa.select(USERS)
                .where(
                    USERS.c.deleted_at.is_(None),
                    sa.or_(
                        sa.func.lower(USERS.c.username).like(pattern, escape="\\"),
                        sa.func.lower(USERS.c.display_name).like(pattern, escape="\\"),
                    ),
                )
                .order_by(USERS.c.username)
                .limit(limit)
            )
            return [user_from(row) for row in rows]


def _escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern: its % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
