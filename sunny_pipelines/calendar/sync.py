"""Syncing one user's Google Calendars into `user_calendars` and `calendar_events`.

Follows Google's sync contract: a full list once, then `events.list(syncToken=…)` for the
changes; a 410 means the token is gone: clear it, list everything again, and mark deleted the
local events the full list no longer has.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from googleapiclient.errors import HttpError
from sqlalchemy import Connection, select, update

from sunny_pipelines.calendar.events import (
    CANCELLED_UPDATE_COLUMNS,
    cancelled_row,
    event_row,
    is_cancelled,
)
from sunny_pipelines.db import sync_state
from sunny_pipelines.db.models import CalendarEvent, SyncState, UserCalendar
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.resources.database import DatabaseResource
from sunny_pipelines.resources.google import GoogleSession, http_status
from sunny_pipelines.vocabulary import Service

SERVICE = Service.CALENDAR
LIST_SERVICE = Service.CALENDAR_LIST
# New calendars normally arrive through the calendarList channel; this is the backstop.
CALENDAR_LIST_MAX_AGE = timedelta(hours=24)
PAGE_SIZE = 250


@dataclass
class CalendarSyncResult:
    user_id: str
    full_sync_calendars: int = 0
    incremental_calendars: int = 0
    events_upserted: int = 0
    events_deleted: int = 0
    sync_tokens_expired: int = 0
    calendars_added: int = 0
    calendars_removed: int = 0
    api_calls: int = 0
    duration_seconds: float = 0.0
    calendar_ids: list[str] = field(default_factory=list)

    @property
    def change_count(self) -> int:
        return self.events_upserted + self.events_deleted

    def metadata(self) -> dict[str, Any]:
        return {
            "change_count": self.change_count,
            "events_upserted": self.events_upserted,
            "events_deleted": self.events_deleted,
            "calendars": len(self.calendar_ids),
            "full_sync_calendars": self.full_sync_calendars,
            "incremental_calendars": self.incremental_calendars,
            "sync_tokens_expired": self.sync_tokens_expired,
            "api_calls": self.api_calls,
        }


def refresh_calendar_list(
    session: GoogleSession, database: DatabaseResource, user_id: str, result: CalendarSyncResult
) -> None:
    """Store the user's calendar list; calendars that left it are marked removed, their events deleted."""
    service = session.calendar()
    items: list[dict[str, Any]] = []
    for page in session.pages(lambda token: service.calendarList().list(pageToken=token, maxResults=250)):
        items.extend(page.get("items", []))
    now = datetime.now(UTC)
    with database.begin() as conn:
        known = {
            row.calendar_id: row.removed_at
            for row in conn.execute(
                select(UserCalendar.calendar_id, UserCalendar.removed_at).where(
                    UserCalendar.user_id == user_id
                )
            )
        }
        listed = {item["id"] for item in items}
        rows = [
            {
                "user_id": user_id,
                "calendar_id": item["id"],
                "summary": item.get("summaryOverride") or item.get("summary"),
                "is_primary": bool(item.get("primary")),
                "access_role": item.get("accessRole"),
                "time_zone": item.get("timeZone"),
                "removed_at": None,
            }
            for item in items
        ]
        upsert(conn, UserCalendar.__table__, rows, ["user_id", "calendar_id"])
        result.calendars_added += sum(1 for cid in listed if cid not in known or known[cid] is not None)
        for calendar_id in [cid for cid, removed in known.items() if cid not in listed and removed is None]:
            _remove_calendar(conn, user_id, calendar_id, now, result)
        sync_state.record_success(conn, user_id, LIST_SERVICE, len(items))


def _remove_calendar(
    conn: Connection, user_id: str, calendar_id: str, now: datetime, result: CalendarSyncResult
) -> None:
    conn.execute(
        update(UserCalendar)
        .where(UserCalendar.user_id == user_id, UserCalendar.calendar_id == calendar_id)
        .values(removed_at=now, sync_token=None)
    )
    deleted = conn.execute(
        update(CalendarEvent)
        .where(
            CalendarEvent.user_id == user_id,
            CalendarEvent.calendar_id == calendar_id,
            CalendarEvent.deleted_at.is_(None),
        )
        .values(status="cancelled", deleted_at=now)
    ).rowcount
    result.events_deleted += deleted
    result.calendars_removed += 1


def _list_events(
    session: GoogleSession, calendar_id: str, sync_token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """All pages of events.list; returns (items, nextSyncToken). Raises HttpError 410 for a dead token."""
    events = session.calendar().events()
    items: list[dict[str, Any]] = []
    for page in session.pages(
        lambda token: events.list(
            calendarId=calendar_id,
            singleEvents=True,
            maxResults=PAGE_SIZE,
            pageToken=token,
            **({"syncToken": sync_token} if sync_token else {}),
        )
    ):
        items.extend(page.get("items", []))
    return items, page.get("nextSyncToken")


def sync_calendar(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    calendar_id: str,
    sync_token: str | None,
    result: CalendarSyncResult,
) -> None:
    full_sync = sync_token is None
    try:
        items, next_token = _list_events(session, calendar_id, sync_token)
    except HttpError as exc:
        if http_status(exc) == 410 and sync_token:
            result.sync_tokens_expired += 1
            full_sync = True
            items, next_token = _list_events(session, calendar_id, None)
        elif http_status(exc) == 404:
            # The calendar is gone (unsubscribed or deleted) between list refreshes.
            with database.begin() as conn:
                _remove_calendar(conn, user_id, calendar_id, datetime.now(UTC), result)
            return
        else:
            raise
    if full_sync:
        result.full_sync_calendars += 1
    else:
        result.incremental_calendars += 1

    now = datetime.now(UTC)
    live: dict[str, dict[str, Any]] = {}
    cancelled: dict[str, dict[str, Any]] = {}
    for item in items:  # the last word on an id wins; one statement cannot touch a row twice
        if is_cancelled(item):
            cancelled[item["id"]] = {**cancelled_row(user_id, calendar_id, item, now), "synced_at": now}
            live.pop(item["id"], None)
        else:
            live[item["id"]] = {**event_row(user_id, calendar_id, item), "synced_at": now}
            cancelled.pop(item["id"], None)

    # Rows and the new sync token commit together: a crash before this leaves the old token.
    with database.begin() as conn:
        result.events_upserted += upsert(
            conn, CalendarEvent.__table__, list(live.values()), ["user_id", "calendar_id", "event_id"]
        )
        result.events_deleted += upsert(
            conn,
            CalendarEvent.__table__,
            list(cancelled.values()),
            ["user_id", "calendar_id", "event_id"],
            update_columns=CANCELLED_UPDATE_COLUMNS,
        )
        if full_sync:
            # What the full list no longer has was deleted while we were not looking.
            stale = (
                update(CalendarEvent)
                .where(
                    CalendarEvent.user_id == user_id,
                    CalendarEvent.calendar_id == calendar_id,
                    CalendarEvent.deleted_at.is_(None),
                )
                .values(status="cancelled", deleted_at=now)
            )
            if live:
                stale = stale.where(CalendarEvent.event_id.not_in(list(live)))
            result.events_deleted += conn.execute(stale).rowcount
        conn.execute(
            update(UserCalendar)
            .where(UserCalendar.user_id == user_id, UserCalendar.calendar_id == calendar_id)
            .values(sync_token=next_token, updated_at=now)
        )


def _calendar_list_is_stale(conn: Connection, user_id: str, now: datetime) -> bool:
    last = conn.execute(
        select(SyncState.last_synced_at).where(
            SyncState.user_id == user_id, SyncState.service == LIST_SERVICE
        )
    ).scalar()
    return sync_state.is_due(last, int(CALENDAR_LIST_MAX_AGE.total_seconds()), now)


def sync_user_calendars(
    session: GoogleSession,
    database: DatabaseResource,
    user_id: str,
    *,
    refresh_list: bool = False,
) -> CalendarSyncResult:
    """Sync every calendar of one user (the caller records the outcome in `sync_state`)."""
    started = time.monotonic()
    result = CalendarSyncResult(user_id=user_id)
    try:
        with database.begin() as conn:
            stale = refresh_list or _calendar_list_is_stale(conn, user_id, datetime.now(UTC))
        if stale:
            refresh_calendar_list(session, database, user_id, result)
        with database.begin() as conn:
            calendars = conn.execute(
                select(UserCalendar.calendar_id, UserCalendar.sync_token)
                .where(UserCalendar.user_id == user_id, UserCalendar.removed_at.is_(None))
                .order_by(UserCalendar.calendar_id)
            ).all()
        for calendar_id, token in calendars:
            sync_calendar(session, database, user_id, calendar_id, token, result)
            result.calendar_ids.append(calendar_id)
        session.persist_token()
    finally:
        result.api_calls = session.api_calls
        result.duration_seconds = time.monotonic() - started
    return result
