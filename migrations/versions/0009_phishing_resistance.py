"""phishing resistance: DPoP key binding, and number matching per client

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 05:00:00

RFC 9449: `token_families.dpop_jkt` is the JWK thumbprint (RFC 7638) of the key the PC proved
it held when the tokens were issued; a public client's refresh tokens only work with that key.
`mobile_devices.dpop_jkt` is the key the phone registered at sign-in; every later call of the
mobile API must carry a proof signed with it.

`token_families.requester_place` (indexed with the user): where the PC was (a country code or
the kind of address), so "first sign-in from this place" is one indexed lookup.
`clients.number_matching`: every QR login of the client needs the phone to pick the number the
PC shows.

Upgrade notes: existing rows get NULL (bearer): existing logins and phones keep working as
before; phones that sign in again register a key. Existing clients get number_matching off.
Existing logins have no place: a user's next login from anywhere says "first sign-in from this
place" once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("number_matching", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dpop_jkt", sa.String(length=43), nullable=True))
        batch_op.add_column(
            sa.Column("requester_place", sa.String(length=50), server_default="", nullable=False)
        )
        batch_op.create_index(
            "ix_token_families_user_place", ["user_id", "requester_place"], unique=False
        )
    with op.batch_alter_table("mobile_devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dpop_jkt", sa.String(length=43), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mobile_devices", schema=None) as batch_op:
        batch_op.drop_column("dpop_jkt")
    with op.batch_alter_table("token_families", schema=None) as batch_op:
        batch_op.drop_index("ix_token_families_user_place")
        batch_op.drop_column("requester_place")
        batch_op.drop_column("dpop_jkt")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("number_matching")
