"""Row mappers: SQL rows to the domain's records, by keyword, for any select that holds the
table's columns (alone or joined), so each record is read the same way everywhere."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from authserver.domain.models import Client, ClientKind, GrantType, MobileDevice, User
from authserver.storage.models import ClientRow, MobileDeviceRow, UserRow

CLIENTS = cast(sa.Table, ClientRow.__table__)
USERS = cast(sa.Table, UserRow.__table__)
DEVICES = cast(sa.Table, MobileDeviceRow.__table__)


def client_from(row: Any) -> Client:
    m = row._mapping
    return Client(
        client_id=m[CLIENTS.c.client_id],
        name=m[CLIENTS.c.name],
        scope=m[CLIENTS.c.scope],
        secret_hash=m[CLIENTS.c.secret_hash],
        kind=ClientKind(m[CLIENTS.c.kind]),
        disabled_at=m[CLIENTS.c.disabled_at],
        sessions_revoked_at=m[CLIENTS.c.sessions_revoked_at],
        redirect_uris=tuple(m[CLIENTS.c.redirect_uris].split()),
        post_logout_redirect_uris=tuple(m[CLIENTS.c.post_logout_redirect_uris].split()),
        grant_types=tuple(GrantType(g) for g in m[CLIENTS.c.grant_types].split()),
        number_matching=bool(m[CLIENTS.c.number_matching]),
        deleted_at=m[CLIENTS.c.deleted_at],
    )


def user_from(row: Any) -> User:
    m = row._mapping
    return User(
        user_id=m[USERS.c.user_id],
        username=m[USERS.c.username] or "",  # a deleted user's is NULL
        display_name=m[USERS.c.display_name],
        password_hash=m[USERS.c.password_hash],
        sessions_revoked_at=m[USERS.c.sessions_revoked_at],
        email=m[USERS.c.email],
        email_verified=bool(m[USERS.c.email_verified]),
        disabled_at=m[USERS.c.disabled_at],
        deleted_at=m[USERS.c.deleted_at],
    )


def device_from(row: Any) -> MobileDevice:
    m = row._mapping
    return MobileDevice(
        id=m[DEVICES.c.id],
        user_id=m[DEVICES.c.user_id],
        device_id=m[DEVICES.c.device_id],
        name=m[DEVICES.c.name],
        platform=m[DEVICES.c.platform],
        token_hash=m[DEVICES.c.token_hash],
        expires_at=m[DEVICES.c.expires_at],
        revoked_at=m[DEVICES.c.revoked_at],
        created_at=m[DEVICES.c.created_at],
        dpop_jkt=m[DEVICES.c.dpop_jkt],
    )
