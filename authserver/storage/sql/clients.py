"""Registered clients in SQL."""

from __future__ import annotations

import sqlalchemy as sa

from authserver.domain.models import Client, ClientKind
from authserver.storage.models import ClientRow
from authserver.storage.sql.database import Database


class SqlClients:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, client: Client, now: float) -> None:
        with self._db.session() as s:
            s.add(
                ClientRow(
                    client_id=client.client_id,
                    name=client.name,
                    scope=client.scope,
                    secret_hash=client.secret_hash,
                    created_at=now,
                    kind=client.kind.value,
                    disabled_at=client.disabled_at,
                )
            )

    @staticmethod
    def _to_client(row: ClientRow | None) -> Client | None:
        if row is None:
            return None
        return Client(
            row.client_id,
            row.name,
            row.scope,
            row.secret_hash,
            ClientKind(row.kind),
            row.disabled_at,
            row.sessions_revoked_at,
        )

    def all(self) -> list[Client]:
        with self._db.session() as s:
            rows = s.scalars(sa.select(ClientRow).order_by(ClientRow.created_at))
            return [c for c in map(self._to_client, rows) if c is not None]

    def set_disabled(self, client_id: str, disabled_at: float | None) -> bool:
        values: dict[str, float | None] = {"disabled_at": disabled_at}
        if disabled_at is not None:
            values["sessions_revoked_at"] = disabled_at
        with self._db.session() as s:
            result = s.execute(
                sa.update(ClientRow).where(ClientRow.client_id == client_id).values(**values)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def mark_sessions_revoked(self, client_id: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(ClientRow)
                .where(ClientRow.client_id == client_id)
                .values(sessions_revoked_at=now)
            )

    def get(self, client_id: str) -> Client | None:
        with self._db.session() as s:
            return self._to_client(s.get(ClientRow, client_id))

    def by_name(self, name: str) -> Client | None:
        with self._db.session() as s:
            return self._to_client(
                s.scalar(sa.select(ClientRow).filter_by(name=name).order_by(ClientRow.created_at))
            )
