"""What a Google Calendar event means to Sunny: plain functions from API JSON to rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sunny_pipelines.calendar.meeting_links import extract_meeting_link


def parse_rfc3339(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    # Rows hold UTC instants; the event's own zone is kept in `time_zone`.
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_event_time(value: dict[str, Any] | None) -> tuple[datetime | None, bool]:
    """(instant, is_all_day) of an event's ``start``/``end``; all-day dates become UTC midnight."""
    if not value:
        return None, False
    if value.get("dateTime"):
        return parse_rfc3339(value["dateTime"]), False
    if value.get("date"):
        return datetime.combine(date.fromisoformat(value["date"]), time.min, tzinfo=UTC), True
    return None, False


def is_cancelled(event: dict[str, Any]) -> bool:
    return event.get("status") == "cancelled"


def event_row(user_id: str, calendar_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """The `calendar_events` row of a live (not cancelled) event."""
    start, all_day = parse_event_time(event.get("start"))
    end, _ = parse_event_time(event.get("end"))
    original_start, _ = parse_event_time(event.get("originalStartTime"))
    link = extract_meeting_link(event)
    # The normalised URL: the meetings domain matches one meeting across users on it.
    meeting_url, platform = (link.url, link.platform) if link else (None, None)
    attendees = [
        {
            "email": a.get("email"),
            "display_name": a.get("displayName"),
            "response_status": a.get("responseStatus"),
            "organizer": bool(a.get("organizer")),
            "self": bool(a.get("self")),
            "optional": bool(a.get("optional")),
        }
        for a in event.get("attendees") or []
    ]
    return {
        "user_id": user_id,
        "calendar_id": calendar_id,
        "event_id": event["id"],
        "ical_uid": event.get("iCalUID"),
        "status": event.get("status") or "confirmed",
        "summary": event.get("summary"),
        "description": event.get("description"),
        "location": event.get("location"),
        "start_time": start,
        "end_time": end,
        "is_all_day": all_day,
        "time_zone": (event.get("start") or {}).get("timeZone"),
        "organizer_email": (event.get("organizer") or {}).get("email"),
        "attendees": attendees,
        "meeting_url": meeting_url,
        "meeting_platform": platform,
        "recurring_event_id": event.get("recurringEventId"),
        "original_start_time": original_start,
        "html_link": event.get("htmlLink"),
        "updated": parse_rfc3339(event.get("updated")),
        "deleted_at": None,
    }


def cancelled_row(user_id: str, calendar_id: str, event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The `calendar_events` row of a cancelled event: a deleted row, other columns kept."""
    original_start, _ = parse_event_time(event.get("originalStartTime"))
    return {
        "user_id": user_id,
        "calendar_id": calendar_id,
        "event_id": event["id"],
        "status": "cancelled",
        "recurring_event_id": event.get("recurringEventId"),
        "original_start_time": original_start,
        "attendees": [],
        "is_all_day": False,
        "updated": parse_rfc3339(event.get("updated")) or now,
        "deleted_at": now,
    }


CANCELLED_UPDATE_COLUMNS = ["status", "updated", "deleted_at", "synced_at"]
