"""Browsers signed in by a QR login (the code flow's sessions), in SQL."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from authserver.domain.authorization import KEPT_AFTER_EXPIRY
from authserver.domain.models import BrowserSession
from authserver.storage.models import AuthorizationCodeRow, BrowserSessionRow
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


def _live(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(_SESSIONS.c.ended_at.is_(None), _SESSIONS.c.expires_at > now)


class SqlBrowserSessions:
    """Browser sessions by id and by secret hash; ended ones are deleted as new ones start."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, session: BrowserSession) -> None:
        cutoff = session.created_at - KEPT_AFTER_EXPIRY
        with self._db.session() as s:
            # One statement keeps the table bounded: sessions over for a while, except those
            # a stored authorization code still names (it is deleted first, on its own insert).
            s.execute(
                sa.delete(BrowserSessionRow).where(
                    sa.or_(
                        BrowserSessionRow.expires_at <= cutoff,
                        BrowserSessionRow.ended_at <= cutoff,
                    ),
                    ~sa.exists().where(AuthorizationCodeRow.session_id == BrowserSessionRow.id),
                )
            )
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

    def _many(self, query: sa.Select[Any]) -> list[BrowserSession]:
        with self._db.session() as s:
            return [_session(row) for row in s.execute(query)]

    def get(self, session_id: str) -> BrowserSession | None:
        found = self._many(sa.select(_SESSIONS).where(_SESSIONS.c.id == session_id))
        return found[0] if found else None

    def by_secret_hash(self, secret_hash: str) -> BrowserSession | None:
        found = self._many(sa.select(_SESSIONS).where(_SESSIONS.c.secret_hash == secret_hash))
        return found[0] if found else None

    def find(
        self, user_id: str | None, live_at: float | None, limit: int, offset: int
    ) -> list[BrowserSession]:
        query = sa.select(_SESSIONS)
        if user_id is not None:
            query = query.where(_SESSIONS.c.user_id == user_id)
        if live_at is not None:
            query = query.where(_live(live_at))
        query = query.order_by(_SESSIONS.c.created_at.desc(), _SESSIONS.c.id)
        return self._many(query.limit(limit).offset(offset))

    def end(self, session_id: str, now: float) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(BrowserSessionRow)
                .where(BrowserSessionRow.id == session_id, BrowserSessionRow.ended_at.is_(None))
                .values(ended_at=now)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def end_all(
        self, now: float, *, user_id: str | None = None, mobile_device_ids: tuple[str, ...] = ()
    ) -> list[BrowserSession]:
        whose: list[sa.ColumnElement[bool]] = []
        if user_id is not None:
            whose.append(_SESSIONS.c.user_id == user_id)
        if mobile_device_ids:
            whose.append(_SESSIONS.c.mobile_device_id.in_(mobile_device_ids))
        if not whose:
            return []
        with self._db.session() as s:
            # UPDATE ... RETURNING: exactly the sessions this call ended, for the audit trail.
            rows = s.execute(
                sa.update(_SESSIONS)
                .where(_live(now), sa.or_(*whose))
                .values(ended_at=now)
                .returning(*_SESSIONS.c)
            ).all()
            return [_session(row) for row in rows]
