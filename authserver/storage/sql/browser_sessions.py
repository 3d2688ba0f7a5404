"""Browsers signed in by a QR login (the code flow's sessions), in SQL."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from authserver.domain.models import BrowserSession
from authserver.storage.models import BrowserSessionRow
from authserver.storage.sql.database import Database

_SESSIONS = cast(sa.Table, BrowserSessionRow.__table__)


def _session(row: Any) -> BrowserSession:
    return BrowserSession(
        id=row.id,
        secret_hash=row.secret_hash,
        user_id=row.user_id,
        mobile_device_id=row.mobile_device_id,
        auth_time=row.auth_time,
        amr=tuple(row.amr.split()),
        created_at=row.created_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
    )


class SqlBrowserSessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, session: BrowserSession) -> None:
        with self._db.session() as s:
            s.add(
                BrowserSessionRow(
                    id=session.id,
                    secret_hash=session.secret_hash,
                    user_id=session.user_id,
                    mobile_device_id=session.mobile_device_id,
                    auth_time=session.auth_time,
                    amr=" ".join(session.amr),
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                )
            )

    def by_secret_hash(self, secret_hash: str) -> BrowserSession | None:
        with self._db.session() as s:
            row = s.execute(sa.select(_SESSIONS).where(_SESSIONS.c.secret_hash == secret_hash))
            found = row.first()
            return None if found is None else _session(found)

    def end(self, session_id: str, now: float) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(BrowserSessionRow)
                .where(BrowserSessionRow.id == session_id, BrowserSessionRow.ended_at.is_(None))
                .values(ended_at=now)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]
