"""SQL repositories behind the domain's ports, and the Database that owns the engine."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from authserver.domain.errors import Conflict
from authserver.domain.models import (
    Client,
    MobileDevice,
    RefreshToken,
    SigningKey,
    TokenFamily,
    User,
)
from authserver.storage.models import (
    AccessTokenRow,
    ClientRow,
    MobileDeviceRow,
    RefreshTokenRow,
    SigningKeyRow,
    TokenFamilyRow,
    UserRow,
)

# The top-level migrations/ folder, reached through the package's link to it (authserver/
# migrations), so the same path works from a checkout and from an installed wheel.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(database_url: str) -> Any:
    """The Alembic configuration for this project's migrations and a given database."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig(stdout=sys.stdout)  # now, not the stream of Alembic's first import
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the one writer
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """The engine and session factory of one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        with self._sessions.begin() as session:
            yield session

    def upgrade(self) -> None:
        """Alembic upgrade to head."""
        from alembic import command

        command.upgrade(alembic_config(self.url), "head")

    def schema_revision(self) -> tuple[str | None, str | None]:
        """(revision in the database, head revision of the code)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        return current, head

    def dispose(self) -> None:
        self.engine.dispose()


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
                )
            )

    @staticmethod
    def _to_client(row: ClientRow | None) -> Client | None:
        if row is None:
            return None
        return Client(row.client_id, row.name, row.scope, row.secret_hash)

    def get(self, client_id: str) -> Client | None:
        with self._db.session() as s:
            return self._to_client(s.get(ClientRow, client_id))

    def by_name(self, name: str) -> Client | None:
        with self._db.session() as s:
            return self._to_client(
                s.scalar(sa.select(ClientRow).filter_by(name=name).order_by(ClientRow.created_at))
            )


class SqlUsers:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, user: User, now: float) -> None:
        try:
            with self._db.session() as s:
                s.add(
                    UserRow(
                        user_id=user.user_id,
                        username=user.username,
                        display_name=user.display_name,
                        password_hash=user.password_hash,
                        created_at=now,
                    )
                )
        except IntegrityError:
            raise Conflict(f"The username {user.username!r} is taken.") from None

    @staticmethod
    def _to_user(row: UserRow | None) -> User | None:
        if row is None:
            return None
        return User(row.user_id, row.username, row.display_name, row.password_hash)

    def get(self, user_id: str) -> User | None:
        with self._db.session() as s:
            return self._to_user(s.get(UserRow, user_id))

    def by_username(self, username: str) -> User | None:
        with self._db.session() as s:
            return self._to_user(s.scalar(sa.select(UserRow).filter_by(username=username)))


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

    def by_token_hash(self, token_hash: str) -> MobileDevice | None:
        with self._db.session() as s:
            row = s.scalar(sa.select(MobileDeviceRow).filter_by(token_hash=token_hash))
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
            )

    def revoke(self, mobile_device_id: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(MobileDeviceRow)
                .where(MobileDeviceRow.id == mobile_device_id, MobileDeviceRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    def revoke_device(self, user_id: str, device_id: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(MobileDeviceRow)
                .where(
                    MobileDeviceRow.user_id == user_id,
                    MobileDeviceRow.device_id == device_id,
                    MobileDeviceRow.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )


def _family(row: TokenFamilyRow | None) -> TokenFamily | None:
    if row is None:
        return None
    return TokenFamily(
        row.id,
        row.user_id,
        row.client_id,
        row.mobile_device_id,
        row.scope,
        row.device_code_hash,
        row.created_at,
        row.revoked_at,
    )


class SqlTokens:
    """Token families, the refresh-token chain and access-token ids."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def issue(
        self,
        family: TokenFamily,
        refresh: RefreshToken,
        access_jti: str,
        access_expires_at: float,
    ) -> None:
        with self._db.session() as s:
            s.add(
                TokenFamilyRow(
                    id=family.id,
                    user_id=family.user_id,
                    client_id=family.client_id,
                    mobile_device_id=family.mobile_device_id,
                    scope=family.scope,
                    device_code_hash=family.device_code_hash,
                    created_at=family.created_at,
                )
            )
            s.flush()  # the family row must exist before rows that reference it
            s.add(
                RefreshTokenRow(
                    token_hash=refresh.token_hash,
                    family_id=family.id,
                    created_at=family.created_at,
                    expires_at=refresh.expires_at,
                )
            )
            s.add(
                AccessTokenRow(
                    jti=access_jti,
                    family_id=family.id,
                    created_at=family.created_at,
                    expires_at=access_expires_at,
                )
            )

    def family(self, family_id: str) -> TokenFamily | None:
        with self._db.session() as s:
            return _family(s.get(TokenFamilyRow, family_id))

    def family_by_device_code(self, device_code_hash: str) -> TokenFamily | None:
        with self._db.session() as s:
            return _family(
                s.scalar(sa.select(TokenFamilyRow).filter_by(device_code_hash=device_code_hash))
            )

    def refresh_token(self, token_hash: str) -> RefreshToken | None:
        with self._db.session() as s:
            row = s.get(RefreshTokenRow, token_hash)
            if row is None:
                return None
            return RefreshToken(row.token_hash, row.family_id, row.expires_at, row.consumed_at)

    def rotate(
        self,
        old_hash: str,
        new: RefreshToken,
        access_jti: str,
        access_expires_at: float,
        now: float,
    ) -> bool:
        with self._db.session() as s:
            live_family = sa.select(TokenFamilyRow.id).where(TokenFamilyRow.revoked_at.is_(None))
            # Consume-once: one guarded UPDATE, so of two concurrent refreshes exactly one wins.
            consumed = s.execute(
                sa.update(RefreshTokenRow)
                .where(
                    RefreshTokenRow.token_hash == old_hash,
                    RefreshTokenRow.consumed_at.is_(None),
                    RefreshTokenRow.family_id.in_(live_family),
                )
                .values(consumed_at=now)
            )
            if consumed.rowcount != 1:  # type: ignore[attr-defined]
                return False
            s.add(
                RefreshTokenRow(
                    token_hash=new.token_hash,
                    family_id=new.family_id,
                    created_at=now,
                    expires_at=new.expires_at,
                )
            )
            s.add(
                AccessTokenRow(
                    jti=access_jti,
                    family_id=new.family_id,
                    created_at=now,
                    expires_at=access_expires_at,
                )
            )
            return True

    def revoke_family(self, family_id: str, now: float, reason: str) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(TokenFamilyRow)
                .where(TokenFamilyRow.id == family_id, TokenFamilyRow.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]


class SqlKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[SigningKey]:
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(SigningKeyRow).order_by(SigningKeyRow.created_at, SigningKeyRow.kid)
            )
            return [SigningKey(r.kid, r.algorithm, r.private_pem, r.created_at) for r in rows]

    def add(self, key: SigningKey) -> bool:
        try:
            with self._db.session() as s:
                s.add(
                    SigningKeyRow(
                        kid=key.kid,
                        algorithm=key.algorithm,
                        private_pem=key.private_pem,
                        created_at=key.created_at,
                    )
                )
            return True
        except IntegrityError:
            return False
