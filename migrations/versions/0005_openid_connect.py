"""OpenID Connect: users' email, and how the user of each login authenticated

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-04 10:00:00

`users.email` and `users.email_verified` are released with the `email` scope (OIDC Core §5.4).
`token_families.auth_time` and `.amr` keep how the user authenticated for the login, so an ID
token issued on refresh repeats them (OIDC Core §12.2).

Upgrade notes: existing users have no email; families issued before this revision have no
auth_time (their refreshed ID tokens use the family's creation time) and no amr (omitted).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auth_time", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("amr", sa.String(length=100), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.drop_column("amr")
        batch_op.drop_column("auth_time")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email_verified")
        batch_op.drop_column("email")
