"""Token families (sessions), their refresh tokens and revoked access tokens in SQL."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from authserver.domain.models import (
    Denial,
    DenialKind,
    FamilyFilter,
    PresentedRefreshToken,
    RefreshToken,
    RefreshTokenStanding,
    TokenFamily,
)
from authserver.storage.models import (
    RevokedAccessTokenRow,
    SpentRefreshTokenRow,
    Timestamp,
    TokenFamilyRow,
)
from authserver.storage.sql.database import Database
from authserver.storage.sql.rows import CLIENTS

_FAMILY = cast(sa.Table, TokenFamilyRow.__table__)
_FAMILY_COLUMNS = (
    _FAMILY.c.id,
    _FAMILY.c.user_id,
    _FAMILY.c.client_id,
    _FAMILY.c.mobile_device_id,
    _FAMILY.c.scope,
    _FAMILY.c.device_code_hash,
    _FAMILY.c.created_at,
    _FAMILY.c.revoked_at,
    _FAMILY.c.revoked_reason,
    _FAMILY.c.requester_ip,
    _FAMILY.c.requester_user_agent,
    _FAMILY.c.auth_time,
    _FAMILY.c.amr,
    _FAMILY.c.dpop_jkt,
    _FAMILY.c.requester_place,
    _FAMILY.c.refreshed_at,
)


def _family(row: Any) -> TokenFamily:
    return TokenFamily(
        id=row.id,
        user_id=row.user_id,
        client_id=row.client_id,
        mobile_device_id=row.mobile_device_id,
        scope=row.scope,
        device_code_hash=row.device_code_hash,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
        requester_ip=row.requester_ip,
        requester_user_agent=row.requester_user_agent,
        auth_time=row.auth_time,
        amr=tuple(row.amr.split()),
        dpop_jkt=row.dpop_jkt,
        requester_place=row.requester_place,
        refreshed_at=row.refreshed_at,
    )


def _family_conditions(where: FamilyFilter) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if where.user_id is not None:
        conditions.append(_FAMILY.c.user_id == where.user_id)
    if where.client_id is not None:
        conditions.append(_FAMILY.c.client_id == where.client_id)
    if where.mobile_device_ids is not None:
        conditions.append(_FAMILY.c.mobile_device_id.in_(where.mobile_device_ids))
    if where.active_only:
        conditions.append(_FAMILY.c.revoked_at.is_(None))
    return conditions


class SqlTokens:
    """Token families, the refresh-token chain and access tokens revoked on their own."""

    def __init__(self, db: Database) -> None:
        self._db = db
        dialect = postgresql if db.dialect == "postgresql" else sqlite
        # RFC 8628: one grant per device code. ON CONFLICT DO NOTHING keeps the unit of work
        # usable when the code already has a family (an IntegrityError would abort it).
        self._insert_family = (
            dialect.insert(_FAMILY)
            .on_conflict_do_nothing(index_elements=[_FAMILY.c.device_code_hash])
            .returning(_FAMILY.c.id)
        )

    def issue(self, family: TokenFamily, refresh: RefreshToken | None) -> bool:
        with self._db.session() as s:
            result = s.execute(
                self._insert_family.values(
                    id=family.id,
                    user_id=family.user_id,
                    client_id=family.client_id,
                    mobile_device_id=family.mobile_device_id,
                    scope=family.scope,
                    device_code_hash=family.device_code_hash,
                    created_at=family.created_at,
                    requester_ip=family.requester_ip,
                    requester_user_agent=family.requester_user_agent,
                    auth_time=family.auth_time,
                    amr=" ".join(family.amr),
                    dpop_jkt=family.dpop_jkt,
                    requester_place=family.requester_place,
                    # No refresh token (OpenID Connect without offline_access): none to match.
                    refresh_hash=refresh.token_hash if refresh else None,
                    refresh_expires_at=refresh.expires_at if refresh else None,
                )
            )
            return result.first() is not None

    def _one_family(self, *where: sa.ColumnElement[bool]) -> TokenFamily | None:
        with self._db.session() as s:
            row = s.execute(sa.select(*_FAMILY_COLUMNS).where(*where)).first()
            return None if row is None else _family(row)

    def family(self, family_id: str) -> TokenFamily | None:
        return self._one_family(_FAMILY.c.id == family_id)

    def family_by_device_code(self, device_code_hash: str) -> TokenFamily | None:
        return self._one_family(_FAMILY.c.device_code_hash == device_code_hash)

    def presented_refresh_token(
        self, token_hash: str, *, lock: bool = True
    ) -> PresentedRefreshToken | None:
        columns = (
            *_FAMILY_COLUMNS,
            _FAMILY.c.refresh_hash,
            _FAMILY.c.refresh_expires_at,
            _FAMILY.c.grace_until,
        )
        holding = sa.select(*columns).where(
            sa.or_(
                _FAMILY.c.refresh_hash == token_hash,
                _FAMILY.c.previous_refresh_hash == token_hash,
            )
        )
        spending = (
            sa.select(*columns)
            .join(SpentRefreshTokenRow, SpentRefreshTokenRow.family_id == _FAMILY.c.id)
            .where(SpentRefreshTokenRow.token_hash == token_hash)
        )
        if lock:
            # The family stays locked until the unit of work ends: two rotations serialise,
            # and a revocation either waits for this one or makes it fail.
            holding = holding.with_for_update()
            spending = spending.with_for_update(of=_FAMILY)
        with self._db.session() as s:
            row = s.execute(holding).first()
            standing = RefreshTokenStanding.SPENT
            if row is not None:
                standing = (
                    RefreshTokenStanding.CURRENT
                    if row.refresh_hash == token_hash
                    else RefreshTokenStanding.PREVIOUS
                )
            else:
                row = s.execute(spending).first()
            if row is None:
                return None
            return PresentedRefreshToken(
                family=_family(row),
                standing=standing,
                expires_at=row.refresh_expires_at,
                grace_until=row.grace_until,
            )

    def rotate(
        self,
        family_id: str,
        standing: RefreshTokenStanding,
        presented_hash: str,
        new: RefreshToken,
        now: float,
        grace_until: float | None,
    ) -> bool:
        # From CURRENT the previous token is spent and the presented one becomes the previous;
        # from PREVIOUS (the grace period) the current one, never delivered, is spent.
        is_current = standing is RefreshTokenStanding.CURRENT
        spent = _FAMILY.c.previous_refresh_hash if is_current else _FAMILY.c.refresh_hash
        matches = _FAMILY.c.refresh_hash if is_current else _FAMILY.c.previous_refresh_hash
        live = (
            _FAMILY.c.id == family_id,
            _FAMILY.c.revoked_at.is_(None),
            matches == presented_hash,
        )
        values: dict[str, Any] = {
            "refresh_hash": new.token_hash,
            "refresh_expires_at": new.expires_at,
            "grace_until": grace_until,
            "refreshed_at": now,
        }
        if is_current:
            values["previous_refresh_hash"] = presented_hash
        with self._db.session() as s:
            s.execute(
                sa.insert(SpentRefreshTokenRow).from_select(
                    ["token_hash", "family_id", "spent_at"],
                    sa.select(spent, _FAMILY.c.id, sa.literal(now, Timestamp())).where(
                        *live, spent.is_not(None)
                    ),
                )
            )
            # Consume-once: one guarded UPDATE, so of two concurrent rotations one wins.
            result = s.execute(sa.update(_FAMILY).where(*live).values(**values))
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def revoke_family(self, family_id: str, now: float, reason: str) -> bool:
        with self._db.session() as s:
            result = s.execute(
                sa.update(_FAMILY)
                .where(_FAMILY.c.id == family_id, _FAMILY.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def signed_in_from(self, user_id: str, place: str) -> bool:
        with self._db.session() as s:
            found = s.execute(
                sa.select(sa.literal(1))
                .where(_FAMILY.c.user_id == user_id, _FAMILY.c.requester_place == place)
                .limit(1)
            ).first()
            return found is not None

    def families(self, where: FamilyFilter, limit: int, offset: int) -> list[TokenFamily]:
        with self._db.session() as s:
            rows = s.execute(
                sa.select(*_FAMILY_COLUMNS)
                .where(*_family_conditions(where))
                .order_by(_FAMILY.c.created_at.desc(), _FAMILY.c.id)
                .limit(limit)
                .offset(offset)
            )
            return [_family(row) for row in rows]

    def revoke_families(self, where: FamilyFilter, now: float, reason: str) -> list[TokenFamily]:
        with self._db.session() as s:
            # One guarded UPDATE: what it returns is exactly what this call revoked.
            rows = s.execute(
                sa.update(_FAMILY)
                .where(*_family_conditions(where), _FAMILY.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
                .returning(*_FAMILY_COLUMNS)
            )
            return [_family(row) for row in rows]

    def revoke_access_token(self, jti: str, family_id: str, expires_at: float, now: float) -> bool:
        dialect = postgresql if self._db.dialect == "postgresql" else sqlite
        with self._db.session() as s:
            result = s.execute(
                dialect.insert(RevokedAccessTokenRow.__table__)
                .values(jti=jti, family_id=family_id, expires_at=expires_at, revoked_at=now)
                .on_conflict_do_nothing(index_elements=["jti"])
                .returning(RevokedAccessTokenRow.jti)
            )
            return result.first() is not None

    def access_token_revoked(self, jti: str) -> bool:
        with self._db.session() as s:
            return (
                s.scalar(
                    sa.select(RevokedAccessTokenRow.jti).where(RevokedAccessTokenRow.jti == jti)
                )
                is not None
            )

    def denials(self, now: float, access_token_ttl: float) -> list[Denial]:
        with self._db.session() as s:
            tokens = s.execute(
                sa.select(RevokedAccessTokenRow.jti, RevokedAccessTokenRow.expires_at).where(
                    RevokedAccessTokenRow.expires_at > now
                )
            )
            denials = [Denial(DenialKind.ACCESS_TOKEN, jti, until) for jti, until in tokens]
            # A session's access tokens were all issued before it was revoked, so the last of
            # them expires access_token_ttl after the revocation.
            sessions = s.execute(
                sa.select(_FAMILY.c.id, _FAMILY.c.revoked_at).where(
                    _FAMILY.c.revoked_at > now - access_token_ttl
                )
            )
            denials += [
                Denial(DenialKind.SESSION, family_id, revoked_at + access_token_ttl)
                for family_id, revoked_at in sessions
            ]
            # A disabled client gets no tokens after disabled_at, however it was disabled.
            of_disabled = s.execute(
                sa.select(_FAMILY.c.id, CLIENTS.c.disabled_at)
                .join(CLIENTS, CLIENTS.c.client_id == _FAMILY.c.client_id)
                .where(CLIENTS.c.disabled_at > now - access_token_ttl)
            )
            denials += [
                Denial(DenialKind.SESSION, family_id, disabled_at + access_token_ttl)
                for family_id, disabled_at in of_disabled
            ]
            return denials
