"""this wasn't me: when each login's refresh token last rotated

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 06:00:00

The phone lists the user's signed-in computers (GET /mobile/v1/logins) with when each was
last used: `token_families.refreshed_at` is set by every refresh token rotation (RFC 6749 §6).

Upgrade notes: existing logins get NULL ("not refreshed since this upgrade"); their next
rotation sets it. Nothing else changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.drop_column("refreshed_at")
