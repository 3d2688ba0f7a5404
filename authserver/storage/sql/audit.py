"""The audit trail in SQL: appended to, never updated."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from authserver.domain.models import Actor, AuditEvent, AuditFilter
from authserver.storage.models import AuditEventRow
from authserver.storage.sql.database import Database

_EVENTS = cast(sa.Table, AuditEventRow.__table__)
_PENDING = "authserver.pending_audit"  # Session.info key: rows waiting for the commit


def _values(event: AuditEvent, once_key: str | None) -> dict[str, Any]:
    return {
        "occurred_at": event.occurred_at,
        "event": event.event,
        "actor_type": event.actor.kind,
        "actor_id": event.actor.id,
        "ip": event.ip,
        "user_id": event.user_id,
        "client_id": event.client_id,
        "mobile_device_id": event.mobile_device_id,
        "family_id": event.family_id,
        "flow_ref": event.flow_ref,
        "detail": event.detail,
        "once_key": once_key,
    }


def _flush_pending(session: Session) -> None:
    """Insert the unit of work's audit rows in one statement, just before it commits."""
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.execute(sa.insert(_EVENTS).values(rows))


class SqlAuditLog:
    """The audit trail: appended to, queried newest first, never updated.

    Events join the caller's unit of work and are written with it, all in one INSERT just
    before it commits: an action and its audit rows are one transaction.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        dialect = postgresql if db.dialect == "postgresql" else sqlite
        # An event that happens once per subject (a flow's expiry): a repeat inserts nothing,
        # and, unlike an IntegrityError, does not abort the unit of work it is part of.
        self._insert_once = (
            dialect.insert(_EVENTS)
            .on_conflict_do_nothing(index_elements=[_EVENTS.c.once_key])
            .returning(_EVENTS.c.id)
        )

    def record(self, event: AuditEvent, once_key: str | None = None) -> bool:
        with self._db.session() as s:
            if once_key is not None:
                result = s.execute(self._insert_once.values(**_values(event, once_key)))
                return result.first() is not None
            pending = s.info.get(_PENDING)
            if pending is None:
                pending = s.info[_PENDING] = []
                sa.event.listen(s, "before_commit", _flush_pending, once=True)
            pending.append(_values(event, None))
            return True

    def query(self, where: AuditFilter) -> list[AuditEvent]:
        row = AuditEventRow
        conditions = [
            column == value
            for column, value in (
                (row.user_id, where.user_id),
                (row.client_id, where.client_id),
                (row.family_id, where.family_id),
                (row.mobile_device_id, where.mobile_device_id),
                (row.event, where.event),
                (row.actor_id, where.actor_id),
            )
            if value is not None
        ]
        if where.before_id is not None:
            conditions.append(row.id < where.before_id)
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(row).where(*conditions).order_by(row.id.desc()).limit(where.limit)
            )
            return [
                AuditEvent(
                    event=r.event,
                    actor=Actor(r.actor_type, r.actor_id),
                    occurred_at=r.occurred_at,
                    ip=r.ip,
                    user_id=r.user_id,
                    client_id=r.client_id,
                    mobile_device_id=r.mobile_device_id,
                    family_id=r.family_id,
                    flow_ref=r.flow_ref,
                    detail=dict(r.detail or {}),
                    id=r.id,
                )
                for r in rows
            ]
