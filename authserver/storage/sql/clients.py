"""Registered clients in SQL."""

from __future__ import annotations

import sqlalchemy as sa

from authserver.domain.models import Client
from authserver.storage.models import ClientLogoRow, ClientRow, Timestamp
from authserver.storage.sql.database import Database
from authserver.storage.sql.rows import CLIENTS, client_from


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
                    **_registration(client),
                )
            )

    def update(self, client: Client) -> bool:
        """Store a client's name, scope and registration (redirect URIs, grants)."""
        with self._db.session() as s:
            result = s.execute(
                sa.update(ClientRow)
                .where(ClientRow.client_id == client.client_id)
                .values(name=client.name, scope=client.scope, **_registration(client))
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def set_secret_hash(self, client_id: str, secret_hash: str) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(ClientRow)
                .where(ClientRow.client_id == client_id)
                .values(secret_hash=secret_hash)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def all(self) -> list[Client]:
        with self._db.session() as s:
            rows = s.execute(
                sa.select(CLIENTS)
                .where(CLIENTS.c.deleted_at.is_(None))
                .order_by(CLIENTS.c.created_at)
            )
            return [client_from(row) for row in rows]

    def erase(self, client_id: str, now: float) -> bool:
        at = sa.literal(now, Timestamp())
        with self._db.session() as s:
            result = s.execute(
                sa.update(ClientRow)
                .where(ClientRow.client_id == client_id, ClientRow.deleted_at.is_(None))
                .values(
                    # Stays disabled: the deny-list and every token check already refuse it.
                    disabled_at=sa.func.coalesce(ClientRow.disabled_at, at),
                    sessions_revoked_at=now,
                    redirect_uris="",
                    post_logout_redirect_uris="",
                    deleted_at=now,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            s.execute(sa.delete(ClientLogoRow).where(ClientLogoRow.client_id == client_id))
            return True

    def logo(self, client_id: str) -> bytes | None:
        with self._db.session() as s:
            png: bytes | None = s.scalar(
                sa.select(ClientLogoRow.png).where(ClientLogoRow.client_id == client_id)
            )
            return png

    def set_logo(self, client_id: str, png: bytes | None, now: float) -> None:
        with self._db.session() as s:
            s.execute(sa.delete(ClientLogoRow).where(ClientLogoRow.client_id == client_id))
            if png is not None:
                s.add(ClientLogoRow(client_id=client_id, png=png, updated_at=now))

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
            row = s.execute(sa.select(CLIENTS).where(CLIENTS.c.client_id == client_id)).first()
            return None if row is None else client_from(row)

    def by_name(self, name: str) -> Client | None:
        with self._db.session() as s:
            row = s.execute(
                sa.select(CLIENTS)
                .where(CLIENTS.c.name == name, CLIENTS.c.deleted_at.is_(None))
                .order_by(CLIENTS.c.created_at)
            ).first()
            return None if row is None else client_from(row)


def _registration(client: Client) -> dict[str, str | bool]:
    return {
        "redirect_uris": " ".join(client.redirect_uris),
        "post_logout_redirect_uris": " ".join(client.post_logout_redirect_uris),
        "grant_types": " ".join(client.grant_types),
        "number_matching": client.number_matching,
    }
