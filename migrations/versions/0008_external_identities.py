"""external identities: users of trusted identity providers, linked by iss + sub

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00

The token exchange grant (RFC 8693) signs the mobile app in with a token from the team's own
identity provider. `external_identities` links each subject (`iss` + `sub`, the primary key, so
one subject is one user even under concurrent first exchanges) to a local user, and such a
user has no password: `users.password_hash` becomes nullable, and a NULL hash never matches.

Upgrade notes: existing users keep their passwords; nothing else changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("password_hash", existing_type=sa.String(length=300), nullable=True)
    op.create_table(
        "external_identities",
        sa.Column("issuer", sa.String(length=300), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name=op.f("fk_external_identities_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("issuer", "subject", name=op.f("pk_external_identities")),
    )
    with op.batch_alter_table("external_identities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_external_identities_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    # Users of identity providers have no password and cannot stay: refuse, before changing
    # anything, rather than invent one.
    passwordless = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM users WHERE password_hash IS NULL"))
        .scalar()
    )
    if passwordless:
        raise RuntimeError(
            f"{passwordless} user(s) have no password (external identities); "
            "delete them before downgrading below 0008"
        )
    with op.batch_alter_table("external_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_external_identities_user_id"))
    op.drop_table("external_identities")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("password_hash", existing_type=sa.String(length=300), nullable=False)
