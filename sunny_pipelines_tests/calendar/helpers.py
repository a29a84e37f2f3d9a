"""Test helpers: acting as a user in the sandbox through the real Google client, and reading
back what the pipeline stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httplib2
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from sqlalchemy import select

from sunny_pipelines.calendar.events import event_row
from sunny_pipelines.db.models import CalendarEvent


def user_calendar_client(sandbox, user: dict) -> Any:
    """A Calendar v3 client acting as ``user`` (their own grant, as their browser would)."""
    creds = Credentials(
        token=user["access_token"],
        refresh_token=user["refresh_token"],
        token_uri=sandbox.base_url + "/token",
        client_id="sunny-local",
        client_secret="sunny-local-secret",
    )
    return build(
        "calendar",
        "v3",
        http=AuthorizedHttp(creds, http=httplib2.Http(timeout=10)),
        static_discovery=True,
        client_options={"api_endpoint": sandbox.base_url + "/calendar/v3/"},
    )


def _comparable(row: dict[str, Any]) -> tuple:
    def norm(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value else None

    return (
        row["calendar_id"],
        row["event_id"],
        row["status"],
        row["summary"],
        norm(row["start_time"]),
        norm(row["end_time"]),
        row["meeting_url"],
        row["recurring_event_id"],
    )


def truth_rows(sandbox, user: dict) -> set[tuple]:
    """The sandbox's truth for ``user``, in the shape of `calendar_events` rows."""
    return {
        _comparable(event_row(user["id"], calendar_id, event))
        for calendar_id, events in sandbox.world.calendar_truth(user["email"]).items()
        for event in events
    }


def stored_rows(database, user_id: str) -> set[tuple]:
    """The live (not deleted) `calendar_events` rows of ``user_id``."""
    with database.begin() as conn:
        rows = conn.execute(
            select(CalendarEvent.__table__).where(
                CalendarEvent.user_id == user_id, CalendarEvent.deleted_at.is_(None)
            )
        ).mappings()
        return {_comparable(dict(row)) for row in rows}
