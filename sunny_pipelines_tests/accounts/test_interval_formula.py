"""The sync-interval formula on synthetic histories (no database, no Dagster): busy, quiet,
push-healthy, failing and new users, full syncs left out of the rate, bounds respected."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from sunny_pipelines.accounts.intervals import (
    Bounds,
    IntervalSettings,
    Reason,
    ServicePolicy,
    compute_intervals,
    distribution,
    distribution_markdown,
    push_health,
)

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
POLICIES = {
    "calendar": ServicePolicy(default_seconds=30 * 60, bounds=Bounds(5 * 60, 24 * 3600)),
    "gmail": ServicePolicy(default_seconds=5 * 60, bounds=Bounds(5 * 60, 24 * 3600)),
}


def syncs(user, service, count, every, changes, *, ok=True, start=None, trigger="schedule"):
    """``count`` syncs of ``user``'s ``service``, ``every`` apart, each finding ``changes``."""
    start = start or NOW - every * count
    return [
        {
            "user_id": user,
            "service": service,
            "finished_at": start + every * i,
            "change_count": changes if ok else 0,
            "ok": ok,
            "trigger": trigger,
        }
        for i in range(count)
    ]


def compute(rows, pairs, push=(), policies=POLICIES, **settings):
    history = pd.DataFrame(
        rows, columns=["user_id", "service", "finished_at", "change_count", "ok", "trigger"]
    )
    frame = pd.DataFrame(pairs, columns=["user_id", "service"])
    result = compute_intervals(history, frame, set(push), policies, **settings)
    return {(r.user_id, r.service): (int(r.interval_seconds), r.reason) for r in result.itertuples()}


def test_busy_users_are_polled_often_and_quiet_ones_rarely():
    rows = (
        syncs("busy", "calendar", 48, timedelta(minutes=30), 10)  # 20 changes an hour
        + syncs("steady", "calendar", 48, timedelta(minutes=30), 1)  # 2 an hour
        + syncs("quiet", "calendar", 96, timedelta(hours=2), 0)  # nothing for 8 days
        + syncs("rare", "calendar", 20, timedelta(hours=6), 0)
        + [{**syncs("rare", "calendar", 1, timedelta(hours=6), 1, start=NOW)[0]}]  # 1 change in 5 days
    )
    got = compute(
        rows, [("busy", "calendar"), ("steady", "calendar"), ("quiet", "calendar"), ("rare", "calendar")]
    )
    # rate = changes after the first sync / time observed; interval = 5 changes' worth of time.
    assert got[("busy", "calendar")] == (15 * 60, Reason.BUSY)  # 5 / (20 per hour) = 15 min
    assert got[("steady", "calendar")] == (
        150 * 60,
        Reason.QUIET,
    )  # 5 / 2 per hour = 2.5 h, above the 30 min default
    assert got[("quiet", "calendar")] == (24 * 3600, Reason.QUIET)  # no change at all: the maximum
    assert got[("rare", "calendar")] == (24 * 3600, Reason.QUIET)  # 5 changes take 25 days: capped
    assert (
        got[("busy", "calendar")][0] < POLICIES["calendar"].default_seconds < got[("steady", "calendar")][0]
    )


def test_the_busiest_users_stop_at_the_lower_bound_and_bounds_are_per_service():
    rows = syncs("flood", "gmail", 100, timedelta(minutes=5), 50) + syncs(
        "flood", "calendar", 100, timedelta(minutes=5), 50
    )
    policies = {**POLICIES, "calendar": ServicePolicy(30 * 60, Bounds(15 * 60, 12 * 3600))}
    got = compute(rows, [("flood", "gmail"), ("flood", "calendar")], policies=policies)
    assert got[("flood", "gmail")] == (5 * 60, Reason.BUSY)
    assert got[("flood", "calendar")] == (15 * 60, Reason.BUSY)


def test_a_healthy_push_channel_makes_the_schedule_a_rare_backstop():
    rows = syncs("pushed", "calendar", 48, timedelta(minutes=30), 10) + syncs(
        "pushed", "gmail", 48, timedelta(minutes=30), 1
    )
    pairs = [("pushed", "calendar"), ("pushed", "gmail"), ("new", "calendar")]
    got = compute(rows, pairs, push={("pushed", "calendar"), ("new", "calendar")})
    assert got[("pushed", "calendar")] == (6 * 3600, Reason.PUSH_HEALTHY)  # busy, but push tells us
    assert got[("new", "calendar")] == (6 * 3600, Reason.PUSH_HEALTHY)  # no history, push alive
    assert got[("pushed", "gmail")] == (150 * 60, Reason.QUIET)  # no Gmail watch: its own rate
    quiet_and_pushed = compute(
        syncs("q", "calendar", 10, timedelta(hours=3), 0), [("q", "calendar")], push={("q", "calendar")}
    )
    assert quiet_and_pushed[("q", "calendar")] == (24 * 3600, Reason.PUSH_HEALTHY)  # push never shortens it
    shorter_backstop = compute(rows, pairs, push={("pushed", "calendar")}, push_backstop_seconds=3600)
    assert shorter_backstop[("pushed", "calendar")] == (3600, Reason.PUSH_HEALTHY)


def test_failing_users_back_off_within_the_bounds_and_recover_after_a_success():
    base = syncs("f", "calendar", 48, timedelta(minutes=30), 10)  # 15 min when healthy
    failing = base + syncs(
        "f", "calendar", 3, timedelta(minutes=15), 0, ok=False, start=NOW + timedelta(minutes=1)
    )
    got = compute(failing, [("f", "calendar")])
    assert got[("f", "calendar")] == (15 * 60 * 2**3, Reason.FAILING)

    endless = base + syncs(
        "f", "calendar", 40, timedelta(minutes=15), 0, ok=False, start=NOW + timedelta(minutes=1)
    )
    assert compute(endless, [("f", "calendar")])[("f", "calendar")] == (24 * 3600, Reason.FAILING)

    never_worked = syncs("n", "gmail", 2, timedelta(minutes=5), 0, ok=False)
    assert compute(never_worked, [("n", "gmail")])[("n", "gmail")] == (20 * 60, Reason.FAILING)  # default x 4

    recovered = failing + syncs("f", "calendar", 1, timedelta(minutes=1), 10, start=NOW + timedelta(hours=2))
    assert compute(recovered, [("f", "calendar")])[("f", "calendar")][1] == Reason.BUSY


def test_users_without_enough_history_keep_the_default():
    rows = (
        syncs("one", "calendar", 1, timedelta(minutes=30), 40)
        + syncs("short", "calendar", 3, timedelta(minutes=10), 40)  # 20 minutes observed: too little
    )
    got = compute(rows, [("none", "calendar"), ("none", "gmail"), ("one", "calendar"), ("short", "calendar")])
    assert got == {
        ("none", "calendar"): (30 * 60, Reason.NO_HISTORY),
        ("none", "gmail"): (5 * 60, Reason.NO_HISTORY),
        ("one", "calendar"): (30 * 60, Reason.NO_HISTORY),
        ("short", "calendar"): (30 * 60, Reason.NO_HISTORY),
    }
    assert compute([], [("none", "calendar")]) == {("none", "calendar"): (30 * 60, Reason.NO_HISTORY)}


def test_full_syncs_are_not_changes():
    first = syncs(
        "u", "calendar", 1, timedelta(hours=1), 5000, trigger="first_sync", start=NOW - timedelta(days=2)
    )
    backfill = syncs(
        "u", "calendar", 1, timedelta(hours=1), 5000, trigger="backfill", start=NOW - timedelta(days=1)
    )
    quiet = syncs("u", "calendar", 40, timedelta(hours=1), 0)
    assert compute(first + backfill + quiet, [("u", "calendar")])[("u", "calendar")] == (
        24 * 3600,
        Reason.QUIET,
    )
    # Without triggers the first row of the window is still left out (its changes predate the window).
    history = first + quiet
    for row in history:
        row["trigger"] = None
    assert compute(history, [("u", "calendar")])[("u", "calendar")] == (24 * 3600, Reason.QUIET)


def test_only_tuned_services_and_asked_pairs_are_answered_and_the_answer_is_deterministic():
    rows = syncs("a", "calendar", 30, timedelta(minutes=30), 3) + syncs(
        "b", "gmail", 30, timedelta(minutes=10), 1
    )
    rows += syncs("a", "drive", 30, timedelta(minutes=10), 1)  # no policy for drive here
    pairs = [("a", "calendar"), ("b", "gmail"), ("a", "drive")]
    got = compute(rows, pairs)
    assert set(got) == {("a", "calendar"), ("b", "gmail")}
    assert compute(list(reversed(rows)), list(reversed(pairs))) == got
    for interval, _ in got.values():
        assert 5 * 60 <= interval <= 24 * 3600 and interval % 60 == 0


def test_every_interval_stays_within_its_bounds():
    rows = []
    pairs = []
    for i, (count, every, changes, ok) in enumerate(
        [(50, 2, 500, True), (50, 600, 0, True), (30, 1, 0, False), (3, 60, 9, True), (200, 5, 1, True)]
    ):
        rows += syncs(f"u{i}", "gmail", count, timedelta(minutes=every), changes, ok=ok)
        pairs.append((f"u{i}", "gmail"))
    bounds = Bounds(10 * 60, 2 * 3600)
    got = compute(rows, pairs, push={("u3", "gmail")}, policies={"gmail": ServicePolicy(5 * 60, bounds)})
    assert len(got) == 5
    assert all(bounds.min_seconds <= interval <= bounds.max_seconds for interval, _ in got.values())
    assert {reason for _, reason in got.values()} == {"busy", "quiet", "failing", "push_healthy"}


def test_push_health_needs_an_active_unexpired_channel_of_the_service():
    channels = pd.DataFrame(
        [
            ("u1", "calendar_events", "active", NOW + timedelta(days=3)),
            ("u1", "gmail", "active", NOW - timedelta(minutes=1)),  # expired
            ("u2", "drive", "stopped", NOW + timedelta(days=3)),
            ("u2", "gmail", "active", NOW + timedelta(days=6)),
            ("u3", "calendar_list", "active", NOW + timedelta(days=3)),  # calendars, not events
            ("u3", "drive", "active", None),
            ("u4", "drive", "replaced", NOW + timedelta(days=1)),
            ("u4", "drive", "active", NOW + timedelta(days=1)),
        ],
        columns=["user_id", "service", "status", "expires_at"],
    )
    assert push_health(channels, NOW) == {("u1", "calendar"), ("u2", "gmail"), ("u4", "drive")}
    assert push_health(channels.iloc[0:0], NOW) == set()


def test_settings_come_from_the_environment_and_bad_values_are_refused():
    settings = IntervalSettings.from_env(
        {
            "SUNNY_SYNC_INTERVAL_MIN_SECONDS": "600",
            "SUNNY_SYNC_INTERVAL_MAX_SECONDS": "43200",
            "SUNNY_SYNC_INTERVAL_BOUNDS": "drive=900:3600, attendee=1800:7200",
            "SUNNY_SYNC_PUSH_BACKSTOP_SECONDS": "7200",
        }
    )
    assert settings.policy("calendar", 1800) == ServicePolicy(1800, Bounds(600, 43200))
    assert settings.policy("drive", 900).bounds == Bounds(900, 3600)
    assert settings.policy("attendee", 1800).bounds == Bounds(1800, 7200)
    assert (settings.push_backstop_seconds, settings.history_days) == (7200, 14)
    assert IntervalSettings.from_env({}).policy("attendee", 1800).bounds == Bounds(1800, 6 * 3600)
    with pytest.raises(ValueError, match="SUNNY_SYNC_INTERVAL_MAX_SECONDS='a day'"):
        IntervalSettings.from_env({"SUNNY_SYNC_INTERVAL_MAX_SECONDS": "a day"})
    with pytest.raises(ValueError, match="0 < min <= max"):
        IntervalSettings.from_env({"SUNNY_SYNC_INTERVAL_MIN_SECONDS": "90000"})
    with pytest.raises(ValueError, match="SUNNY_SYNC_INTERVAL_BOUNDS: 'drive=fast'"):
        IntervalSettings.from_env({"SUNNY_SYNC_INTERVAL_BOUNDS": "drive=fast"})


def test_the_distribution_summarizes_each_service():
    result = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "a"],
            "service": ["calendar"] * 4 + ["gmail"],
            "interval_seconds": [300, 900, 3600, 86400, 600],
            "reason": ["busy", "busy", "quiet", "push_healthy", "failing"],
        }
    )
    summary = distribution(result)
    calendar = summary["calendar"]
    assert (calendar.count, calendar.min, calendar.median, calendar.max) == (4, 300.0, 2250.0, 86400.0)
    assert (calendar.p25, calendar.p75) == (750.0, 24300.0)
    assert calendar.reasons == {"busy": 2, "push_healthy": 1, "quiet": 1}
    table = distribution_markdown(summary).splitlines()
    assert table[0].startswith("| service | users | min | p25 | median | p75 | max | no_history | busy")
    assert table[2] == "| calendar | 4 | 5 min | 12.5 min | 37.5 min | 6.75 h | 24 h | 0 | 2 | 1 | 1 | 0 |"
    assert table[3] == "| gmail | 1 | 10 min | 10 min | 10 min | 10 min | 10 min | 0 | 0 | 0 | 0 | 1 |"
