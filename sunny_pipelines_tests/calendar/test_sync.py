"""Calendar sync against PostgreSQL and the sandbox over HTTP, with the real Google client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.models import CalendarEvent, GoogleConnection, SyncState
from sunny_pipelines.resources.google import GoogleGrantError
from sunny_pipelines_tests.google_clients import calendar_client

from .helpers import stored_rows, truth_rows


def sync(google, database, user_id: str):
    return sync_user_calendars(google.session(user_id), database, user_id)


def test_first_sync_equals_the_sandbox(google, database, sandbox, connected_users):
    user = connected_users[0]
    result = sync(google, database, user["id"])
    assert result.full_sync_calendars == len(sandbox.world.calendar_truth(user["email"]))
    assert result.events_upserted > 0
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    with database.begin() as conn:
        urls = conn.execute(
            select(CalendarEvent.meeting_platform).where(CalendarEvent.meeting_url.is_not(None)).distinct()
        ).scalars()
        assert {"google_meet"} <= set(urls)


def test_inserted_moved_and_deleted_events_reach_the_database(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"])
    client = calendar_client(sandbox, user)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    created = (
        client.events()
        .insert(
            calendarId="primary",
            body={
                "summary": "Design review",
                "location": "https://us02web.zoom.us/j/81234567890",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
            },
        )
        .execute()
    )
    items = client.events().list(calendarId="primary", singleEvents=True).execute()["items"]
    victim, moved = [e for e in items if e["id"] != created["id"]][:2]
    new_start = start + timedelta(days=1)
    client.events().patch(
        calendarId="primary",
        eventId=moved["id"],
        body={
            "start": {"dateTime": new_start.isoformat()},
            "end": {"dateTime": (new_start + timedelta(minutes=30)).isoformat()},
        },
    ).execute()
    client.events().delete(calendarId="primary", eventId=victim["id"]).execute()

    result = sync(google, database, user["id"])
    assert result.incremental_calendars >= 1 and result.full_sync_calendars == 0
    assert result.events_deleted >= 1
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    with database.begin() as conn:
        row = conn.execute(
            select(CalendarEvent.meeting_platform, CalendarEvent.start_time).where(
                CalendarEvent.event_id == created["id"], CalendarEvent.calendar_id == user["email"]
            )
        ).one()
        assert row.meeting_platform == "zoom"
        deleted = conn.execute(
            select(CalendarEvent.status, CalendarEvent.deleted_at).where(
                CalendarEvent.event_id == victim["id"], CalendarEvent.calendar_id == user["email"]
            )
        ).one()
        assert deleted.status == "cancelled" and deleted.deleted_at is not None


def test_second_sync_without_change_makes_one_call_per_calendar(google, database, sandbox, connected_users):
    user = connected_users[1]
    sync(google, database, user["id"])
    result = sync(google, database, user["id"])
    calendars = len(sandbox.world.calendar_truth(user["email"]))
    assert result.api_calls == calendars
    assert result.change_count == 0


def test_expired_sync_token_recovers_and_removes_deleted_events(google, database, sandbox, connected_users):
    user = connected_users[0]
    sync(google, database, user["id"])
    client = calendar_client(sandbox, user)
    items = client.events().list(calendarId="primary", singleEvents=True).execute()["items"]
    client.events().delete(calendarId="primary", eventId=items[0]["id"]).execute()
    sandbox.world.inject_fault("invalidate_sync_tokens", user_email=user["email"])

    result = sync(google, database, user["id"])
    assert result.sync_tokens_expired == len(sandbox.world.calendar_truth(user["email"]))
    assert result.events_deleted >= 1
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    # The fresh token works incrementally again.
    assert sync(google, database, user["id"]).full_sync_calendars == 0


def test_expired_access_token_is_refreshed_and_persisted(google, database, cipher, sandbox, connected_users):
    user = connected_users[0]
    with database.begin() as conn:
        conn.execute(
            update(GoogleConnection)
            .where(GoogleConnection.user_id == user["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    sync(google, database, user["id"])
    with database.begin() as conn:
        row = conn.execute(select(GoogleConnection).where(GoogleConnection.user_id == user["id"])).one()
    assert cipher.decrypt(row.access_token) != user["access_token"]
    assert row.expires_at > datetime.now(UTC) + timedelta(minutes=30)
    assert row.last_refreshed_at is not None


def test_token_rejected_mid_sync_is_refreshed_and_persisted(
    google, database, cipher, sandbox, connected_users
):
    user = connected_users[2]
    sandbox.world.inject_fault("expire_access_token", user_email=user["email"])
    sync(google, database, user["id"])
    with database.begin() as conn:
        row = conn.execute(select(GoogleConnection).where(GoogleConnection.user_id == user["id"])).one()
    assert cipher.decrypt(row.access_token) != user["access_token"]
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)


def test_revoked_grant_marks_connection_needs_reauth(google, database, sandbox, connected_users):
    user = connected_users[0]
    sandbox.world.inject_fault("revoke", user_email=user["email"])
    with database.begin() as conn:
        conn.execute(
            update(GoogleConnection)
            .where(GoogleConnection.user_id == user["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    with pytest.raises(GoogleGrantError, match="invalid_grant"):
        google.session(user["id"])
    with database.begin() as conn:
        row = conn.execute(select(GoogleConnection).where(GoogleConnection.user_id == user["id"])).one()
    assert row.status == "needs_reauth"
    assert "invalid_grant" in row.last_error
    with pytest.raises(GoogleGrantError, match="needs_reauth"):
        google.session(user["id"])


def test_rate_limits_and_server_errors_are_retried_and_exact(google, database, sandbox, connected_users):
    user = connected_users[1]
    sandbox.world.inject_fault("rate_limit", user_email=user["email"], count=2)
    sandbox.world.inject_fault("server_error", user_email=user["email"], count=1)
    result = sync(google, database, user["id"])
    assert result.api_calls >= len(sandbox.world.calendar_truth(user["email"])) + 3
    assert stored_rows(database, user["id"]) == truth_rows(sandbox, user)
    with database.begin() as conn:
        state = conn.execute(
            select(SyncState).where(SyncState.user_id == user["id"], SyncState.service == "calendar_list")
        ).one()
    assert state.last_error is None and state.last_synced_at is not None
