"""Claiming and finishing `webhook_inbox` rows: at-least-once, nothing lost.

A run claims a user's deliverable rows (``attempts`` + 1, ``claimed_by`` = run id) before it
syncs, and marks them ``done`` only after the data they announced is committed. It claims only
rows nobody live holds: unclaimed, failed, or claimed by a run that has finished. A failed sync
marks its rows ``failed`` with the error and a time for the next attempt (exponential backoff);
a crash leaves them ``pending`` and claimed by a run that is gone, and the inbox sensor requests
them again. A row that used its last attempt ends ``failed`` for good (a dead letter) with the
error; the `replay_inbox` job puts dead letters back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, or_, select, update

from sunny_pipelines.db.models import WebhookInbox
from sunny_pipelines.vocabulary import InboxStatus

MAX_ATTEMPTS = 5
BASE_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 30 * 60
ERROR_CHARS = 4000


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


def deliverable(now: datetime) -> ColumnElement[bool]:
    """Rows a run may (re)process now: pending, or failed with an attempt left and its backoff over."""
    return and_(
        WebhookInbox.attempts < MAX_ATTEMPTS,
        or_(
            WebhookInbox.status == InboxStatus.PENDING,
            and_(WebhookInbox.status == InboxStatus.FAILED, WebhookInbox.next_attempt_at <= now),
        ),
    )


def exhausted() -> ColumnElement[bool]:
    """Pending rows whose last attempt was claimed by a run that never finished them (it died)."""
    return and_(WebhookInbox.attempts >= MAX_ATTEMPTS, WebhookInbox.status == InboxStatus.PENDING)


def needs_a_run(now: datetime) -> ColumnElement[bool]:
    return or_(deliverable(now), exhausted())


def users_with_rows_to_claim(
    conn: Connection, user_ids: Collection[str], sources: Collection[str], now: datetime
) -> set[str]:
    """Which of ``user_ids`` have rows of ``sources`` that `claim` may take or close now (a
    superset: whether their claimant is live is left to `claim`). One query for a whole run, so
    that users with nothing to do cost no transaction of their own."""
    if not user_ids or not sources:
        return set()
    query = (
        select(WebhookInbox.user_id)
        .distinct()
        .where(
            WebhookInbox.user_id.in_(list(user_ids)),
            WebhookInbox.source.in_(list(sources)),
            needs_a_run(now),
        )
    )
    return set(conn.execute(query).scalars())


def _row(record: Any) -> InboxRow:
    return InboxRow(**{field: getattr(record, field) for field in InboxRow.__dataclass_fields__})


_COLUMNS = [getattr(WebhookInbox, field) for field in InboxRow.__dataclass_fields__]


def read_after(conn: Connection, after_id: int, limit: int) -> list[InboxRow]:
    """Every committed row after ``after_id`` (any source, any status), oldest first, one page:
    the sensor learns which ids exist, so it can tell a late commit from a used-up id."""
    query = select(*_COLUMNS).where(WebhookInbox.id > after_id).order_by(WebhookInbox.id).limit(limit)
    return [_row(r) for r in conn.execute(query)]


def read_ids(conn: Connection, ids: Collection[int]) -> list[InboxRow]:
    """The rows among ``ids`` that are committed by now."""
    if not ids:
        return []
    query = select(*_COLUMNS).where(WebhookInbox.id.in_(list(ids))).order_by(WebhookInbox.id)
    return [_row(r) for r in conn.execute(query)]


def read_retryable(
    conn: Connection, up_to_id: int, now: datetime, limit: int, sources: Collection[str]
) -> list[InboxRow]:
    """Rows at or before the cursor that may need another run: failed rows whose backoff is over,
    pending rows whose run may be gone, and pending rows whose last attempt's run died (the
    caller decides from the claiming run's state)."""
    query = (
        select(*_COLUMNS)
        .where(WebhookInbox.id <= up_to_id, WebhookInbox.source.in_(list(sources)), needs_a_run(now))
        .order_by(WebhookInbox.id)
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(query)]


FinishedRuns = Callable[[Collection[str]], Collection[str]]


def _claimable(
    conn: Connection, where: ColumnElement[bool], run_id: str, finished: FinishedRuns
) -> tuple[list[int], set[str]]:
    """Rows matching ``where`` that nobody live holds: (their ids, the claimants that finished)."""
    candidates = conn.execute(
        select(WebhookInbox.id, WebhookInbox.claimed_by, WebhookInbox.status).where(where)
    ).all()
    claimants = {c for _, c, status in candidates if c and c != run_id and status == InboxStatus.PENDING}
    gone = set(finished(claimants)) if claimants else set()
    ids = [
        row_id
        for row_id, claimant, status in candidates
        if claimant is None or status == InboxStatus.FAILED or claimant in gone
    ]
    return ids, gone


def _free(gone: Collection[str]) -> ColumnElement[bool]:
    # Re-checked in the UPDATE: a row another run claimed since we looked is left to it.
    return or_(
        WebhookInbox.claimed_by.is_(None),
        WebhookInbox.status == InboxStatus.FAILED,
        WebhookInbox.claimed_by.in_(list(gone)),
    )


def claim(
    conn: Connection,
    user_id: str,
    sources: Collection[str],
    run_id: str,
    now: datetime,
    finished: FinishedRuns,
) -> list[InboxRow]:
    """Claim ``user_id``'s deliverable rows of ``sources`` for ``run_id``; returns them.

    ``finished(run_ids)`` answers which of the runs that claimed rows earlier have finished:
    only their rows, and unclaimed or failed ones, are taken. Rows whose last attempt's run died
    are closed as dead letters here (a run, not the side-effect-free sensor, writes).
    """
    if not sources:
        return []
    mine = and_(WebhookInbox.user_id == user_id, WebhookInbox.source.in_(list(sources)))
    dead_ids, dead_gone = _claimable(conn, and_(mine, exhausted()), run_id, finished)
    if dead_ids:
        conn.execute(
            update(WebhookInbox)
            .where(WebhookInbox.id.in_(dead_ids), exhausted(), _free(dead_gone))
            .values(
                status=InboxStatus.FAILED,
                processed_at=now,
                next_attempt_at=None,
                error=f"gave up after {MAX_ATTEMPTS} attempts: the run that made the last one "
                "ended without finishing it (crashed or was killed)",
            )
        )
    ids, gone = _claimable(conn, and_(mine, deliverable(now)), run_id, finished)
    if not ids:
        return []
    claimed = conn.execute(
        update(WebhookInbox)
        .where(WebhookInbox.id.in_(ids), deliverable(now), _free(gone))
        .values(
            status=InboxStatus.PENDING,
            claimed_by=run_id,
            claimed_at=now,
            attempts=WebhookInbox.attempts + 1,
            next_attempt_at=None,
        )
        .returning(*_COLUMNS)
    )
    return sorted((_row(r) for r in claimed), key=lambda row: row.id)


def reject(
    conn: Connection,
    user_id: str,
    sources: Collection[str],
    reason: str,
    run_id: str,
    now: datetime,
    finished: FinishedRuns,
) -> int:
    """Close ``user_id``'s deliverable rows of ``sources`` as ``rejected`` with ``reason``: the
    user cannot be synced (no usable grant), and a pending row would only bring runs back. Nothing
    is lost: the saved cursor catches up with these changes once the user can be synced again.
    Rows a live run holds are left to it."""
    if not sources:
        return 0
    mine = and_(WebhookInbox.user_id == user_id, WebhookInbox.source.in_(list(sources)))
    ids, gone = _claimable(conn, and_(mine, deliverable(now)), run_id, finished)
    if not ids:
        return 0
    return conn.execute(
        update(WebhookInbox)
        .where(WebhookInbox.id.in_(ids), deliverable(now), _free(gone))
        .values(
            status=InboxStatus.REJECTED,
            processed_at=now,
            next_attempt_at=None,
            error=reason[:ERROR_CHARS],
        )
    ).rowcount


def mark_done(conn: Connection, rows: Sequence[InboxRow], run_id: str, now: datetime) -> int:
    """Finish the rows this run claimed (a row another run took over since is left to it)."""
    if not rows:
        return 0
    return conn.execute(
        update(WebhookInbox)
        .where(
            WebhookInbox.id.in_([row.id for row in rows]),
            WebhookInbox.claimed_by == run_id,
            WebhookInbox.status == InboxStatus.PENDING,
        )
        .values(status=InboxStatus.DONE, processed_at=now, error=None, next_attempt_at=None)
    ).rowcount


def mark_failed(conn: Connection, rows: Sequence[InboxRow], run_id: str, error: str, now: datetime) -> int:
    """Record a failed attempt of claimed ``rows`` (their ``attempts`` already count it): retried
    after a backoff, or a dead letter once the last attempt is used. A row another run has since
    claimed, or finished, is left to that run."""
    count = 0
    for attempts in sorted({row.attempts for row in rows}):
        retry_at = now + backoff(attempts) if attempts < MAX_ATTEMPTS else None
        count += conn.execute(
            update(WebhookInbox)
            .where(
                WebhookInbox.id.in_([row.id for row in rows if row.attempts == attempts]),
                WebhookInbox.claimed_by == run_id,
                WebhookInbox.status == InboxStatus.PENDING,
            )
            .values(
                status=InboxStatus.FAILED,
                processed_at=now,
                error=error[:ERROR_CHARS],
                next_attempt_at=retry_at,
            )
        ).rowcount
    return count


def replay_failed(
    conn: Connection,
    *,
    run_id: str,
    source: str | None = None,
    user_id: str | None = None,
    received_since: datetime | None = None,
) -> list[int]:
    """Put failed rows (dead letters and rows waiting for their backoff) back to ``pending`` with
    a fresh set of attempts. They are handed over by ``run_id`` (the replay run): once it has
    finished the inbox sensor requests a run for them, and any run may claim them."""
    where = [WebhookInbox.status == InboxStatus.FAILED]
    if source:
        where.append(WebhookInbox.source == source)
    if user_id:
        where.append(WebhookInbox.user_id == user_id)
    if received_since:
        where.append(WebhookInbox.received_at >= received_since)
    replayed = conn.execute(
        update(WebhookInbox)
        .where(*where)
        .values(
            status=InboxStatus.PENDING,
            attempts=0,
            next_attempt_at=None,
            claimed_by=run_id,
            claimed_at=None,
            processed_at=None,
        )
        .returning(WebhookInbox.id)
    )
    return sorted(replayed.scalars())
