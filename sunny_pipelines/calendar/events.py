"""What a Google Calendar event means to Sunny: plain functions from API JSON to rows."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

# Meeting links by platform, most specific first. URLs stop at whitespace, quotes and markup.
_URL_END = r"[^\s\"'<>)\]]*"
MEETING_URL_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("google_meet", re.compile(r"https://meet\.google\.com/[a-z]{3}-[a-z]{4}-[a-z]{3}" + _URL_END)),
    ("zoom", re.compile(r"https://(?:[\w-]+\.)*zoom\.us/(?:j|my|w|s)/" + _URL_END)),
    (
        "teams",
        re.compile(r"https://teams\.(?:microsoft|live)\.com/(?:l/meetup-join|meet)/" + _URL_END),
    ),
    ("webex", re.compile(r"https://(?:[\w-]+\.)*webex\.com/" + _URL_END)),
]


def classify_meeting_url(url: str) -> str | None:
    """The platform of a meeting URL, or None if it is not a known meeting link."""
    for platform, pattern in MEETING_URL_PATTERNS:
        if pattern.match(url):
            return platform
    return None


def find_meeting_url(text: str | None) -> tuple[str, str] | None:
    """The first meeting link in free text (a location or an HTML description)."""
    if not text:
        return None
    best: tuple[int, str, str] | None = None
    for platform, pattern in MEETING_URL_PATTERNS:
        match = pattern.search(text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), match.group(0).rstrip(".,;"), platform)
    return (best[1], best[2]) if best else None


def extract_meeting_url(event: dict[str, Any]) -> tuple[str | None, str | None]:
    """(meeting_url, platform) of an event: conference data first, then location, then description."""
    if event.get("hangoutLink"):
        return event["hangoutLink"], "google_meet"
    for entry in (event.get("conferenceData") or {}).get("entryPoints") or []:
        uri = entry.get("uri") or ""
        if entry.get("entryPointType") == "video" and uri:
            return uri, classify_meeting_url(uri) or "other"
    for field in ("location", "description"):
        found = find_meeting_url(event.get(field))
        if found:
            return found
    return None, None


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
    meeting_url, platform = extract_meeting_url(event)
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
