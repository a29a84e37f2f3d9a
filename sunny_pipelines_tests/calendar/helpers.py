"""Test helpers: the sandbox's calendar truth and what the pipeline stored, in one comparable shape.
(Acting as a user through the real Google client: `sunny_pipelines_tests.google_clients`.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from sunny_pipelines.calendar.events import event_row
from sunny_pipelines.db.models import CalendarEvent


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
