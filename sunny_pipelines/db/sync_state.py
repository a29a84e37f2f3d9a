"""Reading and recording per-(user, service) sync state."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from sunny_pipelines.db.grants import usable_grant_clause
from sunny_pipelines.db.models import GoogleConnection, SyncState, User
from sunny_pipelines.db.upserts import upsert

# The model's default cadence, for a service whose domain names none.
DEFAULT_INTERVAL_SECONDS = 30 * 60


def is_due(last_synced_at: datetime | None, interval_seconds: int, now: datetime) -> bool:
    if last_synced_at is None:
        return True
    return (now - last_synced_at).total_seconds() >= interval_seconds


def due_users(
    conn: Connection, service: str, now: datetime, user_ids: Collection[str] | None = None
) -> set[str]:
    """Active users with a usable Google grant whose ``service`` sync is due at ``now``."""
    query = (
        select(User.id, SyncState.last_synced_at, SyncState.interval_seconds)
        .join(GoogleConnection, GoogleConnection.user_id == User.id)
        .outerjoin(SyncState, (SyncState.user_id == User.id) & (SyncState.service == service))
        .where(usable_grant_clause())
    )
    if user_ids is not None:
        query = query.where(User.id.in_(list(user_ids)))
    return {
        user_id
        for user_id, last_synced_at, interval in conn.execute(query)
        if is_due(last_synced_at, interval or 0, now)
    }


def synced_users(conn: Connection, service: str) -> set[str]:
    """Active users with a usable Google grant whose ``service`` has a cursor (a first sync done)."""
    return set(
        conn.execute(
            select(SyncState.user_id)
            .join(User, User.id == SyncState.user_id)
            .join(GoogleConnection, GoogleConnection.user_id == SyncState.user_id)
            .where(SyncState.service == service, SyncState.cursor.is_not(None), usable_grant_clause())
        ).scalars()
    )


def record_success(
    conn: Connection,
    user_id: str,
    service: str,
    change_count: int,
    cursor: str | None = None,
    *,
    default_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
) -> None:
    """Record a successful sync. The interval is only set when the row is created: a tuned
    interval survives every later sync."""
    values = {
        "user_id": user_id,
        "service": service,
        "interval_seconds": default_interval_seconds,
        "last_synced_at": datetime.now(UTC),
        "last_change_count": change_count,
        "last_error": None,
        "consecutive_failures": 0,
    }
    if cursor is not None:
        values["cursor"] = cursor
    updates = [column for column in values if column != "interval_seconds"]
    upsert(conn, SyncState.__table__, [values], ["user_id", "service"], update_columns=updates)


def record_failure(
    conn: Connection,
    user_id: str,
    service: str,
    error: str,
    *,
    default_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
) -> None:
    upsert(
        conn,
        SyncState.__table__,
        [
            {
                "user_id": user_id,
                "service": service,
                "interval_seconds": default_interval_seconds,
                "last_error": error[:2000],
                "consecutive_failures": 0,
            }
        ],
        ["user_id", "service"],
        update_columns=["last_error"],
    )
    conn.execute(
        update(SyncState)
        .where(SyncState.user_id == user_id, SyncState.service == service)
        .values(consecutive_failures=SyncState.consecutive_failures + 1)
    )


def saved_cursor(conn: Connection, user_id: str, service: str) -> str | None:
    """The service's incremental cursor (Drive page token, Gmail history id), None before the
    first full sync."""
    return conn.execute(
        select(SyncState.cursor).where(SyncState.user_id == user_id, SyncState.service == service)
    ).scalar()


def save_cursor(
    conn: Connection,
    user_id: str,
    service: str,
    cursor: str | None,
    *,
    default_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
) -> None:
    """Store the cursor, in the caller's transaction: the rows it covers commit with it."""
    upsert(
        conn,
        SyncState.__table__,
        [
            {
                "user_id": user_id,
                "service": service,
                "interval_seconds": default_interval_seconds,
                "cursor": cursor,
            }
        ],
        ["user_id", "service"],
        update_columns=["cursor"],
    )
