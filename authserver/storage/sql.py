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
    AccessTokenRecord,
    Actor,
    Admin,
    AdminSession,
    AuditEvent,
    AuditFilter,
    Client,
    ClientKind,
    DeniedToken,
    FamilyFilter,
    MobileDevice,
    RefreshToken,
    SigningKey,
    TokenFamily,
    User,
)
from authserver.storage.models import (
    AccessTokenRow,
    AdminRow,
    AdminSessionRow,
    AuditEventRow,
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
        # hide_parameters: a logged SQL error never carries the values it was called with.
        self.engine = sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)
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
        return User(
            row.user_id, row.username, row.display_name, row.password_hash, row.sessions_revoked_at
        )

    def get(self, user_id: str) -> User | None:
        with self._db.session() as s:
            return self._to_user(s.get(UserRow, user_id))

    def by_username(self, username: str) -> User | None:
        with self._db.session() as s:
            return self._to_user(s.scalar(sa.select(UserRow).filter_by(username=username)))

    def mark_sessions_revoked(self, user_id: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(UserRow).where(UserRow.user_id == user_id).values(sessions_revoked_at=now)
            )

    def search(self, text: str, limit: int) -> list[User]:
        pattern = "%" + _escape_like(text.lower()) + "%"
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(UserRow)
                .where(
                    sa.or_(
                        sa.func.lower(UserRow.username).like(pattern, escape="\\"),
                        sa.func.lower(UserRow.display_name).like(pattern, escape="\\"),
                    )
                )
                .order_by(UserRow.username)
                .limit(limit)
            )
            return [u for u in map(self._to_user, rows) if u is not None]


def _escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern: its % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
        row.revoked_reason,
        row.requester_ip,
        row.requester_user_agent,
    )


def _family_conditions(where: FamilyFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if where.user_id is not None:
        conditions.append(TokenFamilyRow.user_id == where.user_id)
    if where.client_id is not None:
        conditions.append(TokenFamilyRow.client_id == where.client_id)
    if where.mobile_device_ids is not None:
        conditions.append(TokenFamilyRow.mobile_device_id.in_(where.mobile_device_ids))
    if where.active_only:
        conditions.append(TokenFamilyRow.revoked_at.is_(None))
    return conditions


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
                    requester_ip=family.requester_ip,
                    requester_user_agent=family.requester_user_agent,
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
            # Lock the family row: a concurrent revocation then either sees this rotation's new
            # access token (and denies its jti) or makes this rotation fail.
            s.execute(
                sa.select(TokenFamilyRow.id)
                .where(TokenFamilyRow.id == new.family_id)
                .with_for_update()
            )
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

    def families(self, where: FamilyFilter, limit: int, offset: int) -> list[TokenFamily]:
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(TokenFamilyRow)
                .where(*_family_conditions(where))
                .order_by(TokenFamilyRow.created_at.desc(), TokenFamilyRow.id)
                .limit(limit)
                .offset(offset)
            )
            return [f for f in map(_family, rows) if f is not None]

    def revoke_families(self, where: FamilyFilter, now: float, reason: str) -> list[TokenFamily]:
        live = [*_family_conditions(where), TokenFamilyRow.revoked_at.is_(None)]
        with self._db.session() as s:
            # Lock the rows we revoke, so what is returned is exactly what this call revoked.
            rows = list(s.scalars(sa.select(TokenFamilyRow).where(*live).with_for_update()))
            families = [f for f in map(_family, rows) if f is not None]
            if families:
                s.execute(
                    sa.update(TokenFamilyRow)
                    .where(
                        TokenFamilyRow.id.in_([f.id for f in families]),
                        TokenFamilyRow.revoked_at.is_(None),
                    )
                    .values(revoked_at=now, revoked_reason=reason)
                )
            return families

    def access_token(self, jti: str) -> AccessTokenRecord | None:
        with self._db.session() as s:
            row = s.get(AccessTokenRow, jti)
            if row is None:
                return None
            return AccessTokenRecord(row.jti, row.family_id, row.expires_at, row.revoked_at)

    def revoke_access_token(self, jti: str, now: float) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(AccessTokenRow)
                .where(AccessTokenRow.jti == jti, AccessTokenRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def live_access_tokens(self, family_ids: list[str], now: float) -> list[DeniedToken]:
        if not family_ids:
            return []
        with self._db.session() as s:
            rows = s.execute(
                sa.select(AccessTokenRow.jti, AccessTokenRow.expires_at).where(
                    AccessTokenRow.family_id.in_(family_ids), AccessTokenRow.expires_at > now
                )
            )
            return [DeniedToken(jti, expires_at) for jti, expires_at in rows]

    def denied_access_tokens(self, now: float) -> list[DeniedToken]:
        with self._db.session() as s:
            rows = s.execute(
                sa.select(AccessTokenRow.jti, AccessTokenRow.expires_at)
                .join(TokenFamilyRow, TokenFamilyRow.id == AccessTokenRow.family_id)
                .join(ClientRow, ClientRow.client_id == TokenFamilyRow.client_id)
                .where(
                    AccessTokenRow.expires_at > now,
                    sa.or_(
                        AccessTokenRow.revoked_at.is_not(None),
                        TokenFamilyRow.revoked_at.is_not(None),
                        ClientRow.disabled_at.is_not(None),
                    ),
                )
            )
            return [DeniedToken(jti, expires_at) for jti, expires_at in rows]


class SqlAdmins:
    """Admin accounts and their sessions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, admin: Admin, now: float) -> None:
        try:
            with self._db.session() as s:
                s.add(
                    AdminRow(
                        admin_id=admin.admin_id,
                        username=admin.username,
                        password_hash=admin.password_hash,
                        created_at=now,
                    )
                )
        except IntegrityError:
            raise Conflict(f"The admin {admin.username!r} exists.") from None

    @staticmethod
    def _to_admin(row: AdminRow | None) -> Admin | None:
        return None if row is None else Admin(row.admin_id, row.username, row.password_hash)

    def get(self, admin_id: str) -> Admin | None:
        with self._db.session() as s:
            return self._to_admin(s.get(AdminRow, admin_id))

    def by_username(self, username: str) -> Admin | None:
        with self._db.session() as s:
            return self._to_admin(s.scalar(sa.select(AdminRow).filter_by(username=username)))

    def set_password(self, admin_id: str, password_hash: str) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(AdminRow)
                .where(AdminRow.admin_id == admin_id)
                .values(password_hash=password_hash)
            )

    def add_session(self, session: AdminSession) -> None:
        with self._db.session() as s:
            s.add(
                AdminSessionRow(
                    token_hash=session.token_hash,
                    admin_id=session.admin_id,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                )
            )

    def session(self, token_hash: str) -> AdminSession | None:
        with self._db.session() as s:
            row = s.get(AdminSessionRow, token_hash)
            if row is None:
                return None
            return AdminSession(
                row.token_hash, row.admin_id, row.created_at, row.expires_at, row.revoked_at
            )

    def revoke_session(self, token_hash: str, now: float) -> None:
        with self._db.session() as s:
            s.execute(
                sa.update(AdminSessionRow)
                .where(
                    AdminSessionRow.token_hash == token_hash, AdminSessionRow.revoked_at.is_(None)
                )
                .values(revoked_at=now)
            )


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


class SqlKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[SigningKey]:
        with self._db.session() as s:
            rows = s.scalars(
                sa.select(SigningKeyRow).order_by(SigningKeyRow.created_at, SigningKeyRow.kid)
            )
            return [SigningKey(r.kid, r.algorithm, r.private_pem, r.created_at) for r in rows]

    def remove(self, kid: str) -> None:
        with self._db.session() as s:
            s.execute(sa.delete(SigningKeyRow).where(SigningKeyRow.kid == kid))

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
