"""The audit trail in SQL: appended to, never updated."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authserver.domain.models import Actor, AuditEvent, AuditFilter
from authserver.storage.models import AuditEventRow
from authserver.storage.sql.database import Database


class SqlAuditLog:
    """The audit trail: appended to, queried newest first, never updated."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, event: AuditEvent, once_key: str | None = None) -> bool:
        try:
            with self._db.session() as s:
                s.add(
                    AuditEventRow(
                        occurred_at=event.occurred_at,
                        event=event.event,
                        actor_type=event.actor.kind,
                        actor_id=event.actor.id,
                        ip=event.ip,
                        user_id=event.user_id,
                        client_id=event.client_id,
                        mobile_device_id=event.mobile_device_id,
                        family_id=event.family_id,
                        flow_ref=event.flow_ref,
                        detail=event.detail,
                        once_key=once_key,
                    )
                )
            return True
        except IntegrityError:
            if once_key is None:
                raise
            return False  # recorded before: the unique once_key says so

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
