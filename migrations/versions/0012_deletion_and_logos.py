"""deletion and logos: operators delete users and clients, disable admins, give clients a logo

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 07:10:00

`users.deleted_at`, `clients.deleted_at`: `authserver users delete` and `clients delete`
erase an account or a registration but keep its row as a tombstone, because the token
families it was issued name it: their revocations must outlive the deletion (the deny-list
is rebuilt from them) and the audit trail keeps its ids. `admins.disabled_at`: a disabled
admin cannot sign in and their sessions end. `client_logos`: an optional PNG per client,
shown at the top of the login and approval pages (served by the server itself, CSP img-src
'self').

`users.username` becomes nullable: a deleted user's name is NULL (free again, and no name
anyone picks can collide with a tombstone).

Upgrade notes: nothing is deleted or disabled; no client has a logo. The downgrade refuses
while a row is deleted or an admin disabled (the older code would undo both).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("users", "clients"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        # A deleted user's name is NULL: free again, and never a name someone could pick.
        batch_op.alter_column("username", existing_type=sa.String(length=150), nullable=True)
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "client_logos",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.client_id"], name=op.f("fk_client_logos_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_client_logos")),
    )


def downgrade() -> None:
    # The older code knows neither tombstones nor disabled admins: it would let a disabled
    # admin sign in and re-enable a deleted client. Refuse rather than lose that state.
    connection = op.get_bind()
    for table, column in (
        ("users", "deleted_at"),
        ("clients", "deleted_at"),
        ("admins", "disabled_at"),
    ):
        rows = sa.table(table, sa.column(column))
        if connection.execute(sa.select(rows).where(rows.c[column].is_not(None)).limit(1)).first():
            raise RuntimeError(
                f"{table}.{column} is set on some rows: downgrading below 0012 would undo "
                "deletions or re-enable disabled admins. Delete those rows yourself first."
            )
    op.drop_table("client_logos")
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("username", existing_type=sa.String(length=150), nullable=False)
    for table in ("clients", "users"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("deleted_at")
