"""Row-level security for the frontend: the `sunny_frontend` role and a policy on every user table.

A session that is `sunny_frontend` and has ``SET sunny.user_id = '<id>'`` sees only that user's
rows (none while the setting is unset); token columns are never granted. PostgreSQL only: on
SQLite, the local default, this migration does nothing. See `sunny_pipelines.db.row_security`.

Revision ID: 0009
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

from sunny_pipelines.db.row_security import (
    FrontendAccess,
    create_frontend_role,
    disable_frontend_access,
    drop_frontend_grants,
    enable_frontend_access,
    meeting_rows,
    owned_rows,
)

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READ = FrontendAccess()
# The user's own settings, which the frontend edits.
READ_WRITE = FrontendAccess(writes=("INSERT", "UPDATE", "DELETE"))

# Every table that holds user data, and what the frontend may do with it. A new user table
# gets its line in the migration that creates it (`enable_frontend_access`).
FRONTEND_TABLES: dict[str, FrontendAccess] = {
    # The user's own row; the frontend may change their display name and time zone.
    "users": FrontendAccess(rows=owned_rows("id"), writes=("UPDATE",), updatable=("name", "timezone")),
    # Connection status and errors, never the tokens.
    "google_connections": FrontendAccess(hidden=("access_token", "refresh_token")),
    # Login and logout write the user's sessions (`sunny_session_user` resolves a cookie first).
    "user_sessions": READ_WRITE,
    "sync_state": READ,
    "sync_history": READ,
    # Push health, without the digest of the channel's secret token.
    "watch_channels": FrontendAccess(hidden=("token_hash",)),
    "user_calendars": READ,
    "calendar_events": READ,
    "drive_files": READ,
    "emails": READ,
    "recording_rules": READ_WRITE,
    "meeting_overrides": READ_WRITE,
    "meeting_participants": READ,
    "document_classifications": READ,
    "ai_usage": READ,
    # A meeting's summary belongs to the meeting: every participant reads it (its user_id is
    # the participant whose run and AI budget produced it).
    "meeting_summaries": FrontendAccess(rows=meeting_rows("meeting_summaries")),
    # Pipeline plumbing (notification payloads): policy in place, nothing granted.
    "webhook_inbox": FrontendAccess(readable=False),
    # Connect flows in progress (encrypted PKCE verifiers): the frontend API's own, not the frontend's.
    "oauth_states": FrontendAccess(readable=False),
    # Shared meetings, their bots and transcripts: readable by the meeting's participants.
    "meetings": FrontendAccess(rows=meeting_rows("meetings", "id")),
    "meeting_bots": FrontendAccess(rows=meeting_rows("meeting_bots")),
    "meeting_transcripts": FrontendAccess(rows=meeting_rows("meeting_transcripts")),
}


def upgrade() -> None:
    conn = op.get_bind()
    create_frontend_role(conn)
    for table, access in FRONTEND_TABLES.items():
        enable_frontend_access(conn, table, access)


def downgrade() -> None:
    conn = op.get_bind()
    for table in reversed(list(FRONTEND_TABLES)):
        disable_frontend_access(conn, table)
    drop_frontend_grants(conn)
