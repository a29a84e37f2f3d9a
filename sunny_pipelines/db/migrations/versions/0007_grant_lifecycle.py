"""Grant lifecycle: when a grant entered needs_reauth, and when we revoked it.

Revision ID: 0007
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("google_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("needs_reauth_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    # Grants already waiting for re-consent start their grace period now.
    op.execute(
        "UPDATE google_connections SET needs_reauth_since = CURRENT_TIMESTAMP "
        "WHERE status = 'needs_reauth' AND needs_reauth_since IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("google_connections", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("needs_reauth_since")
