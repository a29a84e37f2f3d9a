"""Reading and recording per-(user, service) sync state."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from sunny_pipelines.db.grants import usable_grant_clause
from sunny_pipelines.db.models import GoogleConnection, SyncHistory, SyncState, User
from sunny_pipelines.db.upserts import upsert

# The model's default cadence, for a service whose domain names none.
DEFAULT_INTERVAL_SECONDS = 30 * 60
# A sync finishes (and is stamped) some seconds after the schedule tick that started it: without
# this slack the tick one interval later finds it a few seconds short, and the user waits a whole
# extra tick (a 5-minute interval on a 5-minute schedule would mean every 10 minutes).
DUE_SLACK_SECONDS = 60


def is_due(
    last_synced_at: datetime | None,
    interval_seconds: int,
    now: datetime,
    last_failed_at: datetime | None = None,
) -> bool:
    """Whether ``interval_seconds`` (less `DUE_SLACK_SECONDS`) have passed since the last
    attempt: the last success, or the last failure while failing (so a failing sync is retried at
    its backed-off interval, not at every schedule tick)."""
    since = max((t for t in (last_synced_at, last_failed_at) if t is not None), default=None)
    if since is None:
        return True
    return (now - since).total_seconds() >= interval_seconds - DUE_SLACK_SECONDS


def due_users(
    conn: Connection, service: str, now: datetime, user_ids: Collection[str] | None = None
) -> set[str]:
    """Active users with a usable Google grant whose ``service`` sync is due at ``now``."""
    query = (
        select(
            User.id,
            SyncState.last_synced_at,
            SyncState.interval_seconds,
            SyncState.last_failed_at,
            SyncState.consecutive_failures,
        )
        .join(GoogleConnection, GoogleConnection.user_id == User.id)
        .outerjoin(SyncState, (SyncState.user_id == User.id) & (SyncState.service == service))
        .where(usable_grant_clause())
    )
    if user_ids is not None:
        query = query.where(User.id.in_(list(user_ids)))
    return {
        user_id
        for user_id, last_synced_at, interval, last_failed_at, failures in conn.execute(query)
        # A failure recorded before the last success no longer counts.
        if is_due(last_synced_at, interval or 0, now, last_failed_at if failures else None)
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
    trigger: str | None = None,
) -> None:
    """Record a successful sync, and append it to `sync_history` in the same transaction. The
    interval is only set when the row is created: a tuned interval survives every later sync."""
    now = datetime.now(UTC)
    values = {
        "user_id": user_id,
        "service": service,
        "interval_seconds": default_interval_seconds,
        "last_synced_at": now,
        "last_change_count": change_count,
        "last_error": None,
        "consecutive_failures": 0,
    }
    if cursor is not None:
        values["cursor"] = cursor
    updates = [column for column in values if column != "interval_seconds"]
    upsert(conn, SyncState.__table__, [values], ["user_id", "service"], update_columns=updates)
    _append_history(conn, user_id, service, now, ok=True, change_count=change_count, trigger=trigger)


def record_failure(
    conn: Connection,
    user_id: str,
    service: str,
    error: str,
    *,
    default_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    trigger: str | None = None,
) -> None:
    """Record a failed sync (the error kept, the failures counted), and append it to
    `sync_history` in the same transaction."""
    now = datetime.now(UTC)
    upsert(
        conn,
        SyncState.__table__,
        [
            {
                "user_id": user_id,
                "service": service,
                "interval_seconds": default_interval_seconds,
                "last_error": error[:2000],
                "last_failed_at": now,
                "consecutive_failures": 0,
            }
        ],
        ["user_id", "service"],
        update_columns=["last_error", "last_failed_at"],
    )
    conn.execute(
        update(SyncState)
        .where(SyncState.user_id == user_id, SyncState.service == service)
        .values(consecutive_failures=SyncState.consecutive_failures + 1)
    )
    _append_history(conn, user_id, service, now, ok=False, change_count=0, trigger=trigger, error=error)


def _append_history(
    conn: Connection,
    user_id: str,
    service: str,
    finished_at: datetime,
    *,
    ok: bool,
    change_count: int,
    trigger: str | None,
    error: str | None = None,
) -> None:
    conn.execute(
        SyncHistory.__table__.insert().values(
            user_id=user_id,
            service=service,
            finished_at=finished_at,
            ok=ok,
            change_count=change_count,
            trigger=trigger,
            error=error[:500] if error else None,
        )
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
