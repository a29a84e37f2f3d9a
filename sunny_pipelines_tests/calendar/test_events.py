from datetime import UTC, datetime

import pytest

from sunny_pipelines.calendar.events import cancelled_row, event_row


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"hangoutLink": "https://meet.google.com/abc-defg-hij?authuser=1&hs=122"},
            ("https://meet.google.com/abc-defg-hij", "google_meet"),
        ),
        (
            {
                "conferenceData": {
                    "entryPoints": [
                        {"entryPointType": "phone", "uri": "tel:+1-555-0100"},
                        {
                            "entryPointType": "video",
                            "uri": "https://US02WEB.zoom.us/j/81234567890?pwd=abc&uname=A",
                        },
                    ]
                }
            },
            ("https://us02web.zoom.us/j/81234567890?pwd=abc", "zoom"),
        ),
        (
            {
                "location": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_X%40thread.v2/0"
                "?context=%7b%22Tid%22%3a%22T1%22%7d"
            },
            (
                "https://teams.microsoft.com/l/meetup-join/19%3Ameeting_X%40thread.v2/0"
                "?context=%7B%22Tid%22%3A%22t1%22%7D",
                "teams",
            ),
        ),
        (
            {
                "location": "Room 4",
                "description": 'Join: <a href="https://acme.webex.com/meet/jdoe">here</a>.',
            },
            ("https://acme.webex.com/meet/jdoe", "webex"),
        ),
        (
            {
                "conferenceData": {
                    "entryPoints": [{"entryPointType": "video", "uri": "https://whereby.com/acme"}]
                }
            },
            ("https://whereby.com/acme", "other"),
        ),
        (
            {"location": "Conference room B", "description": "Agenda: https://docs.example.com/x"},
            (None, None),
        ),
        ({}, (None, None)),
    ],
)
def test_event_row_stores_the_normalised_meeting_link(event, expected):
    row = event_row("u1", "c", {"id": "e", **event})
    assert (row["meeting_url"], row["meeting_platform"]) == expected


def test_event_row_timed_instance():
    event = {
        "id": "series1_20261130T150000Z",
        "status": "confirmed",
        "summary": "Weekly sync",
        "start": {"dateTime": "2026-11-30T16:00:00+01:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2026-11-30T16:30:00+01:00", "timeZone": "Europe/Paris"},
        "recurringEventId": "series1",
        "originalStartTime": {"dateTime": "2026-11-30T16:00:00+01:00"},
        "organizer": {"email": "boss@example.com"},
        "attendees": [{"email": "ada@example.com", "responseStatus": "accepted", "self": True}],
        "updated": "2026-11-20T10:00:00.000Z",
        "hangoutLink": "https://meet.google.com/abc-defg-hij",
    }
    row = event_row("u1", "ada@example.com", event)
    assert row["start_time"] == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert row["end_time"] == datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
    assert row["start_time"].tzinfo is UTC  # normalised: SQLite would drop the +01:00
    assert row["is_all_day"] is False
    assert row["recurring_event_id"] == "series1"
    assert row["organizer_email"] == "boss@example.com"
    assert row["attendees"][0]["self"] is True
    assert row["meeting_url"] == "https://meet.google.com/abc-defg-hij"
    assert row["meeting_platform"] == "google_meet"
    assert row["updated"] == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert row["deleted_at"] is None


def test_event_row_all_day():
    row = event_row("u1", "c", {"id": "e", "start": {"date": "2026-12-24"}, "end": {"date": "2026-12-25"}})
    assert row["is_all_day"] is True
    assert row["start_time"] == datetime(2026, 12, 24, tzinfo=UTC)
    assert row["status"] == "confirmed"


def test_cancelled_row_is_a_deleted_row():
    now = datetime(2026, 11, 28, tzinfo=UTC)
    row = cancelled_row("u1", "c", {"id": "e", "status": "cancelled"}, now)
    assert row["status"] == "cancelled"
    assert row["deleted_at"] == now
