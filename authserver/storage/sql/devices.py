"""Signed-in phones (device-bound mobile tokens) in SQL."""

from __future__ import annotations

import sqlalchemy as sa

from authserver.domain.models import MobileDevice
from authserver.storage.models import MobileDeviceRow
from authserver.storage.sql.database import Database


class SqlMobileDevices:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, device: MobileDevice, now: float) -> None:
        with self._db.session() as s:
            s.add(
                MobileDeviceRow(
                    id=device.id,
                    user_id=device.user_id,
                    device_id=device.device_id,
                    name=device.name,
                    platform=device.platform,
                    token_hash=device.token_hash,
                    created_at=now,
                    expires_at=device.expires_at,
                )
            )

    @staticmethod
    def _to_device(row: MobileDeviceRow | None) -> MobileDevice | None:
        if row is None:
            return None
        return MobileDevice(
            row.id,
            row.user_id,
            row.device_id,
            row.name,
            row.platform,
            row.token_hash,
            row.expires_at,
            row.revoked_at,
            row.created_at,
        )

    def get(self, mobile_device_id: str) -> MobileDevice | None:
        with self._db.session() as s:
            return self._to_device(s.get(MobileDeviceRow, mobile_device_id))

    def by_token_hash(self, token_hash: str) -> MobileDevice | None:
        with self._db.session() as s:
            return self._to_device(
                s.scalar(sa.select(MobileDeviceRow).filter_by(token_hash=token_hash))
            )

    def of_user(self, user_id: str) -> list[MobileDevice]:
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(MobileDeviceRow)
                .filter_by(user_id=user_id)
                .order_by(MobileDeviceRow.created_at.desc(), MobileDeviceRow.id)
            )
            return [d for d in map(self._to_device, rows) if d is not None]

    def revoke(self, mobile_device_id: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(MobileDeviceRow)
                .where(MobileDeviceRow.id == mobile_device_id, MobileDeviceRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    def revoke_device(self, user_id: str, device_id: str, now: float) -> list[str]:
        with self._db.session() as s:
            live = (
                MobileDeviceRow.user_id == user_id,
                MobileDeviceRow.device_id == device_id,
                MobileDeviceRow.revoked_at.is_(None),
            )
            ids = list(s.scalars(sa.select(MobileDeviceRow.id).where(*live).with_for_update()))
            if ids:
                s.execute(
                    sa.update(MobileDeviceRow)
                    .where(MobileDeviceRow.id.in_(ids), MobileDeviceRow.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
            return ids
