"""Index google_connections by lower(google_email) for the Gmail push mailbox lookup.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_google_connections_google_email_lower",
        "google_connections",
        [sa.text("lower(google_email)")],
    )


def downgrade() -> None:
    op.drop_index("ix_google_connections_google_email_lower", table_name="google_connections")
