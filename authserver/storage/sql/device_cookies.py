"""Known-device cookies in SQL."""

from __future__ import annotations

import sqlalchemy as sa

from authserver.domain.models import AccountKind, DeviceCookie
from authserver.storage.models import DeviceCookieRow
from authserver.storage.sql.database import Database


class SqlDeviceCookies:
    """Known-device cookies, by hash; expired ones are deleted as new ones are added."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, cookie: DeviceCookie) -> None:
        with self._db.session() as s:
            s.execute(
                sa.delete(DeviceCookieRow).where(DeviceCookieRow.expires_at <= cookie.issued_at)
            )
            s.add(
                DeviceCookieRow(
                    cookie_hash=cookie.cookie_hash,
                    account_kind=cookie.account_kind.value,
                    username=cookie.username,
                    issued_at=cookie.issued_at,
                    expires_at=cookie.expires_at,
                )
            )

    def get(self, cookie_hash: str) -> DeviceCookie | None:
        with self._db.session() as s:
            row = s.get(DeviceCookieRow, cookie_hash)
            if row is None:
                return None
            return DeviceCookie(
                row.cookie_hash,
                AccountKind(row.account_kind),
                row.username,
                row.issued_at,
                row.expires_at,
            )
