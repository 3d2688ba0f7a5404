"""Websites: the authorization code flow's clients, browser sessions and authorization codes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00

`clients` gets its exact redirect URIs, post-logout redirect URIs and allowed grant types
(space-separated); existing clients keep what they could do: the device code and refresh grants.
`browser_sessions` remembers a browser signed in by a QR login (secrets stored hashed);
`authorization_codes` holds each accepted authorization request and the code it becomes
(hashed, single use).

It touches no table 0006 (device cookies) adds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Spelled out: a revision must not change when the code's defaults do.
DEFAULT_GRANTS = "urn:ietf:params:oauth:grant-type:device_code refresh_token"


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("redirect_uris", sa.Text(), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("post_logout_redirect_uris", sa.Text(), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "grant_types", sa.String(length=300), server_default=DEFAULT_GRANTS, nullable=False
            )
        )
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("mobile_device_id", sa.String(length=36), nullable=False),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amr", sa.String(length=100), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["mobile_device_id"],
            ["mobile_devices.id"],
            name=op.f("fk_browser_sessions_mobile_device_id_mobile_devices"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_browser_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_browser_sessions")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_browser_sessions_secret_hash")),
    )
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_browser_sessions_mobile_device_id"), ["mobile_device_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_browser_sessions_user_id"), ["user_id"], unique=False)
    op.create_table(
        "authorization_codes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.String(length=500), nullable=False),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=1000), nullable=True),
        sa.Column("nonce", sa.String(length=500), nullable=True),
        sa.Column("code_challenge", sa.String(length=43), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flow_hash", sa.String(length=64), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("mobile_device_id", sa.String(length=36), nullable=True),
        sa.Column("session_id", sa.String(length=36), nullable=True),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amr", sa.String(length=100), server_default="", nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("family_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name=op.f("fk_authorization_codes_client_id_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["token_families.id"],
            name=op.f("fk_authorization_codes_family_id_token_families"),
        ),
        sa.ForeignKeyConstraint(
            ["mobile_device_id"],
            ["mobile_devices.id"],
            name=op.f("fk_authorization_codes_mobile_device_id_mobile_devices"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["browser_sessions.id"],
            name=op.f("fk_authorization_codes_session_id_browser_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_authorization_codes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorization_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_authorization_codes_code_hash")),
        sa.UniqueConstraint("flow_hash", name=op.f("uq_authorization_codes_flow_hash")),
    )
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_authorization_codes_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_authorization_codes_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_authorization_codes_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authorization_codes_user_id"))
        batch_op.drop_index(batch_op.f("ix_authorization_codes_expires_at"))
        batch_op.drop_index(batch_op.f("ix_authorization_codes_client_id"))
    op.drop_table("authorization_codes")
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_browser_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_browser_sessions_mobile_device_id"))
    op.drop_table("browser_sessions")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("grant_types")
        batch_op.drop_column("post_logout_redirect_uris")
        batch_op.drop_column("redirect_uris")
