"""What to do with a meeting's bot, as plain functions."""

from datetime import UTC, datetime, timedelta

import pytest

from sunny_pipelines.meetings.plan import BotAction, join_time, meeting_dedup_key, plan_bot

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
JOIN = START - timedelta(minutes=2)


def test_one_meeting_one_key_and_a_moved_or_other_meeting_another():
    url = "https://us02web.zoom.us/j/81234567890?pwd=abc"
    assert meeting_dedup_key(url, START) == meeting_dedup_key(url, START)
    assert meeting_dedup_key(url, START) != meeting_dedup_key(url, START + timedelta(hours=1))
    assert meeting_dedup_key(url, START) != meeting_dedup_key("https://meet.google.com/abc-defg-hij", START)
    assert len(meeting_dedup_key(url, START)) <= 64


def test_a_bot_joins_a_few_minutes_early_or_at_once_when_the_meeting_is_near():
    assert join_time(START, 2, START - timedelta(hours=1)) == JOIN
    now = START - timedelta(seconds=30, microseconds=5)
    assert join_time(START, 2, now) == now.replace(microsecond=0)


@pytest.mark.parametrize(
    ("wanted", "state", "bot_join", "action"),
    [
        (True, None, None, BotAction.CREATE),
        # A meeting is one occurrence: once its bot has been (or failed), never a second.
        (True, "ended", JOIN, BotAction.NONE),
        (True, "fatal_error", JOIN, BotAction.NONE),
        (True, "data_deleted", JOIN, BotAction.NONE),
        (True, "deleted", JOIN, BotAction.CREATE),  # we deleted it; wanted again: a new bot
        (True, "scheduled", JOIN, BotAction.NONE),
        (True, "scheduled", JOIN - timedelta(hours=1), BotAction.MOVE),
        (True, "joined_recording", JOIN - timedelta(hours=1), BotAction.NONE),  # too late to move
        (False, "scheduled", JOIN, BotAction.DELETE),
        (False, "joining", JOIN, BotAction.NONE),  # Attendee cannot delete it any more
        (False, None, None, BotAction.NONE),
        (False, "deleted", JOIN, BotAction.NONE),
    ],
)
def test_the_one_action_that_brings_attendee_in_line(wanted, state, bot_join, action):
    plan = plan_bot(wanted=wanted, join_at=JOIN, bot_state=state, bot_join_at=bot_join)
    assert plan.action == action
    assert plan.reason
    if action in (BotAction.CREATE, BotAction.MOVE):
        assert plan.join_at == JOIN
