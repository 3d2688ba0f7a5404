"""Signed-in phones (device-bound mobile tokens) in SQL."""

from __future__ import annotations

import sqlalchemy as sa

from authserver.domain.models import ApprovalFacts, MobileDevice, SignedInPhone
from authserver.storage.models import MobileDeviceRow
from authserver.storage.sql.database import Database
from authserver.storage.sql.rows import (
    CLIENTS,
    DEVICES,
    USERS,
    client_from,
    device_from,
    user_from,
)


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
                    dpop_jkt=device.dpop_jkt,
                )
            )

    def get(self, mobile_device_id: str) -> MobileDevice | None:
        with self._db.session() as s:
            row = s.execute(sa.select(DEVICES).where(DEVICES.c.id == mobile_device_id)).first()
            return None if row is None else device_from(row)

    def by_token_hash(self, token_hash: str) -> MobileDevice | None:
        found = self.signed_in(token_hash)
        return None if found is None else found.device

    def signed_in(self, token_hash: str) -> SignedInPhone | None:
        with self._db.session() as s:
            row = s.execute(
                sa.select(DEVICES, USERS)
                .join(USERS, USERS.c.user_id == DEVICES.c.user_id)
                .where(DEVICES.c.token_hash == token_hash)
            ).first()
            return None if row is None else SignedInPhone(device_from(row), user_from(row))

    def lock_for_redemption(self, mobile_device_id: str, client_id: str) -> ApprovalFacts | None:
        with self._db.session() as s:
            # FOR SHARE OF all three rows: a revocation that updates any of them (sign the phone
            # out, revoke the user's or the client's sessions, disable the client) waits for
            # this redemption to commit and then sees its family, or this one waits and sees
            # the revocation. SQLite serialises whole transactions instead (BEGIN IMMEDIATE).
            row = s.execute(
                sa.select(DEVICES, USERS, CLIENTS)
                .join(USERS, USERS.c.user_id == DEVICES.c.user_id)
                .join(CLIENTS, CLIENTS.c.client_id == client_id)
                .where(DEVICES.c.id == mobile_device_id)
                .with_for_update(read=True, of=[DEVICES, USERS, CLIENTS])
            ).first()
            if row is None:
                return None
            return ApprovalFacts(
                client=client_from(row), user=user_from(row), device=device_from(row)
            )

    def of_user(self, user_id: str) -> list[MobileDevice]:
        with self._db.session() as s:
            rows = s.execute(
                sa.select(DEVICES)
                .where(DEVICES.c.user_id == user_id)
                .order_by(DEVICES.c.created_at.desc(), DEVICES.c.id)
            )
            return [device_from(row) for row in rows]

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
