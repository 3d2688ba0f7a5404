"""Token families, the refresh-token chain and access-token ids in SQL."""

from __future__ import annotations

import sqlalchemy as sa

from authserver.domain.models import (
    AccessTokenRecord,
    DeniedToken,
    FamilyFilter,
    RefreshToken,
    TokenFamily,
)
from authserver.storage.models import AccessTokenRow, ClientRow, RefreshTokenRow, TokenFamilyRow
from authserver.storage.sql.database import Database


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
