"""Sync history (the sync optimization's input) and `sync_state.last_failed_at`.

Revision ID: 0008
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_history",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("change_count", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_sync_history_user_service_finished", "sync_history", ["user_id", "service", "finished_at"]
    )
    op.create_index("ix_sync_history_finished_at", "sync_history", ["finished_at"])
    with op.batch_alter_table("sync_state") as batch_op:
        batch_op.add_column(sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_state") as batch_op:
        batch_op.drop_column("last_failed_at")
    op.drop_index("ix_sync_history_finished_at", table_name="sync_history")
    op.drop_index("ix_sync_history_user_service_finished", table_name="sync_history")
    op.drop_table("sync_history")
