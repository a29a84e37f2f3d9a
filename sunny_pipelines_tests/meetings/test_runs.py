"""The meetings domain as Dagster runs it: decisions right after a calendar sync, a bot's life
followed through Attendee's webhooks to its stored transcript, and the polling schedule alone
reaching the same end when every webhook is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import select

from sunny_pipelines.db.models import Meeting, MeetingBot, MeetingTranscript
from sunny_pipelines.definitions import build_defs
from sunny_pipelines.meetings.bots import cleanup_completed_meetings
from sunny_pipelines.partitions import RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG
from sunny_pipelines.vocabulary import Source, Trigger
from sunny_pipelines_tests.inbox.helpers import pending_users
from sunny_pipelines_tests.runs import evaluate_sensor, execute, materialized, run_range

from .helpers import decide_for, put_meeting


def soon() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=3)


def transcript(database, bot_id: str) -> list:
    with database.begin() as conn:
        return conn.execute(
            select(MeetingTranscript.__table__)
            .where(MeetingTranscript.bot_id == bot_id)
            .order_by(MeetingTranscript.sequence)
        ).all()


def play_meeting(sandbox, bot_id: str) -> None:
    """The bot joins, the meeting ends early, Attendee finishes post-processing."""
    sandbox.world.advance_clock(3 * 60)
    sandbox.world.attendee_end_meeting(bot_id)
    sandbox.world.advance_clock(60)
    assert sandbox.world.attendee_bot(bot_id)["state"] == "ended"
    sandbox.world.wait_notifications_idle(10)


def test_bot_decisions_follow_each_calendar_sync(resources, database, sandbox, connected_users):
    ada, alan, _ = connected_users
    put_meeting(sandbox, ada, [alan])
    defs = build_defs(resources)
    keys = [u["id"] for u in connected_users]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", keys)
        assert run_range(defs, instance, "calendar_sync", keys, Trigger.SCHEDULE).success
        tick = evaluate_sensor(defs, "meetings_after_calendar_sync_sensor", instance, resources)
        [request] = tick.run_requests
        assert request.job_name == "bot_scheduling" and request.tags[TRIGGER_TAG] == "upstream"
        assert execute(defs, instance, request).success
        assert materialized(instance, "meeting_bots") == set(keys)
        assert any("81234567890" in b["meeting_url"] for b in sandbox.world.attendee_bots())
        # Nothing synced since: the next tick requests nothing.
        again = evaluate_sensor(defs, "meetings_after_calendar_sync_sensor", instance, resources, tick.cursor)
        assert not again.run_requests
        # Syncs that found no change ask for no decision, and the sensor reads past them.
        assert run_range(defs, instance, "calendar_sync", keys, Trigger.BACKFILL).success
        quiet = evaluate_sensor(defs, "meetings_after_calendar_sync_sensor", instance, resources, tick.cursor)
        assert not quiet.run_requests and quiet.cursor != tick.cursor
        # A changed calendar does.
        put_meeting(sandbox, ada, [alan])
        assert run_range(defs, instance, "calendar_sync", keys, Trigger.BACKFILL).success
        changed = evaluate_sensor(
            defs, "meetings_after_calendar_sync_sensor", instance, resources, quiet.cursor
        )
        [request] = changed.run_requests
        span = keys[keys.index(request.tags[RANGE_START_TAG]) : keys.index(request.tags[RANGE_END_TAG]) + 1]
        assert ada["id"] in span


def test_a_bots_life_through_webhooks_ends_with_its_transcript_stored(
    resources, google, database, attendee, sandbox, connected_users, receiver
):
    ada, alan, _ = connected_users
    put_meeting(sandbox, ada, [alan], start=soon())
    decide_for(google, database, attendee, [ada, alan])
    [ours] = [b for b in sandbox.world.attendee_bots() if "81234567890" in b["meeting_url"]]
    play_meeting(sandbox, ours["id"])

    # Every state change came in as a signed webhook, resolved to a participant.
    assert pending_users(database, Source.ATTENDEE)
    defs = build_defs(resources)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("users", [u["id"] for u in connected_users])
        requests = evaluate_sensor(defs, "webhook_inbox_sensor", instance, resources).run_requests
        assert requests and all(r.job_name == "bot_scheduling" for r in requests)
        for request in requests:
            assert execute(defs, instance, request).success
    assert not pending_users(database, Source.ATTENDEE)
    with database.begin() as conn:
        row = conn.execute(select(MeetingBot.__table__).where(MeetingBot.bot_id == ours["id"])).one()
    assert (row.state, row.transcript_status) == ("ended", "stored")
    lines = transcript(database, ours["id"])
    assert lines and all(line.speaker_name and line.text for line in lines)
    # A meeting whose bot has been gets no second bot, however often it is decided again.
    decide_for(google, database, attendee, [ada, alan])
    assert len([b for b in sandbox.world.attendee_bots() if "81234567890" in b["meeting_url"]]) == 1


def test_with_every_webhook_lost_the_polling_schedule_alone_reaches_the_same_end(
    resources, google, database, attendee, sandbox, connected_users, receiver
):
    ada, alan, _ = connected_users
    sandbox.world.set_notification_drop_rate(1.0)
    put_meeting(sandbox, ada, [alan], start=soon())
    decide_for(google, database, attendee, [ada, alan])
    [ours] = [b for b in sandbox.world.attendee_bots() if "81234567890" in b["meeting_url"]]
    play_meeting(sandbox, ours["id"])
    assert not pending_users(database, Source.ATTENDEE)

    defs = build_defs(resources)
    schedule = defs.get_schedule_def("attendee_polling_schedule")
    assert schedule.cron_schedule == "*/10 * * * *"
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def(schedule.job_name).execute_in_process(instance=instance).success
    with database.begin() as conn:
        row = conn.execute(select(MeetingBot.__table__).where(MeetingBot.bot_id == ours["id"])).one()
    assert (row.state, row.transcript_status) == ("ended", "stored")
    assert transcript(database, ours["id"])


def test_an_attendee_webhook_naming_no_user_is_resolved_from_its_bot(
    google, database, attendee, sandbox, connected_users, receiver
):
    ada, alan, _ = connected_users
    put_meeting(sandbox, ada, [alan])
    decide_for(google, database, attendee, [ada, alan])
    [ours] = [b for b in sandbox.world.attendee_bots() if "81234567890" in b["meeting_url"]]
    payload = {
        "idempotency_key": "3f6c1c9e-0b7c-4a53-9d0e-2f1d3c4b5a69",
        "bot_id": ours["id"],
        "bot_metadata": {},
        "trigger": "bot.state_change",
        "data": {"new_state": "staged", "old_state": "scheduled", "event_type": "staged"},
    }
    assert (
        sandbox.world.attendee_emit(
            receiver + "/webhooks/attendee", sandbox.world.attendee_webhook_secret, payload
        )
        == 200
    )
    # The bot's participants want it: the row goes to the first of them.
    assert pending_users(database, Source.ATTENDEE) == [min(ada["id"], alan["id"])]


def test_a_bot_that_fails_is_recorded_with_its_reason_and_completed_meetings_are_cleaned_up(
    resources, google, database, attendee, sandbox, connected_users
):
    ada, alan, _ = connected_users
    put_meeting(sandbox, ada, [alan], start=soon())
    decide_for(google, database, attendee, [ada, alan])
    [ours] = [b for b in sandbox.world.attendee_bots() if "81234567890" in b["meeting_url"]]
    sandbox.world.attendee_fail_bot(ours["id"])
    defs = build_defs(resources)
    with dg.instance_for_test() as instance:
        assert defs.resolve_job_def("attendee_polling_job").execute_in_process(instance=instance).success
        with database.begin() as conn:
            row = conn.execute(select(MeetingBot.__table__).where(MeetingBot.bot_id == ours["id"])).one()
        assert row.state == "fatal_error" and "process_terminated" in row.state_reason

        # Completed: the meeting is finalized; past the retention, the bot's data is deleted at
        # Attendee and here.
        assert defs.resolve_job_def("meeting_cleanup_job").execute_in_process(instance=instance).success
    counts = cleanup_completed_meetings(
        database, attendee.client(), now=datetime.now(UTC) + timedelta(days=40), retention_days=30
    )
    assert counts["bot_data_deleted"] >= 1
    assert sandbox.world.attendee_bot(ours["id"])["data_deleted"]
    with database.begin() as conn:
        meeting = conn.execute(select(Meeting.__table__).where(Meeting.id == row.meeting_id)).one()
        bot = conn.execute(select(MeetingBot.__table__).where(MeetingBot.bot_id == ours["id"])).one()
    assert meeting.status == "completed" and meeting.finalized_at is not None
    assert bot.data_deleted_at is not None
