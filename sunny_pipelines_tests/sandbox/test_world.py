"""The world without HTTP: seeding speed, recurrence expansion, fault bookkeeping, the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import requests

from sunny_pipelines.sandbox.__main__ import build_parser
from sunny_pipelines.sandbox.seed import seed_world
from sunny_pipelines.sandbox.services.calendar.recurrence import expand
from sunny_pipelines.sandbox.world import World

ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)


def test_seeding_200_users_gives_200_distinct_users() -> None:
    # How fast seeding is, is the benchmarks' business (they seed 200+ users), not a unit test's.
    world = World(seed=3)
    seed_world(world, 200, 50)
    users = world.list_users()
    assert len(users) == 200 and len({u["email"] for u in users}) == 200
    assert users[199]["id"] == "u0200"
    assert all(u["email"].endswith("@example.com") for u in users)


def test_weekly_rule_keeps_local_time_across_dst() -> None:
    occs = expand(
        {"dateTime": "2026-10-19T10:00:00+01:00", "timeZone": "Europe/London"},
        {"dateTime": "2026-10-19T10:30:00+01:00", "timeZone": "Europe/London"},
        ["RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20261103T000000Z"],
        "Europe/London",
        ANCHOR,
    )
    assert [o.start["dateTime"] for o in occs] == [
        "2026-10-19T10:00:00+01:00",
        "2026-10-26T10:00:00Z",
        "2026-11-02T10:00:00Z",
    ]
    assert [o.suffix for o in occs] == ["20261019T090000Z", "20261026T100000Z", "20261102T100000Z"]
    assert occs[1].end["dateTime"] == "2026-10-26T10:30:00Z"


def test_interval_count_byday_exdate_and_all_day() -> None:
    occs = expand(
        {"dateTime": "2026-11-02T09:00:00-05:00", "timeZone": "America/New_York"},
        {"dateTime": "2026-11-02T09:15:00-05:00", "timeZone": "America/New_York"},
        ["RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=4", "EXDATE;TZID=America/New_York:20261104T090000"],
        "UTC",
        ANCHOR,
    )
    assert [o.start["dateTime"][:10] for o in occs] == [
        "2026-11-02",
        "2026-11-04",
        "2026-11-16",
        "2026-11-18",
    ]
    assert [o.excluded for o in occs] == [False, True, False, False]
    days = expand({"date": "2026-12-24"}, {"date": "2026-12-26"}, ["RRULE:FREQ=DAILY;COUNT=3"], "UTC", ANCHOR)
    assert [(o.suffix, o.end["date"]) for o in days] == [
        ("20261224", "2026-12-26"),
        ("20261225", "2026-12-27"),
        ("20261226", "2026-12-28"),
    ]


def test_endless_series_is_capped() -> None:
    occs = expand(
        {"dateTime": "2026-11-02T09:00:00Z", "timeZone": "UTC"},
        {"dateTime": "2026-11-02T09:30:00Z", "timeZone": "UTC"},
        ["RRULE:FREQ=DAILY"],
        "UTC",
        ANCHOR,
    )
    assert len(occs) == 500
    weekly = expand(
        {"dateTime": "2026-11-02T09:00:00Z", "timeZone": "UTC"},
        {"dateTime": "2026-11-02T09:30:00Z", "timeZone": "UTC"},
        ["RRULE:FREQ=WEEKLY"],
        "UTC",
        ANCHOR,
    )
    assert 100 <= len(weekly) <= 106  # two years


def test_fault_validation_and_counters() -> None:
    world = World()
    world.add_user("someone@example.com")
    with pytest.raises(ValueError):
        world.inject_fault("meteor")
    with pytest.raises(KeyError):
        world.inject_fault("latency", user_email="nobody@example.com")
    world.inject_fault("rate_limit", user_email="someone@example.com", count=2)
    assert world.take_faults(None) == (0, None)  # scoped to another user
    assert world.take_faults("someone@example.com")[1].code == 429
    assert world.take_faults("someone@example.com")[1].code == 429
    assert world.take_faults("someone@example.com") == (0, None)
    world.count_request("someone@example.com", "/calendar/v3/users/me/calendarList")
    world.count_request(None, "/calendar/v3/calendars/primary/events")
    assert world.request_count() == 2
    assert world.request_count("someone@example.com") == 1
    assert world.request_count(path_prefix="/calendar/v3/calendars/") == 1
    world.reset_counters()
    assert world.request_count() == 0


def test_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sunny_pipelines.sandbox", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert "--port" in out.stdout and "--events-per-user" in out.stdout and "connect-users" in out.stdout
    args = build_parser().parse_args(
        ["serve", "--port", "0", "--users", "2", "--notification-drop-rate", "0.5"]
    )
    assert (args.command, args.port, args.users, args.notification_drop_rate) == ("serve", 0, 2, 0.5)
    assert build_parser().parse_args(["--users", "4"]).users == 4


def test_cli_serves_until_terminated() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sunny_pipelines.sandbox",
            "--port",
            "0",
            "--users",
            "2",
            "--events-per-user",
            "4",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, line
        base = match.group(1)
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
        assert len(requests.get(base + "/sandbox/users", timeout=5).json()) == 2
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
