"""AS4 refusals, and the routing decision of each message

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import adapters.db.schema

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "as4_refusals",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("received_at", adapters.db.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("remote", sa.String(length=100), nullable=True),
        sa.Column("as4_message_id", sa.String(length=255), nullable=True),
        sa.Column("peer", sa.String(length=200), nullable=True),
        sa.Column("ebms_code", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=300), nullable=True),
        sa.Column("body_size", sa.BigInteger(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_as4_refusals")),
    )
    op.create_index("ix_as4_refusals_received_at", "as4_refusals", ["received_at"])
    op.create_table(
        "routing_decisions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("message_pk", _ID, nullable=False),
        sa.Column("decided_at", adapters.db.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name=op.f("fk_routing_decisions_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_decisions")),
    )
    op.create_index("ix_routing_decisions_message_pk", "routing_decisions", ["message_pk"])


def downgrade() -> None:
    op.drop_index("ix_routing_decisions_message_pk", table_name="routing_decisions")
    op.drop_table("routing_decisions")
    op.drop_index("ix_as4_refusals_received_at", table_name="as4_refusals")
    op.drop_table("as4_refusals")
