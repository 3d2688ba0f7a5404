"""user disabled: an operator can disable a user (`authserver users disable`)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 06:05:00

`users.disabled_at`: when an operator disabled the account. A disabled user cannot sign in
(their password reads as wrong), their device tokens stop working, earlier approvals are void
and their sessions are revoked; `authserver users enable` lets them sign in again.

Upgrade notes: existing users are enabled (NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
