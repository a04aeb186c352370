"""AS4 exchanges, and the role of a message's files (a received document package)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import adapters.db.schema

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_files") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=16), server_default="document", nullable=False)
        )
    op.create_table(
        "as4_exchanges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("as4_message_id", sa.String(length=255), nullable=False),
        sa.Column("sbd_instance_id", sa.String(length=64), nullable=False),
        sa.Column(
            "message_pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("peer", sa.String(length=200), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.Column("receipt_content_type", sa.String(length=200), nullable=True),
        sa.Column("created_at", adapters.db.schema.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name=op.f("fk_as4_exchanges_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_as4_exchanges")),
        sa.UniqueConstraint(
            "direction", "as4_message_id", name=op.f("uq_as4_exchanges_direction_as4_message_id")
        ),
    )
    op.create_index(
        "ix_as4_exchanges_direction_sbd_instance_id",
        "as4_exchanges",
        ["direction", "sbd_instance_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_as4_exchanges_direction_sbd_instance_id", table_name="as4_exchanges")
    op.drop_table("as4_exchanges")
    with op.batch_alter_table("message_files") as batch:
        batch.drop_column("role")
