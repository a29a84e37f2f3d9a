"""Bots for meetings, end to end against the sandbox (Calendar and Attendee over HTTP) and
PostgreSQL, with meetings put in calendars through the real Google client."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from sunny_pipelines.db.models import RecordingRulesRow
from sunny_pipelines.db.upserts import upsert
from sunny_pipelines.resources.attendee import AttendeeResource
from sunny_pipelines_tests.google_clients import calendar_client

from .helpers import bots, decide_for, meetings, participants, put_meeting


def ours(database, sandbox, event: dict) -> tuple:
    """Our meeting's row, its participants and its bots at Attendee."""
    [meeting] = [m for m in meetings(database) if "81234567890" in m.meeting_url]
    people = [p for p in participants(database) if p.meeting_id == meeting.id]
    at_attendee = [
        b
        for b in sandbox.world.attendee_bots()
        if b["deduplication_key"] == meeting.dedup_key and not b.get("deleted")
    ]
    return meeting, people, at_attendee


def start_of(event: dict) -> datetime:
    return datetime.fromisoformat(event["start"]["dateTime"])


def test_two_users_attending_one_meeting_get_exactly_one_bot(
    google, database, attendee, sandbox, connected_users
):
    ada, alan, _ = connected_users
    event = put_meeting(sandbox, ada, [alan])
    decide_for(google, database, attendee, [ada, alan])

    meeting, people, at_attendee = ours(database, sandbox, event)
    assert {p.user_id for p in people} == {ada["id"], alan["id"]}
    assert all(p.want_bot for p in people)
    assert {p.decision_code for p in people} == {"qualifies_hosted", "qualifies_invited"}
    [bot] = at_attendee
    assert bot["state"] == "scheduled" and bot["meeting_url"] == meeting.meeting_url
    assert datetime.fromisoformat(bot["join_at"].replace("Z", "+00:00")) == start_of(event) - timedelta(
        minutes=2
    )
    assert [b.bot_id for b in bots(database) if b.meeting_id == meeting.id] == [bot["id"]]

    # A re-run (both users again) books nothing more.
    again = decide_for(google, database, attendee, [ada, alan])
    assert sum(r.created + r.adopted for r in again) == 0
    assert len(ours(database, sandbox, event)[2]) == 1


def test_the_bot_follows_its_meeting_when_it_moves_and_goes_when_it_is_cancelled(
    google, database, attendee, sandbox, connected_users
):
    ada, alan, _ = connected_users
    event = put_meeting(sandbox, ada, [alan])
    decide_for(google, database, attendee, [ada, alan])
    new_start = start_of(event) + timedelta(hours=3)
    calendar_client(sandbox, ada).events().patch(
        calendarId="primary",
        eventId=event["id"],
        body={
            "start": {"dateTime": new_start.isoformat()},
            "end": {"dateTime": (new_start + timedelta(minutes=45)).isoformat()},
        },
    ).execute()
    results = decide_for(google, database, attendee, [ada, alan])
    assert sum(r.moved for r in results) == 1 and sum(r.created for r in results) == 0
    meeting, _, [bot] = ours(database, sandbox, event)
    assert meeting.start_time == new_start
    assert datetime.fromisoformat(bot["join_at"].replace("Z", "+00:00")) == new_start - timedelta(minutes=2)

    calendar_client(sandbox, ada).events().delete(calendarId="primary", eventId=event["id"]).execute()
    results = decide_for(google, database, attendee, [ada, alan])
    assert sum(r.deleted for r in results) == 1
    _, people, at_attendee = ours(database, sandbox, event)
    assert at_attendee == []
    assert {p.decision_code for p in people} == {"cancelled"}
    assert [b.state for b in bots(database) if b.bot_id == bot["id"]] == ["deleted"]


def test_a_rule_change_that_leaves_nobody_wanting_the_bot_deletes_it(
    google, database, attendee, sandbox, connected_users
):
    ada, alan, _ = connected_users
    event = put_meeting(sandbox, ada, [alan])
    decide_for(google, database, attendee, [ada, alan])
    # Ada stops recording meetings she hosts: Alan still wants the bot.
    with database.begin() as conn:
        upsert(
            conn,
            RecordingRulesRow.__table__,
            [{"user_id": ada["id"], "rules": {"record_hosted": False}}],
            ["user_id"],
        )
    decide_for(google, database, attendee, [ada, alan])
    _, people, at_attendee = ours(database, sandbox, event)
    assert [b["state"] for b in at_attendee] == ["scheduled"]
    assert {p.user_id: p.decision_code for p in people} == {
        ada["id"]: "hosted_excluded",
        alan["id"]: "qualifies_invited",
    }

    # Then Alan stops recording meetings others host: nobody wants it any more.
    with database.begin() as conn:
        upsert(
            conn,
            RecordingRulesRow.__table__,
            [{"user_id": alan["id"], "rules": {"record_not_hosted": False}}],
            ["user_id"],
        )
        assert conn.execute(select(RecordingRulesRow.user_id)).scalars().all()
    results = decide_for(google, database, attendee, [ada, alan])
    assert sum(r.deleted for r in results) == 1
    _, people, at_attendee = ours(database, sandbox, event)
    assert at_attendee == []
    assert all(not p.want_bot and p.reason for p in people)


def test_attendee_errors_are_retried_and_a_create_that_timed_out_is_found_not_repeated(
    google, database, cipher, sandbox, connected_users
):
    ada, alan, _ = connected_users
    event = put_meeting(sandbox, ada, [alan])
    impatient = AttendeeResource(base_url=sandbox.base_url, timeout_seconds=1.0)
    # Attendee makes the bot but answers after the client gave up; a 429 comes first.
    sandbox.world.inject_fault("attendee_rate_limit", count=1)
    sandbox.world.inject_fault("attendee_slow_create", count=1, latency_ms=2500)
    decide_for(google, database, impatient, [ada, alan])
    meeting, _, at_attendee = ours(database, sandbox, event)
    assert len(at_attendee) == 1
    assert [b.bot_id for b in bots(database) if b.meeting_id == meeting.id] == [at_attendee[0]["id"]]
