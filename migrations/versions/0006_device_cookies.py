"""Known-device cookies: a phone or browser that signed in before is not locked out by others

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:40:00

A successful password sign-in (phone app, `/device` page, admin API and console) hands out a
device cookie, stored here by its SHA-256. Presenting it on a later sign-in to the same account
skips the limits that other addresses' failures can fill (see the README's "Rate limits").

Upgrade notes: no device holds a cookie yet; each gets one at its next successful sign-in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_cookies",
        sa.Column("cookie_hash", sa.String(length=64), nullable=False),
        sa.Column("account_kind", sa.String(length=10), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cookie_hash", name=op.f("pk_device_cookies")),
    )
    with op.batch_alter_table("device_cookies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_cookies_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("device_cookies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_cookies_expires_at"))
    op.drop_table("device_cookies")
