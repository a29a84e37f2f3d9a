from datetime import UTC, datetime, timedelta

from sunny_pipelines.calendar.channels import EVENTS_CHANNEL, LIST_CHANNEL, plan_calendar_channels
from sunny_pipelines.resources.channels import Channel

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def channel(cid: str, service: str, target, expires_in: timedelta) -> Channel:
    return Channel(cid, service, target, f"res-{cid}", NOW + expires_in)


def test_new_user_gets_a_list_channel_and_one_per_calendar():
    plan = plan_calendar_channels(["a@x.com", "team"], [], NOW)
    assert plan.to_open == [(LIST_CHANNEL, None), (EVENTS_CHANNEL, "a@x.com"), (EVENTS_CHANNEL, "team")]
    assert plan.to_replace == [] and plan.to_stop == []


def test_fresh_channels_are_left_alone():
    active = [
        channel("l", LIST_CHANNEL, None, timedelta(days=6)),
        channel("e", EVENTS_CHANNEL, "a", timedelta(days=6)),
    ]
    plan = plan_calendar_channels(["a"], active, NOW)
    assert (plan.to_open, plan.to_replace, plan.to_stop) == ([], [], [])


def test_channels_expiring_within_26_hours_are_replaced():
    expiring = channel("e", EVENTS_CHANNEL, "a", timedelta(hours=25))
    plan = plan_calendar_channels(["a"], [channel("l", LIST_CHANNEL, None, timedelta(days=6)), expiring], NOW)
    assert plan.to_open == [(EVENTS_CHANNEL, "a")]
    assert plan.to_replace == [expiring]


def test_channels_of_removed_calendars_are_stopped_and_duplicates_replaced():
    old_dup = channel("e1", EVENTS_CHANNEL, "a", timedelta(days=3))
    keep = channel("e2", EVENTS_CHANNEL, "a", timedelta(days=6))
    gone = channel("g", EVENTS_CHANNEL, "removed", timedelta(days=6))
    plan = plan_calendar_channels(
        ["a"], [channel("l", LIST_CHANNEL, None, timedelta(days=6)), old_dup, keep, gone], NOW
    )
    assert plan.to_open == []
    assert plan.to_replace == [old_dup]
    assert plan.to_stop == [gone]
