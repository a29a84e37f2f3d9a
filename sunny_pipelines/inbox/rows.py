"""Claiming and finishing `webhook_inbox` rows: at-least-once, nothing lost.

A run claims a user's deliverable rows (``attempts`` + 1, ``claimed_by`` = run id) before it
syncs, and marks them ``done`` only after the data they announced is committed. A failed sync
marks them ``failed`` with the error and a time for the next attempt (exponential backoff), up
to ``MAX_ATTEMPTS``; a crash leaves them ``pending`` and claimed by a run that is gone, and the
inbox sensor requests them again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from sunny_pipelines.db.models import WebhookInbox

MAX_ATTEMPTS = 5
BASE_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 30 * 60


@dataclass(frozen=True)
class InboxRow:
    id: int
    source: str
    user_id: str | None
    channel_id: str | None
    payload: dict[str, Any]
    status: str
    attempts: int
    claimed_by: str | None
    claimed_at: datetime | None
    received_at: datetime


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 30 s, 1 min, 2 min … capped at 30 min."""
    return timedelta(seconds=min(BASE_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def deliverable(now: datetime) -> Any:
    """Rows a run may (re)process now: pending, or failed with an attempt left and its backoff over."""
    return and_(
        WebhookInbox.attempts < MAX_ATTEMPTS,
        or_(
            WebhookInbox.status == "pending",
            and_(WebhookInbox.status == "failed", WebhookInbox.next_attempt_at <= now),
        ),
    )


def _row(record: Any) -> InboxRow:
    return InboxRow(**{field: getattr(record, field) for field in InboxRow.__dataclass_fields__})


_COLUMNS = [getattr(WebhookInbox, field) for field in InboxRow.__dataclass_fields__]


def read_new(conn: Connection, after_id: int, limit: int, sources: Collection[str]) -> list[InboxRow]:
    """Pending rows after the sensor's cursor, oldest first, one bounded page."""
    query = (
        select(*_COLUMNS)
        .where(WebhookInbox.id > after_id, WebhookInbox.status == "pending", WebhookInbox.source.in_(sources))
        .order_by(WebhookInbox.id)
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(query)]


def read_retryable(
    conn: Connection, up_to_id: int, now: datetime, limit: int, sources: Collection[str]
) -> list[InboxRow]:
    """Rows at or before the cursor that still need a run: failed rows whose backoff is over, and
    pending rows whose run may be gone (the caller decides, from the claiming run's state)."""
    query = (
        select(*_COLUMNS)
        .where(WebhookInbox.id <= up_to_id, WebhookInbox.source.in_(sources), deliverable(now))
        .order_by(WebhookInbox.id)
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(query)]


def claim(
    conn: Connection, user_id: str, sources: Collection[str], run_id: str, now: datetime
) -> list[InboxRow]:
    """Claim ``user_id``'s deliverable rows of ``sources`` for ``run_id``; returns them."""
    claimed = conn.execute(
        update(WebhookInbox)
        .where(WebhookInbox.user_id == user_id, WebhookInbox.source.in_(sources), deliverable(now))
        .values(
            status="pending",
            claimed_by=run_id,
            claimed_at=now,
            attempts=WebhookInbox.attempts + 1,
            next_attempt_at=None,
        )
        .returning(*_COLUMNS)
    )
    return sorted((_row(r) for r in claimed), key=lambda row: row.id)


def mark_done(conn: Connection, row_ids: Sequence[int], now: datetime) -> int:
    if not row_ids:
        return 0
    return conn.execute(
        update(WebhookInbox)
        .where(WebhookInbox.id.in_(list(row_ids)))
        .values(status="done", processed_at=now, error=None, next_attempt_at=None)
    ).rowcount


def mark_failed(conn: Connection, rows: Sequence[InboxRow], run_id: str, error: str, now: datetime) -> int:
    """Record a failed attempt of claimed ``rows`` (their ``attempts`` already count it).

    A row another run has since claimed, or finished, is left to that run.
    """
    count = 0
    for attempts in sorted({row.attempts for row in rows}):
        retry_at = now + backoff(attempts) if attempts < MAX_ATTEMPTS else None
        count += conn.execute(
            update(WebhookInbox)
            .where(
                WebhookInbox.id.in_([row.id for row in rows if row.attempts == attempts]),
                WebhookInbox.claimed_by == run_id,
                WebhookInbox.status != "done",
            )
            .values(status="failed", processed_at=now, error=error[:4000], next_attempt_at=retry_at)
        ).rowcount
    return count
