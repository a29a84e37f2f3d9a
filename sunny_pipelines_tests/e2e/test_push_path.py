"""End to end, every part real: PostgreSQL, the sandbox, the webhook receiver over HTTP and a
Dagster daemon with its sensors. A change made through the Google client reaches
`calendar_events` by the push path alone (sandbox → receiver → inbox → sensor → run), also when
the run worker handling it is killed mid-way."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from sunny_pipelines.calendar.channels import ensure_calendar_channels
from sunny_pipelines.calendar.sync import sync_user_calendars
from sunny_pipelines.db.models import CalendarEvent, WebhookInbox
from sunny_pipelines.partitions import TRIGGER_TAG
from sunny_pipelines_tests.google_clients import calendar_client
from sunny_pipelines_tests.stack import Stack, daemon_stack, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path, database, cipher, sandbox, connected_users, receiver, push_google):
    """Ada synced with live channels (as after her first run), and a Dagster daemon running."""
    ada = connected_users[0]
    sync_user_calendars(push_google.session(ada["id"]), database, ada["id"])
    ensure_calendar_channels(push_google.session(ada["id"]), database, ada["id"], receiver)
    with daemon_stack(tmp_path, database, cipher, sandbox, connected_users, receiver) as stack:
        yield stack


def insert_event(sandbox, user: dict, summary: str) -> dict:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    body = {
        "summary": summary,
        "location": "https://meet.google.com/abc-defg-hij",
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(minutes=45)).isoformat()},
    }
    return calendar_client(sandbox, user).events().insert(calendarId="primary", body=body).execute()


def wait_for_event(database, stack: Stack, user_id: str, event_id: str) -> str:
    def stored() -> object:
        with database.begin() as conn:
            query = select(CalendarEvent.meeting_url).where(
                CalendarEvent.user_id == user_id, CalendarEvent.event_id == event_id
            )
            return conn.execute(query).scalar()

    stack.wait(stored, "the event's arrival")
    return stored()


def inbox_rows(database) -> list:
    with database.begin() as conn:
        return conn.execute(select(WebhookInbox.__table__).order_by(WebhookInbox.id)).all()


def test_event_inserted_in_google_reaches_calendar_events_by_push_alone(
    database, sandbox, connected_users, stack
):
    ada = connected_users[0]
    created = insert_event(sandbox, ada, "Pushed through")
    assert wait_for_event(database, stack, ada["id"], created["id"]) == "https://meet.google.com/abc-defg-hij"

    # The run commits the data first and finishes its rows just after.
    wait_for(
        lambda: inbox_rows(database) and all(r.status == "done" for r in inbox_rows(database)), timeout=30
    )
    rows = inbox_rows(database)
    with dg.DagsterInstance.from_config(str(stack.home)) as instance:
        runs = [instance.get_run_by_id(row.claimed_by) for row in rows]
        assert {run.tags.get(TRIGGER_TAG) for run in runs} == {"inbox"}
        assert {run.tags.get("dagster/sensor_name") for run in runs} == {"webhook_inbox_sensor"}


def run_workers(daemon_pid: int) -> list[int]:
    """Run worker processes in the daemon's process group (the code server spawns them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if os.getpgid(int(entry.name)) == daemon_pid and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return pids


def test_rows_of_a_killed_run_worker_are_synced_by_the_next_run(database, sandbox, connected_users, stack):
    ada = connected_users[0]
    created = insert_event(sandbox, ada, "Survives a crash")
    # The run that picks the notification up hangs on its first Google call…
    sandbox.world.inject_fault("latency", user_email=ada["email"], count=1, latency_ms=60_000)

    def claimed() -> object:
        rows = inbox_rows(database)
        return rows and rows[0].claimed_by and rows[0].status == "pending"

    wait_for(claimed, timeout=60, interval=0.2)
    killed_run = inbox_rows(database)[0].claimed_by
    wait_for(lambda: run_workers(stack.daemon_pid), timeout=10)
    # …and its worker process is killed.
    for pid in run_workers(stack.daemon_pid):
        os.kill(pid, signal.SIGKILL)
    sandbox.world.clear_faults()

    assert wait_for_event(database, stack, ada["id"], created["id"])
    wait_for(lambda: all(row.status == "done" for row in inbox_rows(database)), timeout=30)
    [row] = inbox_rows(database)
    assert row.attempts == 2 and row.claimed_by != killed_run
    with dg.DagsterInstance.from_config(str(stack.home)) as instance:
        assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE
