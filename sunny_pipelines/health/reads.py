"""What the health checks and the fleet-health asset read from our database: plain queries
returning the data `decisions.py` decides on."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select

from sunny_pipelines.db.grants import usable_grant_clause
from sunny_pipelines.db.models import (
    GoogleConnection,
    SyncHistory,
    SyncState,
    User,
    WatchChannel,
    WebhookInbox,
)
from sunny_pipelines.health.decisions import ChannelState, InboxRowState, SyncRecord
from sunny_pipelines.inbox.rows import MAX_ATTEMPTS
from sunny_pipelines.vocabulary import ChannelStatus, InboxStatus, UserStatus

# Rows a check names at most (its counts come from SQL and cover everyone).
ROWS_NAMED = 50


def sync_records(conn: Connection, default_intervals: Mapping[str, int]) -> list[SyncRecord]:
    """Every (user with a usable grant, service) with its sync state; a user never synced for a
    service gets the service's default interval."""
    records: list[SyncRecord] = []
    for service, default_interval in sorted(default_intervals.items()):
        rows = conn.execute(
            select(
                User.id,
                SyncState.interval_seconds,
                SyncState.last_synced_at,
                GoogleConnection.created_at,
                SyncState.consecutive_failures,
                SyncState.last_error,
            )
            .join(GoogleConnection, GoogleConnection.user_id == User.id)
            .outerjoin(SyncState, and_(SyncState.user_id == User.id, SyncState.service == service))
            .where(usable_grant_clause())
        )
        records += [
            SyncRecord(
                user_id=user_id,
                service=service,
                interval_seconds=interval or default_interval,
                last_synced_at=last_synced_at,
                connected_at=connected_at,
                consecutive_failures=failures or 0,
                last_error=last_error,
            )
            for user_id, interval, last_synced_at, connected_at, failures, last_error in rows
        ]
    return records


def inbox_counts(conn: Connection) -> dict[str, int]:
    """Rows per status (every status present, zero when none)."""
    counts = dict(
        conn.execute(select(WebhookInbox.status, func.count()).group_by(WebhookInbox.status)).tuples().all()
    )
    return {status.value: int(counts.get(status.value, 0)) for status in InboxStatus}


def old_pending_rows(
    conn: Connection, received_before: datetime, limit: int = ROWS_NAMED
) -> list[InboxRowState]:
    """Pending rows received before ``received_before``, the oldest first."""
    return _inbox_rows(
        conn,
        and_(WebhookInbox.status == InboxStatus.PENDING, WebhookInbox.received_at < received_before),
        limit,
    )


def count_old_pending(conn: Connection, received_before: datetime) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                WebhookInbox.status == InboxStatus.PENDING, WebhookInbox.received_at < received_before
            )
        ).scalar_one()
    )


def dead_letter_errors(conn: Connection, received_since: datetime) -> list[str | None]:
    """The errors of rows that used their last attempt (dead letters), received since then."""
    return list(
        conn.execute(
            select(WebhookInbox.error).where(
                WebhookInbox.status == InboxStatus.FAILED,
                WebhookInbox.attempts >= MAX_ATTEMPTS,
                WebhookInbox.received_at >= received_since,
            )
        ).scalars()
    )


def dead_letter_rows(
    conn: Connection, received_since: datetime, limit: int = ROWS_NAMED
) -> list[InboxRowState]:
    return _inbox_rows(
        conn,
        and_(
            WebhookInbox.status == InboxStatus.FAILED,
            WebhookInbox.attempts >= MAX_ATTEMPTS,
            WebhookInbox.received_at >= received_since,
        ),
        limit,
    )


def _inbox_rows(conn: Connection, where, limit: int) -> list[InboxRowState]:
    rows = conn.execute(
        select(
            WebhookInbox.id,
            WebhookInbox.source,
            WebhookInbox.user_id,
            WebhookInbox.status,
            WebhookInbox.received_at,
            WebhookInbox.attempts,
            WebhookInbox.error,
        )
        .where(where)
        .order_by(WebhookInbox.received_at, WebhookInbox.id)
        .limit(limit)
    )
    return [InboxRowState(*row) for row in rows]


def inbox_done_since(conn: Connection, since: datetime) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                WebhookInbox.status == InboxStatus.DONE, WebhookInbox.processed_at >= since
            )
        ).scalar_one()
    )


def oldest_pending_received_at(conn: Connection) -> datetime | None:
    return conn.execute(
        select(func.min(WebhookInbox.received_at)).where(WebhookInbox.status == InboxStatus.PENDING)
    ).scalar_one()


def synced_users(conn: Connection, service: str) -> set[str]:
    """Users with a usable grant whose ``service`` has synced well at least once."""
    return set(
        conn.execute(
            select(SyncState.user_id)
            .join(User, User.id == SyncState.user_id)
            .join(GoogleConnection, GoogleConnection.user_id == SyncState.user_id)
            .where(SyncState.service == service, SyncState.last_synced_at.is_not(None), usable_grant_clause())
        ).scalars()
    )


def active_channels(conn: Connection, kinds: Collection[str]) -> list[ChannelState]:
    """Every channel of ``kinds`` recorded active (expired ones included: the check tells them)."""
    return [
        ChannelState(user_id, kind, expires_at)
        for user_id, kind, expires_at in conn.execute(
            select(WatchChannel.user_id, WatchChannel.service, WatchChannel.expires_at).where(
                WatchChannel.status == ChannelStatus.ACTIVE, WatchChannel.service.in_(list(kinds))
            )
        )
    ]


def users_per_state(conn: Connection) -> dict[str, int]:
    """Users by the state that decides what Sunny does for them: `deleted` (or another user
    status), else their grant's status, else `no_grant`."""
    state = func.coalesce(GoogleConnection.status, "no_grant")
    rows = conn.execute(
        select(User.status, state, func.count())
        .select_from(User)
        .outerjoin(GoogleConnection, GoogleConnection.user_id == User.id)
        .group_by(User.status, state)
    )
    counts: dict[str, int] = {}
    for user_status, grant_status, count in rows:
        key = grant_status if user_status == UserStatus.ACTIVE else user_status
        counts[key] = counts.get(key, 0) + int(count)
    return counts


def sync_outcomes_since(conn: Connection, since: datetime) -> tuple[int, list[str | None]]:
    """Successful syncs since ``since``, and the errors of the failed ones."""
    ok = conn.execute(
        select(func.count()).where(SyncHistory.finished_at >= since, SyncHistory.ok.is_(True))
    ).scalar_one()
    errors = list(
        conn.execute(
            select(SyncHistory.error).where(SyncHistory.finished_at >= since, SyncHistory.ok.is_(False))
        ).scalars()
    )
    return int(ok), errors


def hour_before(now: datetime) -> datetime:
    return now - timedelta(hours=1)
