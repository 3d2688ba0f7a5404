"""SQLAlchemy 2.0 typed models; every change comes with an Alembic revision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic revisions are reproducible on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Timestamp(sa.types.TypeDecorator[float]):
    """Unix seconds in Python, a timezone-aware UTC timestamp in the database."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Any) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> float | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite keeps no zone; we only ever write UTC
            value = value.replace(tzinfo=UTC)
        return value.timestamp()


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class ClientRow(Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    scope: Mapped[str] = mapped_column(sa.String(1000))
    secret_hash: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[float] = mapped_column(Timestamp())


class UserRow(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(150), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(300))
    created_at: Mapped[float] = mapped_column(Timestamp())


class MobileDeviceRow(Base):
    """A signed-in phone; the token is bound to the app's device id (seed 003)."""

    __tablename__ = "mobile_devices"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.user_id"), index=True)
    device_id: Mapped[str] = mapped_column(sa.String(200))
    name: Mapped[str] = mapped_column(sa.String(200))
    platform: Mapped[str] = mapped_column(sa.String(50))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Timestamp())
    expires_at: Mapped[float] = mapped_column(Timestamp())
    revoked_at: Mapped[float | None] = mapped_column(Timestamp())


class TokenFamilyRow(Base):
    """One approved login and everything issued from it."""

    __tablename__ = "token_families"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.user_id"), index=True)
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("clients.client_id"), index=True)
    mobile_device_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("mobile_devices.id"), index=True
    )
    scope: Mapped[str] = mapped_column(sa.String(1000))
    # Lets a device code replayed after its flow left Redis still revoke this family.
    device_code_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Timestamp())
    revoked_at: Mapped[float | None] = mapped_column(Timestamp())
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(100))


class RefreshTokenRow(Base):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(sa.ForeignKey("token_families.id"), index=True)
    created_at: Mapped[float] = mapped_column(Timestamp())
    expires_at: Mapped[float] = mapped_column(Timestamp())
    consumed_at: Mapped[float | None] = mapped_column(Timestamp())


class AccessTokenRow(Base):
    """The jti of every access token, so a family's tokens can be found and revoked."""

    __tablename__ = "access_tokens"

    jti: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(sa.ForeignKey("token_families.id"), index=True)
    created_at: Mapped[float] = mapped_column(Timestamp())
    expires_at: Mapped[float] = mapped_column(Timestamp())


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(sa.String(16))
    private_pem: Mapped[str] = mapped_column(sa.Text())
    created_at: Mapped[float] = mapped_column(Timestamp())
