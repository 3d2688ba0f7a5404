"""lighter token storage: the family holds its refresh token; no row per access token

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:00:00

Issuing a login used to write three rows (family, refresh token, access token) and a rotation
three statements more. Now a family row holds its current refresh token (and the previous one,
for the rotation grace period); spent refresh tokens are kept apart for replay detection; and an
access token is a row only once it is revoked on its own: a family's revocation reaches its
access tokens through their `sid` claim.

Upgrade notes: access tokens issued before this revision carry no `sid` and are refused from now
on (clients refresh, as after any 401); refresh tokens keep working.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refresh_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("refresh_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("previous_refresh_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_token_families_refresh_hash"), ["refresh_hash"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_token_families_previous_refresh_hash"), ["previous_refresh_hash"]
        )

    op.create_table(
        "spent_refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["token_families.id"],
            name=op.f("fk_spent_refresh_tokens_family_id_token_families"),
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_spent_refresh_tokens")),
    )
    with op.batch_alter_table("spent_refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_spent_refresh_tokens_family_id"), ["family_id"], unique=False
        )

    op.create_table(
        "revoked_access_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["token_families.id"],
            name=op.f("fk_revoked_access_tokens_family_id_token_families"),
        ),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_access_tokens")),
    )
    with op.batch_alter_table("revoked_access_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_revoked_access_tokens_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_revoked_access_tokens_family_id"), ["family_id"], unique=False
        )

    # The live refresh token of each family moves into the family row; consumed ones are spent.
    op.execute(
        """
        UPDATE token_families SET
            refresh_hash = (
                SELECT r.token_hash FROM refresh_tokens r
                WHERE r.family_id = token_families.id AND r.consumed_at IS NULL
                ORDER BY r.created_at DESC, r.token_hash LIMIT 1),
            refresh_expires_at = (
                SELECT r.expires_at FROM refresh_tokens r
                WHERE r.family_id = token_families.id AND r.consumed_at IS NULL
                ORDER BY r.created_at DESC, r.token_hash LIMIT 1)
        """
    )
    op.execute(
        """
        INSERT INTO spent_refresh_tokens (token_hash, family_id, spent_at)
        SELECT r.token_hash, r.family_id, COALESCE(r.consumed_at, r.created_at)
        FROM refresh_tokens r
        WHERE r.token_hash NOT IN (
            SELECT f.refresh_hash FROM token_families f WHERE f.refresh_hash IS NOT NULL)
        """
    )
    op.execute(
        """
        INSERT INTO revoked_access_tokens (jti, family_id, expires_at, revoked_at)
        SELECT a.jti, a.family_id, a.expires_at, a.revoked_at
        FROM access_tokens a WHERE a.revoked_at IS NOT NULL
        """
    )

    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refresh_tokens_family_id"))
    op.drop_table("refresh_tokens")
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_tokens_expires_at"))
        batch_op.drop_index(batch_op.f("ix_access_tokens_family_id"))
    op.drop_table("access_tokens")


def downgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["token_families.id"],
            name=op.f("fk_access_tokens_family_id_token_families"),
        ),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_access_tokens")),
    )
    with op.batch_alter_table("access_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_tokens_family_id"), ["family_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_access_tokens_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["token_families.id"],
            name=op.f("fk_refresh_tokens_family_id_token_families"),
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_refresh_tokens")),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_refresh_tokens_family_id"), ["family_id"], unique=False
        )
    op.execute(
        """
        INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, consumed_at)
        SELECT f.refresh_hash, f.id, f.created_at,
               f.refresh_expires_at, NULL
        FROM token_families f WHERE f.refresh_hash IS NOT NULL
        """
    )
    op.execute(
        """
        INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, consumed_at)
        SELECT s.token_hash, s.family_id, s.spent_at, s.spent_at, s.spent_at
        FROM spent_refresh_tokens s
        """
    )
    op.drop_table("revoked_access_tokens")
    op.drop_table("spent_refresh_tokens")
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_token_families_previous_refresh_hash"), type_="unique"
        )
        batch_op.drop_constraint(batch_op.f("uq_token_families_refresh_hash"), type_="unique")
        batch_op.drop_column("grace_until")
        batch_op.drop_column("previous_refresh_hash")
        batch_op.drop_column("refresh_expires_at")
        batch_op.drop_column("refresh_hash")
