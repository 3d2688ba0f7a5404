"""Authorization requests of the code flow and the codes they become, in SQL."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from authserver.domain.authorization import KEPT_AFTER_EXPIRY
from authserver.domain.models import Authorization
from authserver.storage.models import AuthorizationCodeRow
from authserver.storage.sql.database import Database

_CODES = cast(sa.Table, AuthorizationCodeRow.__table__)


def _authorization(row: Any) -> Authorization:
    return Authorization(
        id=row.id,
        client_id=row.client_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        state=row.state,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        created_at=row.created_at,
        expires_at=row.expires_at,
        flow_hash=row.flow_hash,
        code_hash=row.code_hash,
        user_id=row.user_id,
        mobile_device_id=row.mobile_device_id,
        session_id=row.session_id,
        auth_time=row.auth_time,
        amr=tuple(row.amr.split()),
        used_at=row.used_at,
        family_id=row.family_id,
    )


class SqlAuthorizationCodes:
    """Authorization requests and codes; those expired for a while are deleted as new ones come."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, authorization: Authorization) -> None:
        a = authorization
        with self._db.session() as s:
            # One statement keeps the table bounded (expires_at is indexed); nothing refers to
            # these rows, and a code past KEPT_AFTER_EXPIRY is no longer worth recognising.
            s.execute(
                sa.delete(AuthorizationCodeRow).where(
                    AuthorizationCodeRow.expires_at <= a.created_at - KEPT_AFTER_EXPIRY
                )
            )
            s.add(
                AuthorizationCodeRow(
                    id=a.id,
                    client_id=a.client_id,
                    redirect_uri=a.redirect_uri,
                    scope=a.scope,
                    state=a.state,
                    nonce=a.nonce,
                    code_challenge=a.code_challenge,
                    created_at=a.created_at,
                    expires_at=a.expires_at,
                    flow_hash=a.flow_hash,
                    code_hash=a.code_hash,
                    user_id=a.user_id,
                    mobile_device_id=a.mobile_device_id,
                    session_id=a.session_id,
                    auth_time=a.auth_time,
                    amr=" ".join(a.amr),
                )
            )

    def _one(self, *where: sa.ColumnElement[bool], lock: bool = False) -> Authorization | None:
        with self._db.session() as s:
            query = sa.select(_CODES).where(*where)
            if lock:
                query = query.with_for_update()
            row = s.execute(query).first()
            return None if row is None else _authorization(row)

    def get(self, authorization_id: str) -> Authorization | None:
        return self._one(_CODES.c.id == authorization_id)

    def by_flow(self, flow_hash: str) -> Authorization | None:
        return self._one(_CODES.c.flow_hash == flow_hash)

    def set_code(self, issued: Authorization) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(AuthorizationCodeRow)
                .where(
                    AuthorizationCodeRow.id == issued.id,
                    AuthorizationCodeRow.code_hash.is_(None),
                )
                .values(
                    code_hash=issued.code_hash,
                    expires_at=issued.expires_at,
                    user_id=issued.user_id,
                    mobile_device_id=issued.mobile_device_id,
                    session_id=issued.session_id,
                    auth_time=issued.auth_time,
                    amr=" ".join(issued.amr),
                )
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def lock_by_code(self, code_hash: str) -> Authorization | None:
        # FOR UPDATE: two exchanges of one code are serialised, so exactly one issues and the
        # other sees it used (SQLite serialises whole transactions instead, BEGIN IMMEDIATE).
        return self._one(_CODES.c.code_hash == code_hash, lock=True)

    def mark_used(self, authorization_id: str, now: float, family_id: str | None) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(AuthorizationCodeRow)
                .where(
                    AuthorizationCodeRow.id == authorization_id,
                    AuthorizationCodeRow.used_at.is_(None),
                )
                .values(used_at=now, family_id=family_id)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]
