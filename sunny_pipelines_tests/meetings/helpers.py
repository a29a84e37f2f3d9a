"""Meetings in tests: a meeting put in calendars through the real Google client, the calendars
synced, the bot decisions run, and what Attendee (the sandbox) and our tables then hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.models import Meeting, MeetingBot, MeetingParticipant
from sunny_pipelines.meetings.bots import schedule_user_bots
from sunny_pipelines_tests.google_clients import calendar_client

ZOOM = "https://acme.zoom.us/j/81234567890?pwd=Qm9hcmQ"


def put_meeting(sandbox, organizer: dict, guests: list[dict], *, start: datetime | None = None) -> dict:
    """An event the organizer creates with a Zoom link, inviting ``guests`` (their calendars get
    it); tomorrow unless ``start`` says when."""
    start = start or datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=26)
    body = {
        "summary": "Quarterly review",
        "location": ZOOM,
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=45)).isoformat()},
        "attendees": [{"email": organizer["email"]}] + [{"email": g["email"]} for g in guests],
    }
    return calendar_client(sandbox, organizer).events().insert(calendarId="primary", body=body).execute()


def decide_for(google, database, attendee, users: list[dict]) -> list:
    """Each user's calendar synced, then their bot decisions: what a calendar push leads to."""
    results = []
    for user in users:
        sync_user_calendars(google.session(user["id"]), database, user["id"])
    for user in users:
        results.append(schedule_user_bots(database, attendee.client(), user["id"]))
    return results


def meetings(database) -> list:
    with database.begin() as conn:
        return conn.execute(select(Meeting.__table__).order_by(Meeting.id)).all()


def participants(database) -> list:
    with database.begin() as conn:
        return conn.execute(
            select(MeetingParticipant.__table__).order_by(
                MeetingParticipant.meeting_id, MeetingParticipant.user_id
            )
        ).all()


def bots(database) -> list:
    with database.begin() as conn:
        return conn.execute(select(MeetingBot.__table__).order_by(MeetingBot.created_at)).all()
