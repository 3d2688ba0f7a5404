"""External identities (iss + sub of a trusted identity provider) and their users in SQL."""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authserver.domain.models import ExternalIdentity, User
from authserver.storage.models import ExternalIdentityRow, UserRow
from authserver.storage.sql.database import Database
from authserver.storage.sql.rows import USERS, user_from

IDENTITIES = cast(sa.Table, ExternalIdentityRow.__table__)


class SqlExternalIdentities:
    def __init__(self, db: Database) -> None:
        self._db = db

    def user_of(self, issuer: str, subject: str) -> User | None:
        with self._db.session() as s:
            row = s.execute(
                sa.select(USERS)
                .join(IDENTITIES, IDENTITIES.c.user_id == USERS.c.user_id)
                .where(IDENTITIES.c.issuer == issuer, IDENTITIES.c.subject == subject)
            ).first()
            return None if row is None else user_from(row)

    def link_new_user(self, identity: ExternalIdentity, user: User, now: float) -> bool:
        with self._db.session() as s:
            try:
                # A savepoint: a lost race (the subject linked by a concurrent first exchange,
                # whose commit our INSERT waited for) or a taken username undoes only these two
                # rows, and the caller's unit of work goes on to read the winner's link.
                with s.begin_nested():
                    s.add(
                        UserRow(
                            user_id=user.user_id,
                            username=user.username,
                            display_name=user.display_name,
                            password_hash=None,
                            created_at=now,
                            email=user.email,
                            email_verified=user.email_verified,
                        )
                    )
                    s.flush()  # the user first: the link's foreign key names it
                    s.add(
                        ExternalIdentityRow(
                            issuer=identity.issuer,
                            subject=identity.subject,
                            user_id=user.user_id,
                            created_at=now,
                        )
                    )
                    s.flush()
            except IntegrityError:
                return False
            return True

    def update_profile(
        self, user_id: str, display_name: str, email: str | None, email_verified: bool
    ) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(UserRow)
                # An exchange racing a deletion must not write a profile back into the tombstone.
                .where(UserRow.user_id == user_id, UserRow.deleted_at.is_(None))
                .values(display_name=display_name, email=email, email_verified=email_verified)
            )
