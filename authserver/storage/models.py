"""SQLAlchemy 2.0 typed models; every change comes with an Alembic revision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from authserver.domain.models import DEFAULT_GRANT_TYPES

# What clients registered before grants were kept per client may use.
DEFAULT_GRANTS = " ".join(DEFAULT_GRANT_TYPES)

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
    kind: Mapped[str] = mapped_column(sa.String(20), server_default="device")
    disabled_at: Mapped[float | None] = mapped_column(Timestamp())
    sessions_revoked_at: Mapped[float | None] = mapped_column(Timestamp())
    # Space-separated (a URI has no spaces): exact redirect URIs (RFC 6749 §3.1.2.2), the
    # post-logout ones (OIDC RP-Initiated Logout §3.1), and the grants the client may use.
    redirect_uris: Mapped[str] = mapped_column(sa.Text(), server_default="")
    post_logout_redirect_uris: Mapped[str] = mapped_column(sa.Text(), server_default="")
    grant_types: Mapped[str] = mapped_column(sa.String(300), server_default=DEFAULT_GRANTS)
    number_matching: Mapped[bool] = mapped_column(sa.Boolean(), server_default=sa.false())
    # Deleted by an operator: a disabled tombstone, kept for the families that name it.
    deleted_at: Mapped[float | None] = mapped_column(Timestamp())


class ClientLogoRow(Base):
    """A client's logo, a small PNG the server re-encoded (never the operator's file as is)."""

    __tablename__ = "client_logos"

    client_id: Mapped[str] = mapped_column(sa.ForeignKey("clients.client_id"), primary_key=True)
    png: Mapped[bytes] = mapped_column(sa.LargeBinary())
    updated_at: Mapped[float] = mapped_column(Timestamp())


class UserRow(Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    # NULL once deleted: the name is free, and no name anyone picks can collide with a tombstone.
    username: Mapped[str | None] = mapped_column(sa.String(150), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    # NULL: an external identity provider's user (token exchange), with no password here.
    password_hash: Mapped[str | None] = mapped_column(sa.String(300))
    created_at: Mapped[float] = mapped_column(Timestamp())
    sessions_revoked_at: Mapped[float | None] = mapped_column(Timestamp())
    email: Mapped[str | None] = mapped_column(sa.String(320))  # RFC 5321 §4.5.3.1 limits
    email_verified: Mapped[bool] = mapped_column(sa.Boolean(), server_default=sa.false())
    disabled_at: Mapped[float | None] = mapped_column(Timestamp())
    # Erased by an operator: no name, password or email left; the row stays for its families.
    deleted_at: Mapped[float | None] = mapped_column(Timestamp())


class ExternalIdentityRow(Base):
    """A subject of a trusted identity provider and the local user it is (RFC 8693 exchange).

    The primary key (issuer, subject) is what makes concurrent first exchanges of one subject
    produce one user: the second insert fails and finds the first one's link.
    """

    __tablename__ = "external_identities"

    issuer: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(255), primary_key=True)  # OIDC Core §2
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.user_id"), index=True)
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
    # RFC 7638 thumbprint of the key registered at sign-in: every mobile call proves it (RFC 9449).
    dpop_jkt: Mapped[str | None] = mapped_column(sa.String(43))


class TokenFamilyRow(Base):
    """One approved login (a session) and everything issued from it.

    It holds its current refresh token (and the one before it, for the rotation grace period),
    so issuing a login is one row and a rotation one UPDATE; spent tokens go to
    spent_refresh_tokens, where a replay is recognised.
    """

    __tablename__ = "token_families"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.user_id"), index=True)
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("clients.client_id"), index=True)
    mobile_device_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("mobile_devices.id"), index=True
    )
    scope: Mapped[str] = mapped_column(sa.String(1000))
    # One family per device code, whatever the flow store says: a second issue is impossible,
    # and a device code replayed after its flow left Redis still finds (and revokes) this family.
    device_code_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Timestamp())
    revoked_at: Mapped[float | None] = mapped_column(Timestamp())
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(100))
    requester_ip: Mapped[str] = mapped_column(sa.String(64), server_default="")
    requester_user_agent: Mapped[str] = mapped_column(sa.String(200), server_default="")
    refresh_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    refresh_expires_at: Mapped[float | None] = mapped_column(Timestamp())
    # The token the last rotation replaced: presented again before grace_until (the rotation's
    # response was lost), it rotates once more instead of revoking the family; once only.
    previous_refresh_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    grace_until: Mapped[float | None] = mapped_column(Timestamp())
    # How the user authenticated (OIDC Core §2), so refreshed ID tokens repeat it (§12.2):
    # auth_time, and the amr values space-separated.
    auth_time: Mapped[float | None] = mapped_column(Timestamp())
    amr: Mapped[str] = mapped_column(sa.String(100), server_default="")
    # RFC 9449: the DPoP key the tokens were issued to; a public client's refresh needs it.
    dpop_jkt: Mapped[str | None] = mapped_column(sa.String(43))
    # The last rotation (RFC 6749 §6): "this wasn't me" shows the login still in use.
    refreshed_at: Mapped[float | None] = mapped_column(Timestamp())
    # The PC's place (a country code or the kind of address): "first sign-in from this place".
    requester_place: Mapped[str] = mapped_column(sa.String(50), server_default="")

    __table_args__ = (sa.Index("ix_token_families_user_place", "user_id", "requester_place"),)


class SpentRefreshTokenRow(Base):
    """A refresh token that was rotated away: presented again, it revokes its family."""

    __tablename__ = "spent_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(sa.ForeignKey("token_families.id"), index=True)
    spent_at: Mapped[float] = mapped_column(Timestamp())


class RevokedAccessTokenRow(Base):
    """An access token revoked on its own (RFC 7009 with an access token); a family's revocation
    covers its access tokens through their `sid` claim instead."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(sa.ForeignKey("token_families.id"), index=True)
    expires_at: Mapped[float] = mapped_column(Timestamp(), index=True)
    revoked_at: Mapped[float] = mapped_column(Timestamp())


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(sa.String(16))
    private_pem: Mapped[str] = mapped_column(sa.Text())
    created_at: Mapped[float] = mapped_column(Timestamp())


class AdminRow(Base):
    """An operator; separate from users and clients so no other credential can act as one."""

    __tablename__ = "admins"

    admin_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(150), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(300))
    created_at: Mapped[float] = mapped_column(Timestamp())
    disabled_at: Mapped[float | None] = mapped_column(Timestamp())


class AdminSessionRow(Base):
    __tablename__ = "admin_sessions"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    admin_id: Mapped[str] = mapped_column(sa.ForeignKey("admins.admin_id"), index=True)
    created_at: Mapped[float] = mapped_column(Timestamp())
    expires_at: Mapped[float] = mapped_column(Timestamp())
    revoked_at: Mapped[float | None] = mapped_column(Timestamp())


class DeviceCookieRow(Base):
    """Known-device cookies (domain.models.DeviceCookie), by the SHA-256 of the cookie."""

    __tablename__ = "device_cookies"

    cookie_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    account_kind: Mapped[str] = mapped_column(sa.String(10))
    username: Mapped[str] = mapped_column(sa.String(150))
    issued_at: Mapped[float] = mapped_column(Timestamp())
    expires_at: Mapped[float] = mapped_column(Timestamp(), index=True)


class AuditEventRow(Base):
    """The audit trail. No foreign keys: it outlives and describes the rows it names."""

    __tablename__ = "audit_events"

    # SQLite only auto-increments an INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    occurred_at: Mapped[float] = mapped_column(Timestamp(), index=True)
    event: Mapped[str] = mapped_column(sa.String(50), index=True)
    actor_type: Mapped[str] = mapped_column(sa.String(20))
    actor_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    ip: Mapped[str] = mapped_column(sa.String(64))
    user_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    client_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    mobile_device_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    family_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    flow_ref: Mapped[str | None] = mapped_column(sa.String(16), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON())
    # Set for events that happen once per subject (a flow's expiry), so repeats are dropped.
    once_key: Mapped[str | None] = mapped_column(sa.String(120), unique=True)


class BrowserSessionRow(Base):
    """A browser signed in by a QR login (the OP session behind prompt=none); the cookie's
    secret is stored as its SHA-256 only."""

    __tablename__ = "browser_sessions"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.user_id"), index=True)
    mobile_device_id: Mapped[str] = mapped_column(sa.ForeignKey("mobile_devices.id"), index=True)
    auth_time: Mapped[float] = mapped_column(Timestamp())
    amr: Mapped[str] = mapped_column(sa.String(100), server_default="")
    created_at: Mapped[float] = mapped_column(Timestamp())
    expires_at: Mapped[float] = mapped_column(Timestamp())
    ended_at: Mapped[float | None] = mapped_column(Timestamp())


class AuthorizationCodeRow(Base):
    """An authorization request of the code flow and the code it becomes (RFC 6749 §4.1).

    Written when /authorize accepts the request; `code_hash` is set once the QR login (the
    flow whose device code hashes to `flow_hash`) is redeemed, or at once from a live browser
    session; `used_at` and `family_id` when the code is exchanged, once.
    """

    __tablename__ = "authorization_codes"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(sa.ForeignKey("clients.client_id"), index=True)
    redirect_uri: Mapped[str] = mapped_column(sa.String(500))
    scope: Mapped[str] = mapped_column(sa.String(1000))
    state: Mapped[str | None] = mapped_column(sa.String(1000))
    nonce: Mapped[str | None] = mapped_column(sa.String(500))
    code_challenge: Mapped[str | None] = mapped_column(sa.String(43))
    created_at: Mapped[float] = mapped_column(Timestamp())
    expires_at: Mapped[float] = mapped_column(Timestamp(), index=True)
    # One code per QR login, whatever the flow store says: a second issue is impossible.
    flow_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    code_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[str | None] = mapped_column(sa.ForeignKey("users.user_id"), index=True)
    mobile_device_id: Mapped[str | None] = mapped_column(sa.ForeignKey("mobile_devices.id"))
    session_id: Mapped[str | None] = mapped_column(sa.ForeignKey("browser_sessions.id"))
    auth_time: Mapped[float | None] = mapped_column(Timestamp())
    amr: Mapped[str] = mapped_column(sa.String(100), server_default="")
    used_at: Mapped[float | None] = mapped_column(Timestamp())
    family_id: Mapped[str | None] = mapped_column(sa.ForeignKey("token_families.id"))
